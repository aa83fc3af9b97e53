"""Kasal's single-job rule as the event store keeps it: a group holds at most ``limit`` unfinished
executions; a place is taken with the request and given back with whatever ends the run."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from application.content import MemoryContentStore
from application.executions import ExecutionService
from application.store import KasalStore, memory_env
from domain.context import Actor, acting_as, system_actor
from domain.errors import ConflictError
from domain.execution import RESTART_MESSAGE, Execution
from domain.execution_quota import ExecutionQuota
from tests.fakes import EventLogIndex

AGENTS = {"researcher": {"role": "Researcher", "goal": "Find facts", "backstory": "b"}}
TASKS = {"research": {"description": "Research", "expected_output": "A report", "agent": "researcher"}}
GROUPS = ("g1", "g2")


def as_user(group: str) -> Actor:
    return Actor(group_id=group, actor=f"user@{group}", role="operator")


class SingleJobRule(RuleBasedStateMachine):
    """Requests, runs, ends and recoveries in two groups, against a model of who holds a place."""

    executions = Bundle("executions")

    @initialize(limit=st.integers(min_value=1, max_value=3))
    def service(self, limit: int) -> None:
        self.limit = limit
        self.store = KasalStore(memory_env())
        self.service = ExecutionService(self.store, MemoryContentStore(), EventLogIndex(self.store), busy_limit=limit)
        self.unfinished: dict[str, list[UUID]] = {group: [] for group in GROUPS}
        self.status: dict[UUID, str] = {}
        self.group: dict[UUID, str] = {}

    def _as_owner(self, execution_id: UUID) -> Actor:
        return as_user(self.group[execution_id])

    def _end(self, execution_id: UUID, status: str) -> None:
        self.status[execution_id] = status
        self.unfinished[self.group[execution_id]].remove(execution_id)

    @rule(target=executions, group=st.sampled_from(GROUPS))
    def request(self, group: str) -> UUID | None:
        busy = len(self.unfinished[group]) >= self.limit
        with acting_as(as_user(group)):
            try:
                requested = self.service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo")
            except ConflictError as refused:
                assert busy, "refused although the group had room"
                running = any(self.status[e] == "RUNNING" for e in self.unfinished[group])
                assert refused.detail == ("Cannot start new job. Another job is currently running: 'research' "
                                          f"(Status: {'RUNNING' if running else 'PENDING'}).")
                return None
        assert not busy, "accepted although the group was at its limit"
        self.unfinished[group].append(requested.execution_id)
        self.status[requested.execution_id] = "PENDING"
        self.group[requested.execution_id] = group
        return requested.execution_id

    @rule(execution_id=executions)
    def run(self, execution_id: UUID | None) -> None:
        if execution_id is None or self.status[execution_id] != "PENDING":
            return
        with acting_as(self._as_owner(execution_id)):
            self.service.mark_preparing(execution_id)
            self.service.mark_running(execution_id)
        self.status[execution_id] = "RUNNING"

    @rule(execution_id=executions, outcome=st.sampled_from(["complete", "fail"]))
    def finish(self, execution_id: UUID | None, outcome: str) -> None:
        if execution_id is None or self.status[execution_id] != "RUNNING":
            return
        with acting_as(self._as_owner(execution_id)):
            if outcome == "complete":
                self.service.complete(execution_id, "done")
            else:
                self.service.fail(execution_id, "boom")
        self._end(execution_id, outcome.upper())

    @rule(execution_id=executions)
    def cancel(self, execution_id: UUID | None) -> None:
        """A user's cancel: a PENDING run ends at once, a running one only asks its runner."""
        if execution_id is None or self.status[execution_id] not in ("PENDING", "RUNNING"):
            return
        with acting_as(self._as_owner(execution_id)):
            outcome = self.service.request_cancel(execution_id, "Cancelled by user")
        if not outcome.runner_must_stop:
            self._end(execution_id, "CANCELLED")

    @rule(execution_id=executions)
    def force_stop(self, execution_id: UUID | None) -> None:
        if execution_id is None or self.status[execution_id] not in ("PENDING", "RUNNING"):
            return
        with acting_as(self._as_owner(execution_id)):
            self.service.cancel(execution_id, "Force-stopped")
        self._end(execution_id, "CANCELLED")

    @rule()
    def restart(self) -> None:
        """Recovery after a restart cancels every unfinished run, as ``system:recovery``."""
        for execution_id in [e for held in self.unfinished.values() for e in held]:
            with acting_as(system_actor("recovery", self.group[execution_id])):
                self.service.cancel(execution_id, RESTART_MESSAGE)
            self._end(execution_id, "CANCELLED")

    @invariant()
    def places_are_held_by_exactly_the_unfinished_executions(self) -> None:
        if not hasattr(self, "store"):
            return
        for group in GROUPS:
            quota = self.store.find(ExecutionQuota.id_for(group))
            holders = [] if quota is None else [UUID(h) for h in quota.holders]
            assert holders == self.unfinished[group]
            assert len(holders) <= self.limit


TestSingleJobRule = SingleJobRule.TestCase
TestSingleJobRule.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_without_the_rule_requests_queue_and_no_quota_is_recorded() -> None:
    store = KasalStore(memory_env())
    service = ExecutionService(store, MemoryContentStore(), EventLogIndex(store))
    with acting_as(as_user("g1")):
        for _ in range(3):
            service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo")
    assert store.find(ExecutionQuota.id_for("g1")) is None


def test_the_refusal_names_the_running_job_before_a_waiting_one() -> None:
    store = KasalStore(memory_env())
    service = ExecutionService(store, MemoryContentStore(), EventLogIndex(store), busy_limit=2)
    with acting_as(as_user("g1")):
        waiting = service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo", run_name="Waiting")
        running = service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo", run_name="Busy")
        service.mark_preparing(running.execution_id)
        service.mark_running(running.execution_id)
        with pytest.raises(ConflictError) as refused:
            service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo")
    assert refused.value.detail == "Cannot start new job. Another job is currently running: 'Busy' (Status: RUNNING)."
    assert isinstance(store.find(waiting.execution_id), Execution)


def test_a_place_still_held_by_a_run_that_ended_elsewhere_is_given_back_to_the_next_request() -> None:
    store = KasalStore(memory_env())
    service = ExecutionService(store, MemoryContentStore(), EventLogIndex(store), busy_limit=1)
    with acting_as(as_user("g1")):
        first = service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo").execution_id
        # The run ends through a path that does not give its place back (an older process, say).
        ended = store.load(Execution, first)
        ended.cancel("ended elsewhere")
        store.record(ended)

        second = service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo").execution_id

        quota = store.find(ExecutionQuota.id_for("g1"))
        assert isinstance(quota, ExecutionQuota) and quota.holds(second) and not quota.holds(first)
        with pytest.raises(ConflictError, match="Another job is currently running"):
            service.request_execution(agents=AGENTS, tasks=TASKS, model="offline/echo")
