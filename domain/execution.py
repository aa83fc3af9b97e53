"""An execution: one run of a crew, from its request to its end.

Status moves only through ``ALLOWED``; terminal states absorb, so a
late "completed" after a cancel is refused instead of recorded. Every
transition is an event saying who moved it and why, which is what the
history timeline shows. Progress (log lines, spans, usage) arrives in
batches; log ``seq`` numbers are assigned here, monotonic per execution, so
live streams can resume from the last number a client saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import msgspec

from domain.base import KasalAggregate, stable_topics
from domain.errors import ConflictError, InvalidError
from domain.execution_progress import Observation, ProgressBuilder, TextRef, empty_usage
from domain.redaction import check_nesting, redact, scrub, secret_values


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    PREPARING = "PREPARING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


PENDING, PREPARING, RUNNING = ExecutionStatus.PENDING, ExecutionStatus.PREPARING, ExecutionStatus.RUNNING
COMPLETED, FAILED, CANCELLED = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED

ALLOWED: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    PENDING: frozenset({PREPARING, CANCELLED}),
    PREPARING: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({COMPLETED, FAILED, CANCELLED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}
TERMINAL = frozenset(status for status, nexts in ALLOWED.items() if not nexts)
UNFINISHED = frozenset(ExecutionStatus) - TERMINAL

RESTART_MESSAGE = "Job cancelled - service was restarted while job was running"
MAX_ERROR_CHARS = 4000


class TransitionError(ConflictError):
    """The execution's status does not allow what was asked (answered 409)."""

    type = "invalid_transition"


def check_transition(current: ExecutionStatus, target: ExecutionStatus) -> None:
    """The one gate every status change goes through."""
    if target not in ALLOWED[current]:
        raise TransitionError(
            f"Execution is {current.value} and cannot become {target.value}",
            errors=[("status", f"{current.value} -> {target.value} is not allowed")],
        )


def placeholder_run_name(agents: Mapping[str, Any], tasks: Mapping[str, Any], now: datetime) -> str:
    """Kasal's instant run name: first task's name, else first agent's role + " Run"."""
    for key, task in tasks.items():
        name = task.get("name") if isinstance(task, Mapping) else None
        return str(name or key)[:200]
    for agent in agents.values():
        role = agent.get("role") if isinstance(agent, Mapping) else None
        if role:
            return f"{str(role)[:190]} Run"
    return f"Execution-{now.strftime('%Y%m%d-%H%M%S')}"


def timeline_entry(event: Any) -> dict[str, Any]:
    """One line of the history timeline, from a transition event (read models use it too)."""
    return {"status": event.status, "at": event.timestamp.isoformat(), "actor": event.actor, "message": event.message}


def _enter(aggregate: Execution, event: Any) -> None:
    """Assign the state every transition event carries (runs on every replay)."""
    status = ExecutionStatus(event.status)
    aggregate.status = status
    aggregate.timeline = [*aggregate.timeline, timeline_entry(event)]
    if status in TERMINAL:
        aggregate.completed_at = event.timestamp
        aggregate.open_spans = {}


@stable_topics("execution")
class Execution(KasalAggregate):
    """One run of a crew: what was asked for, its status, and what it produced."""

    KIND = "execution"

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.status = PENDING
        self.run_name = ""
        self.crew_id: str | None = None
        self.crew_version: int | None = None
        self.model = ""
        self.execution_type = "crew"
        self.schedule_id: str | None = None
        self.inputs: dict[str, Any] = {}
        self.redacted: list[str] = []
        self.snapshot: dict[str, Any] | None = None
        self.snapshot_ref: dict[str, Any] | None = None
        self.created_at: datetime | None = None
        self.started_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.claimed_by: str | None = None
        self.lease_until = 0.0
        self.cancel_requested: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.timeline: list[dict[str, Any]] = []
        self.task_outputs: list[dict[str, Any]] = []
        self.usage = empty_usage()
        self.log_seq = 0
        self.span_seq = 0
        self.open_spans: dict[str, str] = {}
        self.origin: dict[str, Any] | None = None

    # -- creation ----------------------------------------------------------

    @classmethod
    def request(
        cls, group_id: str, *, run_name: str, model: str, inputs: Mapping[str, Any],
        snapshot: dict[str, Any] | None, snapshot_ref: TextRef | None = None, crew_id: str | None = None,
        crew_version: int | None = None, schedule_id: str | None = None, execution_type: str = "crew",
        id: UUID | None = None, origin: Mapping[str, Any] | None = None,
    ) -> Execution:
        """Record what will run; secrets in the inputs never reach the event, by name or by value.

        ``origin`` says what an execution repeats: ``{"replay_of": id}`` or
        ``{"rerun_of": id, "from_task": key | None}``.
        """
        if snapshot is None and snapshot_ref is None:
            raise InvalidError("An execution needs a crew configuration")
        check_nesting(inputs)
        shown, hidden = redact(inputs)
        secrets = secret_values(inputs)
        return cls._create(cls.Requested, id=id, group_id=group_id, **scrub({
            "run_name": secrets.hide((run_name.strip() or "Execution")[:200]), "model": model,
            "inputs": scrub(shown, secrets), "redacted": hidden, "snapshot": snapshot,
            "snapshot_ref": None if snapshot_ref is None else msgspec.to_builtins(snapshot_ref),
            "crew_id": crew_id, "crew_version": crew_version, "schedule_id": schedule_id,
            "execution_type": execution_type, "status": PENDING.value, "message": "Execution requested",
            "origin": dict(origin) if origin else None,
        }))

    class Requested(KasalAggregate.Created):
        run_name: str
        model: str
        inputs: dict[str, Any]
        redacted: list[str]
        snapshot: dict[str, Any] | None
        snapshot_ref: dict[str, Any] | None
        crew_id: str | None
        crew_version: int | None
        schedule_id: str | None
        execution_type: str
        status: str
        message: str
        origin: dict[str, Any] | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.origin = self.origin
            aggregate.run_name = self.run_name
            aggregate.model = self.model
            aggregate.inputs = self.inputs
            aggregate.redacted = self.redacted
            aggregate.snapshot = self.snapshot
            aggregate.snapshot_ref = self.snapshot_ref
            aggregate.crew_id = self.crew_id
            aggregate.crew_version = self.crew_version
            aggregate.schedule_id = self.schedule_id
            aggregate.execution_type = self.execution_type
            aggregate.created_at = self.timestamp
            _enter(aggregate, self)

    # -- the runner's commands -------------------------------------------

    def claim(self, runner_id: str, *, now: float, lease_s: float) -> None:
        """Reserve a PENDING execution for one runner (until its lease runs out)."""
        if self.status is not PENDING:
            raise TransitionError(f"Execution is {self.status.value}; only PENDING executions can be claimed")
        if self.claimed_by is not None and self.lease_until > now:
            # Also when the claimant is this runner: a second claim would mean a second run.
            raise ConflictError(f"Execution is already claimed by {self.claimed_by}")
        self._record(self.Claimed, runner_id=runner_id, lease_until=now + lease_s)

    class Claimed(KasalAggregate.Event):
        runner_id: str
        lease_until: float

        def apply(self, aggregate: Any) -> None:
            aggregate.claimed_by = self.runner_id
            aggregate.lease_until = self.lease_until

    def mark_preparing(self, runner_id: str | None = None, message: str = "Preparing crew") -> None:
        """A claimed execution moves to PREPARING while its runner builds the crew."""
        self._check_runner(runner_id)
        check_transition(self.status, PREPARING)
        self._record(self.Preparing, status=PREPARING.value, message=message)

    class Preparing(KasalAggregate.Event):
        status: str
        message: str

        def apply(self, aggregate: Any) -> None:
            _enter(aggregate, self)

    def start(self, runner_id: str | None = None, message: str = "Crew started") -> None:
        self._check_runner(runner_id)
        check_transition(self.status, RUNNING)
        self._record(self.Started, status=RUNNING.value, message=message)

    class Started(KasalAggregate.Event):
        status: str
        message: str

        def apply(self, aggregate: Any) -> None:
            aggregate.started_at = self.timestamp
            _enter(aggregate, self)

    def record_progress(self, observations: Sequence[Observation]) -> int:
        """Append a batch of progress; returns how many events it took (each < 16 KB)."""
        if self.status not in (PREPARING, RUNNING):
            raise TransitionError(f"Execution is {self.status.value}; progress can only be recorded while it runs")
        builder = ProgressBuilder(self.log_seq, self.span_seq, self.open_spans, self.usage)
        payloads = builder.build(list(observations))
        for payload in payloads:
            self._record(self.ProgressRecorded, **payload)
        return len(payloads)

    class ProgressRecorded(KasalAggregate.Event):
        logs: list[dict[str, Any]]
        spans: list[dict[str, Any]]
        task_outputs: list[dict[str, Any]]
        log_seq: int
        span_seq: int
        open_spans: dict[str, str]
        usage: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.log_seq = self.log_seq
            aggregate.span_seq = self.span_seq
            aggregate.open_spans = self.open_spans
            aggregate.usage = self.usage
            if self.task_outputs:
                aggregate.task_outputs = [*aggregate.task_outputs, *self.task_outputs]

    def complete(self, result: TextRef, message: str = "Execution completed") -> None:
        check_transition(self.status, COMPLETED)
        self._record(self.Completed, status=COMPLETED.value, message=message,
                           result=msgspec.to_builtins(result))

    class Completed(KasalAggregate.Event):
        status: str
        message: str
        result: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.result = self.result
            _enter(aggregate, self)

    def fail(self, error: str) -> None:
        check_transition(self.status, FAILED)
        error = (error or "Execution failed")[:MAX_ERROR_CHARS]
        self._record(self.Failed, status=FAILED.value, message=error[:500], error=error)

    class Failed(KasalAggregate.Event):
        status: str
        message: str
        error: str

        def apply(self, aggregate: Any) -> None:
            aggregate.error = self.error
            _enter(aggregate, self)

    def cancel(self, reason: str = "Cancelled by user") -> None:
        check_transition(self.status, CANCELLED)
        self._record(self.Cancelled, status=CANCELLED.value, message=reason[:500])

    class Cancelled(KasalAggregate.Event):
        status: str
        message: str

        def apply(self, aggregate: Any) -> None:
            _enter(aggregate, self)

    # -- the user's commands ---------------------------------------------

    def request_cancel(self, reason: str = "Cancelled by user") -> bool:
        """Cancel now if nothing runs yet; else ask the runner. True if the runner must act."""
        if self.status is PENDING:
            self.cancel(reason)
            return False
        check_transition(self.status, CANCELLED)
        if self.cancel_requested is None:
            self._record(self.CancelRequested, reason=reason[:500])
        return True

    class CancelRequested(KasalAggregate.Event):
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.cancel_requested = {"at": self.timestamp.isoformat(), "actor": self.actor, "reason": self.reason}

    def rename(self, run_name: str) -> None:
        name = run_name.strip()[:200]
        if not name:
            raise InvalidError("A run name cannot be empty", errors=[("run_name", "must not be empty")])
        if name != self.run_name:
            self._record(self.Renamed, run_name=name)

    class Renamed(KasalAggregate.Event):
        run_name: str

        def apply(self, aggregate: Any) -> None:
            aggregate.run_name = self.run_name

    def _record(self, event_class: Any, **fields: Any) -> None:
        """Trigger an event with its text made storable everywhere (see ``scrub``)."""
        self.trigger_event(event_class, **scrub(fields))

    # -- reading -----------------------------------------------------------

    def _check_runner(self, runner_id: str | None) -> None:
        if runner_id is not None and self.claimed_by not in (None, runner_id):
            raise ConflictError(f"Execution is claimed by {self.claimed_by}, not {runner_id}")

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def history(self) -> dict[str, Any]:
        """What the history endpoint shows, folded from this aggregate's own events."""
        return {
            "execution_id": str(self.id), "group_id": self.group_id, "run_name": self.run_name,
            "status": self.status.value, "crew_id": self.crew_id, "crew_version": self.crew_version,
            "model": self.model, "execution_type": self.execution_type, "schedule_id": self.schedule_id,
            "inputs": self.inputs, "redacted_inputs": self.redacted, "config": self.snapshot,
            "config_ref": self.snapshot_ref, "timeline": self.timeline, "result_ref": self.result,
            "error": self.error, "task_outputs": self.task_outputs, "usage": self.usage,
            "cancel_requested": self.cancel_requested, "created_at": self.created_at,
            "started_at": self.started_at, "completed_at": self.completed_at,
        }
