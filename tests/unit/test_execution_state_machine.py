"""The execution lifecycle on the in-memory store: the transition table, claims,
progress numbering, event sizes, and that folding the events gives the state."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from application.content import MemoryContentStore
from application.executions import ExecutionService
from application.store import KasalStore, memory_env
from domain.context import Actor, acting_as
from domain.errors import ConflictError
from domain.execution import (
    ALLOWED,
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    PREPARING,
    RUNNING,
    TERMINAL,
    UNFINISHED,
    Execution,
    ExecutionStatus,
    TransitionError,
    placeholder_run_name,
)
from domain.execution_progress import (
    AgentCompleted,
    AgentStarted,
    CrewStarted,
    LlmCall,
    LogLine,
    Observation,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    ToolUsed,
)
from domain.redaction import redact
from tests.fakes import EventLogIndex, ListedExecutionIndex

AGENTS = {"researcher": {"role": "Researcher", "goal": "Find {topic}", "backstory": "b"}}
TASKS = {"research": {"description": "Research {topic}", "expected_output": "A report", "agent": "researcher"}}
MAX_EVENT_BYTES = 16 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def new_service() -> tuple[KasalStore, ExecutionService, Clock]:
    store = KasalStore(memory_env())
    clock = Clock()
    return store, ExecutionService(store, MemoryContentStore(), EventLogIndex(store), clock=clock), clock


def user(group: str = "g1") -> Actor:
    return Actor(group_id=group, actor="alice@example.com", role="operator")


def fold(store: KasalStore, execution_id: UUID) -> Execution:
    """Fold the stored events from scratch, without the repository."""
    events = list(store.repository.event_store.get(execution_id))
    return functools.reduce(lambda aggregate, event: event.mutate(aggregate), events, None)  # type: ignore[arg-type, return-value]


def stored_states(store: KasalStore) -> list[bytes]:
    return [n.state for n in store.recorder.select_notifications(start=1, limit=100_000)]


def stored_sizes(store: KasalStore) -> list[int]:
    return [len(n.state) for n in store.recorder.select_notifications(start=1, limit=100_000)]


# -- examples --------------------------------------------------------------


def test_every_status_appears_in_the_table_and_terminal_states_absorb() -> None:
    assert set(ALLOWED) == set(ExecutionStatus)
    assert {COMPLETED, FAILED, CANCELLED} == TERMINAL
    assert all(not ALLOWED[s] for s in TERMINAL)


def test_secret_looking_inputs_are_redacted_at_any_depth() -> None:
    shown, hidden = redact({"topic": "AI", "OPENAI_API_KEY": "sk-1", "nested": {"password": "p", "x": 1},
                            "auth_token": "", "my_secret_thing": "s"})
    assert shown == {"topic": "AI", "OPENAI_API_KEY": "[REDACTED]", "nested": {"password": "[REDACTED]", "x": 1},
                     "auth_token": "", "my_secret_thing": "[REDACTED]"}
    assert sorted(hidden) == ["OPENAI_API_KEY", "my_secret_thing", "nested.password"]


def test_run_name_placeholder_prefers_task_name_then_agent_role_then_timestamp() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert placeholder_run_name(AGENTS, {"t": {"name": "Write report"}}, now) == "Write report"
    assert placeholder_run_name(AGENTS, TASKS, now) == "research"
    assert placeholder_run_name(AGENTS, {}, now) == "Researcher Run"
    assert placeholder_run_name({}, {}, now) == "Execution-20250102-030405"


def test_a_request_records_pending_with_secrets_redacted_but_the_runner_gets_them() -> None:
    store, service, _ = new_service()
    with acting_as(user()):
        requested = service.request_execution(agents=AGENTS, tasks=TASKS, inputs={"topic": "AI", "api_key": "sk-9"},
                                              model="offline/echo")
    assert (requested.status, requested.message, requested.run_name) == (
        "PENDING", "Execution started successfully", "research")
    assert all(b"sk-9" not in n.state for n in store.recorder.select_notifications(start=1, limit=100))
    job = service.claim_next("r1")
    assert job is not None and job.inputs == {"topic": "AI", "api_key": "sk-9"} and job.group_id == "g1"


def test_a_late_complete_after_cancel_is_refused_and_not_recorded() -> None:
    store, service, _ = new_service()
    with acting_as(user()):
        execution_id = service.request_execution(agents=AGENTS, tasks=TASKS, model="m").execution_id
    job = service.claim_next("r1")
    assert job is not None
    with acting_as(job.actor("r1")):
        service.mark_preparing(execution_id, "r1")
        service.mark_running(execution_id, "r1")
        service.cancel(execution_id, "stopped")
        version = fold(store, execution_id).version
        with pytest.raises(TransitionError):
            service.complete(execution_id, "too late")
    assert fold(store, execution_id).version == version
    assert fold(store, execution_id).status is CANCELLED


def test_two_runners_never_claim_the_same_execution() -> None:
    _, service, _ = new_service()
    with acting_as(user()):
        first = service.request_execution(agents=AGENTS, tasks=TASKS, model="m").execution_id
        second = service.request_execution(agents=AGENTS, tasks=TASKS, model="m").execution_id
    claims = [service.claim_next("r1"), service.claim_next("r2"), service.claim_next("r3")]
    assert [c.execution_id if c else None for c in claims] == [first, second, None]


def test_progress_numbers_logs_and_nests_spans_under_their_task_and_agent() -> None:
    store, service, _ = new_service()
    with acting_as(user()):
        execution_id = service.request_execution(agents=AGENTS, tasks=TASKS, model="m").execution_id
        service.mark_preparing(execution_id)
        service.mark_running(execution_id)
        service.record_progress(execution_id, [
            CrewStarted(at=1.0, name="crew"), TaskStarted(at=2.0, task="research", agent="Researcher"),
            AgentStarted(at=2.1, agent="Researcher"), LogLine(at=2.2, message="thinking"),
            LlmCall(at=3.0, model="m", prompt="p" * 50_000, response="r", prompt_tokens=10, completion_tokens=5,
                    latency_ms=500, cost=0.25, agent="Researcher", task="research"),
            ToolUsed(at=3.5, tool="search", input="q", output="o", agent="Researcher", task="research"),
        ])
        service.record_progress(execution_id, [
            AgentCompleted(at=4.0, agent="Researcher", output="done"), LogLine(at=4.1, message="more"),
            TaskCompleted(at=4.2, task="research", agent="Researcher", output="report " * 1000),
        ])
    execution = fold(store, execution_id)
    events = list(store.repository.event_store.get(execution_id))
    progress = [e for e in events if isinstance(e, Execution.ProgressRecorded)]
    assert [line["seq"] for e in progress for line in e.logs] == [1, 2]
    spans = {s["span_id"]: s for e in progress for s in e.spans if s["op"] != "close"}
    by_type = {s["type"]: s for s in spans.values()}
    assert by_type["crew"]["parent_span_id"] == "execution"
    assert by_type["task"]["parent_span_id"] == by_type["crew"]["span_id"]
    assert by_type["agent"]["parent_span_id"] == by_type["task"]["span_id"]
    assert by_type["llm_call"]["parent_span_id"] == by_type["agent"]["span_id"]
    assert by_type["llm_call"]["attributes"]["prompt"]["size"] == 50_000
    assert execution.usage == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.25,
                               "llm_calls": 1}
    assert execution.task_outputs[0]["output"]["sha256"] is not None
    assert execution.open_spans == {"crew": by_type["crew"]["span_id"]}
    assert max(stored_sizes(store)) < MAX_EVENT_BYTES


def test_a_huge_batch_is_split_into_small_events_with_contiguous_seqs() -> None:
    store, service, _ = new_service()
    with acting_as(user()):
        execution_id = service.request_execution(agents=AGENTS, tasks=TASKS, model="m").execution_id
        service.mark_preparing(execution_id)
        batch: list[Observation] = [LogLine(at=float(i), message=f"{i} " + "x" * 1900) for i in range(300)]
        service.record_progress(execution_id, batch)
    progress = [e for e in store.repository.event_store.get(execution_id) if isinstance(e, Execution.ProgressRecorded)]
    assert len(progress) > 1
    assert [line["seq"] for e in progress for line in e.logs] == list(range(1, 301))
    assert max(stored_sizes(store)) < MAX_EVENT_BYTES


def test_a_large_configuration_is_kept_in_the_content_store_and_given_to_the_runner() -> None:
    store, service, _ = new_service()
    agents = {f"agent_{n}": {"role": f"Role {n}", "goal": "g", "backstory": "b" * 900} for n in range(20)}
    with acting_as(user()):
        execution_id = service.request_execution(agents=agents, tasks=TASKS, model="m").execution_id
    execution = fold(store, execution_id)
    assert execution.snapshot is None and execution.snapshot_ref is not None
    assert max(stored_sizes(store)) < MAX_EVENT_BYTES
    job = service.claim_next("r1")
    assert job is not None and job.agents == agents and job.tasks == TASKS


times = st.floats(min_value=0, max_value=2e9) | st.sampled_from([float("nan"), -1.0, 1e20])
texts = st.builds(lambda n, c: c * n, st.integers(0, 40_000), st.sampled_from(["a", "é", "中", "🙂", "\x00"]))
names = st.builds(lambda n, c: c * n, st.integers(1, 3_000), st.sampled_from(["n", "🙂"]))
observations = st.one_of(
    st.builds(LogLine, at=times, message=texts, source=names),
    st.builds(CrewStarted, at=times, name=names),
    st.builds(TaskStarted, at=times, task=names, agent=names),
    st.builds(AgentStarted, at=times, agent=names),
    st.builds(AgentCompleted, at=times, agent=names, output=texts),
    st.builds(TaskCompleted, at=times, task=names, agent=names, output=texts),
    st.builds(TaskFailed, at=times, task=names, agent=names, error=texts),
    st.builds(LlmCall, at=times, model=names, prompt=texts, response=texts, prompt_tokens=st.integers(0, 10**6),
              completion_tokens=st.integers(0, 10**6), latency_ms=st.floats(0, 1e6) | st.sampled_from([1e30, -5.0]),
              cost=st.none() | st.floats(0, 10), agent=st.none() | names, task=st.none() | names),
    st.builds(ToolUsed, at=times, tool=names, input=texts, output=st.none() | texts, error=st.none() | texts,
              agent=st.none() | names, task=st.none() | names),
)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(observations, max_size=25), min_size=1, max_size=3))
def test_any_progress_becomes_small_events_with_contiguous_seqs_and_summed_usage(
    batches: list[list[Observation]],
) -> None:
    store, service, _ = new_service()
    with acting_as(user()):
        execution_id = service.request_execution(agents=AGENTS, tasks=TASKS, model="m").execution_id
        service.mark_preparing(execution_id)
        for batch in batches:
            service.record_progress(execution_id, batch)
    assert max(stored_sizes(store)) < MAX_EVENT_BYTES
    assert all(b"\\u0000" not in state for state in stored_states(store))
    events = [e for e in store.repository.event_store.get(execution_id) if isinstance(e, Execution.ProgressRecorded)]
    sent = [o for batch in batches for o in batch]
    lines_sent = sum(isinstance(o, LogLine) for o in sent)
    assert [line["seq"] for e in events for line in e.logs] == list(range(1, lines_sent + 1))
    seen = 0
    for event in events:  # each event's counters describe exactly the lines up to and including its own
        seen += len(event.logs)
        assert event.log_seq == seen
    calls = [o for o in sent if isinstance(o, LlmCall)]
    assert fold(store, execution_id).usage["prompt_tokens"] == sum(c.prompt_tokens for c in calls)
    assert fold(store, execution_id).usage["llm_calls"] == len(calls)


# -- the state machine -----------------------------------------------------


@dataclass
class Expected:
    group: str
    status: ExecutionStatus = PENDING
    events: int = 1
    log_seq: int = 0
    claimed_by: str | None = None
    lease_until: float = 0.0
    cancel_requested: bool = False


RUNNERS = st.sampled_from(["r1", "r2"])
LEASE_S = 60.0


class ExecutionLifecycle(RuleBasedStateMachine):
    """Random commands against the service; a plain model says what must have happened."""

    executions = Bundle("executions")

    def __init__(self) -> None:
        super().__init__()
        self.store, self.service, self.clock = new_service()
        self.expected: dict[UUID, Expected] = {}
        self.order: list[UUID] = []

    def _as(self, execution_id: UUID, who: str = "alice") -> Actor:
        return Actor(group_id=self.expected[execution_id].group, actor=who, role="operator")

    def _attempt(self, execution_id: UUID, allowed: bool, command, who: str = "alice") -> bool:  # type: ignore[no-untyped-def]
        with acting_as(self._as(execution_id, who)):
            if allowed:
                command()
                return True
            with pytest.raises(ConflictError):
                command()
            return False

    @rule(target=executions, group=st.sampled_from(["g1", "g2"]))
    def request(self, group: str) -> UUID:
        with acting_as(Actor(group_id=group, actor="alice", role="operator")):
            requested = self.service.request_execution(
                agents=AGENTS, tasks=TASKS, inputs={"topic": "t", "token": "secret"}, model="m")
        self.expected[requested.execution_id] = Expected(group=group)
        self.order.append(requested.execution_id)
        return requested.execution_id

    @rule(runner=RUNNERS)
    def claim_next(self, runner: str) -> None:
        now = self.clock.now
        candidates = [i for i in self.order if self.expected[i].status is PENDING
                      and (self.expected[i].claimed_by is None or self.expected[i].lease_until < now)]
        job = self.service.claim_next(runner, lease_s=LEASE_S)
        if not candidates:
            assert job is None
            return
        assert job is not None and job.execution_id == candidates[0]
        expected = self.expected[job.execution_id]
        expected.claimed_by, expected.lease_until, expected.events = runner, now + LEASE_S, expected.events + 1

    @rule(seconds=st.sampled_from([1.0, 120.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    def _runner_may(self, e: Expected, runner: str) -> bool:
        return e.claimed_by in (None, runner)

    @rule(execution_id=executions, runner=RUNNERS)
    def prepare(self, execution_id: UUID, runner: str) -> None:
        e = self.expected[execution_id]
        ok = e.status is PENDING and self._runner_may(e, runner)
        if self._attempt(execution_id, ok, lambda: self.service.mark_preparing(execution_id, runner), runner):
            e.status, e.events = PREPARING, e.events + 1

    @rule(execution_id=executions, runner=RUNNERS)
    def start(self, execution_id: UUID, runner: str) -> None:
        e = self.expected[execution_id]
        ok = e.status is PREPARING and self._runner_may(e, runner)
        if self._attempt(execution_id, ok, lambda: self.service.mark_running(execution_id, runner), runner):
            e.status, e.events = RUNNING, e.events + 1

    @rule(execution_id=executions, lines=st.integers(min_value=1, max_value=5))
    def progress(self, execution_id: UUID, lines: int) -> None:
        e = self.expected[execution_id]
        batch = [LogLine(at=self.clock.now, message=f"line {n}") for n in range(lines)]
        if self._attempt(execution_id, e.status in (PREPARING, RUNNING),
                         lambda: self.service.record_progress(execution_id, batch)):
            e.log_seq, e.events = e.log_seq + lines, e.events + 1

    @rule(execution_id=executions)
    def complete(self, execution_id: UUID) -> None:
        e = self.expected[execution_id]
        if self._attempt(execution_id, e.status is RUNNING, lambda: self.service.complete(execution_id, '{"ok": 1}')):
            e.status, e.events = COMPLETED, e.events + 1

    @rule(execution_id=executions)
    def fail(self, execution_id: UUID) -> None:
        e = self.expected[execution_id]
        allowed = e.status in (PREPARING, RUNNING)
        if self._attempt(execution_id, allowed, lambda: self.service.fail(execution_id, "boom")):
            e.status, e.events = FAILED, e.events + 1

    @rule(execution_id=executions)
    def user_cancels(self, execution_id: UUID) -> None:
        e = self.expected[execution_id]
        if not self._attempt(execution_id, e.status in UNFINISHED,
                             lambda: self.service.request_cancel(execution_id)):
            return
        if e.status is PENDING:
            e.status, e.events = CANCELLED, e.events + 1
        elif not e.cancel_requested:
            e.cancel_requested, e.events = True, e.events + 1

    @rule(execution_id=executions)
    def runner_cancels(self, execution_id: UUID) -> None:
        e = self.expected[execution_id]
        if self._attempt(execution_id, e.status in UNFINISHED, lambda: self.service.cancel(execution_id, "stop")):
            e.status, e.events = CANCELLED, e.events + 1

    @invariant()
    def folded_state_matches_the_model(self) -> None:
        for execution_id, e in self.expected.items():
            execution = fold(self.store, execution_id)
            assert execution.history() == self.store.repository.get(execution_id).history()
            assert (execution.status, execution.version, execution.log_seq) == (e.status, e.events, e.log_seq)
            assert (execution.cancel_requested is not None) == e.cancel_requested
            assert execution.inputs["token"] == "[REDACTED]"

    @invariant()
    def every_timeline_follows_the_transition_table(self) -> None:
        for execution_id in self.expected:
            statuses = [ExecutionStatus(t["status"]) for t in fold(self.store, execution_id).timeline]
            assert statuses[0] is PENDING
            assert all(b in ALLOWED[a] for a, b in pairwise(statuses))

    @invariant()
    def log_seqs_are_contiguous_and_events_small(self) -> None:
        for execution_id in self.expected:
            seqs = [line["seq"] for event in self.store.repository.event_store.get(execution_id)
                    if isinstance(event, Execution.ProgressRecorded) for line in event.logs]
            assert seqs == list(range(1, len(seqs) + 1))
        assert all(size < MAX_EVENT_BYTES for size in stored_sizes(self.store))


ExecutionLifecycle.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestExecutionLifecycle = ExecutionLifecycle.TestCase


def test_every_event_round_trips_through_the_stored_form() -> None:
    store, service, _ = new_service()
    with acting_as(user()):
        requested = service.request_execution(agents=AGENTS, tasks=TASKS, inputs={"topic": "t"}, model="m")
        execution_id = requested.execution_id
        service.mark_preparing(execution_id)
        service.mark_running(execution_id)
        service.record_progress(execution_id, [CrewStarted(at=1.0, name="c"), LogLine(at=1.5, message="hi"),
                                               TaskCompleted(at=2.0, task="research", output="x" * 5000)])
        service.request_cancel(execution_id)
        service.rename(execution_id, "Renamed run")
        service.complete(execution_id, ["a", "b"])
    notifications = store.recorder.select_notifications(start=1, limit=100)
    assert len(notifications) == 7
    for notification in notifications:
        event = store.mapper.to_domain_event(notification)
        assert store.mapper.to_stored_event(event).state == notification.state
    assert fold(store, execution_id).run_name == "Renamed run"


def test_a_runner_looks_past_a_page_of_executions_other_runners_already_claimed() -> None:
    store, service, clock = new_service()
    with acting_as(user()):
        ids = [service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo").execution_id
               for _ in range(25)]
    # The index still lists every run as claimable, as a lagging read model does.
    other = ExecutionService(store, service.content, ListedExecutionIndex(ids), clock=clock)
    for _ in range(24):
        assert other.claim_next("runner-other") is not None
    lagging = ExecutionService(store, service.content, ListedExecutionIndex(ids), clock=clock)

    job = lagging.claim_next("runner-me")

    assert job is not None and job.execution_id == ids[-1]
    assert lagging.claim_next("runner-me") is None
