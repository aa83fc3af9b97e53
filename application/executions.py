"""Commands on executions: request, claim, move through the lifecycle, record progress.

Thin by design: load the aggregate, call it, save, return ids and
log positions. Every method but ``claim_next`` acts in the caller's group
(``current_actor()``); a runner acts as the job's group with
``acting_as(job.actor(runner_id))``. Version conflicts are retried on
the fresh aggregate, where the transition table decides again (so a complete
that loses the race against a cancel is refused, not recorded).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from application.admission import Admission
from application.content import ContentStore, Offloader
from application.documents import Written
from application.sealed_inputs import MemorySecretInputs, SecretInputs, SecretInputsUnavailableError
from application.store import KasalStore, retry_on_conflict
from domain.context import Actor, acting_as, current_actor
from domain.errors import ConflictError, NotFoundError
from domain.execution import PENDING, Execution, placeholder_run_name
from domain.execution_progress import Observation
from domain.redaction import NO_SECRETS, KnownSecrets, scrub_struct, secret_values

log = logging.getLogger("kasal.executions")

SNAPSHOT_INLINE_BYTES = 8_000
DEFAULT_LEASE_S = 300.0
CLAIM_PAGE = 20
START_MESSAGE = "Execution started successfully"


class ExecutionIndex(Protocol):
    """The read-model queries commands need (answered from ``rm_executions``)."""

    def pending(self, limit: int, now: float) -> list[UUID]:
        """PENDING executions nobody holds a live claim on, oldest request first."""
        ...

    def unfinished(self) -> list[UUID]:
        """Every PENDING, PREPARING or RUNNING execution, in any group."""
        ...


@dataclass(frozen=True, slots=True)
class Requested:
    """The answer to a request: Kasal's body plus where the event landed."""

    execution_id: UUID
    status: str
    message: str
    run_name: str
    version: int
    position: int | None


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    execution_id: UUID
    status: str
    runner_must_stop: bool
    written: Written


@dataclass(frozen=True)
class ExecutionJob:
    """Everything a runner needs to run one execution (inputs unredacted when known)."""

    execution_id: UUID
    group_id: str
    run_name: str
    model: str
    agents: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    inputs: dict[str, Any]
    process: str = "sequential"
    manager_llm: str | None = None
    planning: bool = False
    reasoning: bool = False
    execution_type: str = "crew"
    crew_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    crew_settings: dict[str, Any] = field(default_factory=dict)  # the saved crew's verbose, max_rpm
    unavailable: str | None = None  # why the run cannot start as asked (its secret inputs are gone)
    origin: dict[str, Any] | None = None  # what it repeats: {"replay_of": id} or {"rerun_of": id, "from_task": key}

    def actor(self, runner_id: str) -> Actor:
        """Who the runner acts as while it records this execution's progress."""
        return Actor(group_id=self.group_id, actor=f"runner:{runner_id}", role="operator",
                     correlation_id=str(self.execution_id))


def result_text(result: Any) -> str:
    """Crew results are text; structured ones are kept as their JSON."""
    if isinstance(result, str):
        return result
    if isinstance(result, bytes):
        return result.decode(errors="replace")
    return json.dumps(result, default=str)


class ExecutionService:
    """The execution lifecycle over the event store."""

    def __init__(
        self, store: KasalStore, content: ContentStore, index: ExecutionIndex,
        *, clock: Callable[[], float] = time.time, busy_limit: int | None = None,
        secret_inputs: SecretInputs | None = None,
    ) -> None:
        """``busy_limit``: Kasal's single-job rule, at most that many unfinished executions per
        group (more are refused with 409); None queues every request. ``secret_inputs`` is where a
        run's secret inputs wait for its runner (sealed in a table in the service; in memory when
        left out)."""
        self.store = store
        self.content = content
        self.index = index
        self.clock = clock
        self.admission = Admission(store, busy_limit)
        self.secret_inputs = secret_inputs if secret_inputs is not None else MemorySecretInputs()
        self._secrets: dict[UUID, KnownSecrets] = {}

    # -- requesting --------------------------------------------------------

    def request_execution(self, *, inputs: Mapping[str, Any] | None = None, **request: Any) -> Requested:
        """Record ``Execution.Requested`` (PENDING) and return at once; a runner picks it up.

        Takes the keyword arguments of ``prepare_request``. Under the single-job rule the
        request takes its place in the group's quota in the same save (409 when none is free).
        """
        def attempt() -> Requested:
            execution = self.prepare_request(inputs=inputs, **request)
            try:
                position = self.store.record(execution, *self.admission.admit(execution.group_id, execution.id))
            except Exception:
                if request.get("id") is None:  # a fresh id: nobody else can have kept inputs under it
                    self.secret_inputs.discard(execution.id)
                raise
            return self.requested(execution, inputs, position)

        # A lost race for the quota is tried again on the fresh quota, which may now be full.
        return retry_on_conflict(attempt)

    def prepare_request(
        self, *, agents: Mapping[str, Any], tasks: Mapping[str, Any], inputs: Mapping[str, Any] | None = None,
        model: str, process: str = "sequential", manager_llm: str | None = None, planning: bool = False,
        reasoning: bool = False, execution_type: str = "crew", crew_id: str | None = None,
        crew_version: int | None = None, run_name: str | None = None, schedule_id: str | None = None,
        options: Mapping[str, Any] | None = None, id: UUID | None = None,
        crew_settings: Mapping[str, Any] | None = None, origin: Mapping[str, Any] | None = None,
    ) -> Execution:
        """A requested execution not yet saved, for callers that save it with something else
        (the scheduler saves it with the schedule's "fired"); then call ``requested``.

        A configuration too large for an event goes to the content store now.
        """
        group_id = current_actor().group_id
        snapshot = {
            "agents": dict(agents), "tasks": dict(tasks), "process": process, "manager_llm": manager_llm,
            "planning": planning, "reasoning": reasoning, "options": dict(options or {}),
        }
        if crew_settings:
            snapshot["crew"] = dict(crew_settings)
        offloader = Offloader()
        snapshot_ref = None
        if len(msgspec.json.encode(snapshot)) > SNAPSHOT_INLINE_BYTES:
            snapshot_ref = offloader.json(snapshot)
        name = run_name or placeholder_run_name(agents, tasks, datetime.fromtimestamp(self.clock(), UTC))
        execution = Execution.request(
            group_id, run_name=name, model=model, inputs=dict(inputs or {}),
            snapshot=None if snapshot_ref else snapshot, snapshot_ref=snapshot_ref, crew_id=crew_id,
            crew_version=crew_version, schedule_id=schedule_id, execution_type=execution_type, id=id,
            origin=origin,
        )
        offloader.save(self.content, group_id)
        if execution.redacted:
            # Kept before the save, so whichever runner claims the run, at once or later, finds them.
            self.secret_inputs.keep(group_id, execution.id, dict(inputs or {}))
        return execution

    def requested(self, execution: Execution, inputs: Mapping[str, Any] | None, position: int | None) -> Requested:
        """The answer to a prepared request once it is saved. ``inputs`` is unused (sealing happens in
        ``prepare_request``); the scheduler passes it, so it stays until that call changes."""
        return Requested(execution.id, PENDING.value, START_MESSAGE, execution.run_name, execution.version, position)

    def protect(self, execution_id: UUID, values: Iterable[str]) -> None:
        """Scrub ``values`` too (the provider keys a run is handed) from everything the run records.

        A run's secret inputs are scrubbed from the moment its runner claims it (the
        request itself redacts them). Values shorter than ``domain.redaction.MIN_SECRET_CHARS``
        are left alone.
        """
        known = self._secrets.get(execution_id)
        added = KnownSecrets(values)
        self._secrets[execution_id] = added if known is None else known | added

    def secrets_of(self, execution_id: UUID) -> KnownSecrets:
        """What is scrubbed by value from what ``execution_id`` records, before anything is stored."""
        return self._secrets.get(execution_id, NO_SECRETS)

    # -- the runner's side -------------------------------------------------

    def claim_next(self, runner_id: str, *, lease_s: float = DEFAULT_LEASE_S) -> ExecutionJob | None:
        """Claim the oldest unclaimed PENDING execution of any group, or None.

        The claim is an event appended at the version just read, so of two
        runners racing for one execution exactly one wins; the loser moves on
        to the next candidate.
        """
        now = self.clock()
        # The index is a read model: it may still list executions another runner
        # has just claimed. Losing a whole page of those must not read as "no work".
        tried: set[UUID] = set()
        while True:
            candidates = [i for i in self.index.pending(limit=CLAIM_PAGE + len(tried), now=now) if i not in tried]
            if not candidates:
                return None
            for execution_id in candidates:
                tried.add(execution_id)
                execution = self.store.find(execution_id)
                if not isinstance(execution, Execution) or execution.status is not PENDING:
                    continue
                with acting_as(Actor(execution.group_id, f"runner:{runner_id}", "operator", str(execution_id))):
                    try:
                        execution.claim(runner_id, now=now, lease_s=lease_s)
                        self.store.record(execution)
                    except (ConflictError, IntegrityError):
                        continue
                    job = self._job(execution)
                    if job.unavailable is None and execution.redacted:
                        self._secrets[execution.id] = secret_values(job.inputs)
                    return job

    def job(self, execution_id: UUID) -> ExecutionJob:
        """The runnable configuration of one of the caller's group's executions."""
        return self._job(self._load(execution_id))

    def mark_preparing(
        self, execution_id: UUID, runner_id: str | None = None, message: str = "Preparing crew"
    ) -> Written:
        return self._change(execution_id, lambda e: e.mark_preparing(runner_id, message))

    def mark_running(self, execution_id: UUID, runner_id: str | None = None, message: str = "Crew started") -> Written:
        return self._change(execution_id, lambda e: e.start(runner_id, message))

    def record_progress(self, execution_id: UUID, observations: Sequence[Observation]) -> Written:
        """Append a batch of observations (large texts go to the content store first)."""
        secrets = self.secrets_of(execution_id)
        offloader = Offloader()
        batch = offloader.observations([scrub_struct(o, secrets) for o in observations])
        offloader.save(self.content, current_actor().group_id)
        return self._change(execution_id, lambda e: e.record_progress(batch))

    def complete(self, execution_id: UUID, result: Any, message: str = "Execution completed") -> Written:
        secrets = self.secrets_of(execution_id)
        offloader = Offloader()
        ref = offloader.text(secrets.hide(result_text(result)))
        offloader.save(self.content, current_actor().group_id)
        written = self._change(execution_id, lambda e: e.complete(ref, message))
        self._forget(execution_id)
        return written

    def fail(self, execution_id: UUID, error: str) -> Written:
        error = self.secrets_of(execution_id).hide(error or "")
        written = self._change(execution_id, lambda e: e.fail(error))
        self._forget(execution_id)
        return written

    def cancel(self, execution_id: UUID, reason: str = "Cancelled by user") -> Written:
        """Record CANCELLED now, whatever runs (the runner's own stop, and force-stop)."""
        reason = self.secrets_of(execution_id).hide(reason)
        written = self._change(execution_id, lambda e: e.cancel(reason))
        self._forget(execution_id)
        return written

    # -- the user's side ---------------------------------------------------

    def request_cancel(self, execution_id: UUID, reason: str = "Cancelled by user") -> CancelOutcome:
        """PENDING: cancelled at once. PREPARING/RUNNING: a recorded request the runner acts on."""
        outcome: dict[str, Any] = {}

        def change(execution: Execution) -> None:
            outcome["runner"] = execution.request_cancel(reason)
            outcome["status"] = execution.status.value

        written = self._change(execution_id, change)
        if not outcome["runner"]:
            self._forget(execution_id)
        return CancelOutcome(execution_id, outcome["status"], outcome["runner"], written)

    def rename(self, execution_id: UUID, run_name: str) -> Written:
        return self._change(execution_id, lambda e: e.rename(run_name))

    def forget(self, execution_id: UUID) -> None:
        """A run this process held has ended (here or elsewhere): drop its secrets from memory."""
        self._secrets.pop(execution_id, None)

    def sweep_secret_inputs(self) -> int:
        """Destroy the sealed inputs of runs that ended without destroying them; returns how many."""
        return self.secret_inputs.sweep()

    # -- helpers -------------------------------------------------------------

    def _forget(self, execution_id: UUID) -> None:
        self.forget(execution_id)

    def _load(self, execution_id: UUID) -> Execution:
        return self.store.load(Execution, execution_id)

    def _change(self, execution_id: UUID, change: Callable[[Execution], Any]) -> Written:
        def attempt() -> Written:
            execution = self._load(execution_id)
            was_finished = execution.finished
            change(execution)
            # The place a run holds is given back in the same save as the event that ends it.
            freed = self.admission.release(execution) if execution.finished and not was_finished else []
            position = self.store.record(execution, *freed)
            if execution.finished and not was_finished and execution.redacted:
                self._destroy_secret_inputs(execution.id)
            return Written(execution.id, execution.version, position)

        return retry_on_conflict(attempt)

    def _destroy_secret_inputs(self, execution_id: UUID) -> None:
        """The run has ended: its sealed inputs go. A failure here is left to the sweep."""
        try:
            self.secret_inputs.discard(execution_id)
        except Exception as error:
            log.warning("the sealed inputs of execution %s are left to the sweep: %s", execution_id, error)

    def load(self, execution_id: UUID) -> Execution:
        """One of the caller's group's executions (``NotFoundError`` for any other id)."""
        return self._load(execution_id)

    def snapshot_of(self, execution: Execution) -> dict[str, Any]:
        """The configuration an execution ran (or will run), however it was kept."""
        snapshot = execution.snapshot
        if snapshot is None and execution.snapshot_ref is not None:
            data = self.content.get(execution.group_id, execution.snapshot_ref["sha256"])
            if data is None:
                raise NotFoundError(f"configuration of execution {execution.id} is missing")
            snapshot = msgspec.json.decode(data)
        return dict(snapshot or {})

    def _job(self, execution: Execution) -> ExecutionJob:
        snapshot = self.snapshot_of(execution)
        inputs, unavailable = dict(execution.inputs), None
        if execution.redacted:
            try:
                inputs = self.secret_inputs.open(execution.group_id, execution.id)
            except SecretInputsUnavailableError as error:
                unavailable = str(error)
        return ExecutionJob(
            execution_id=execution.id, group_id=execution.group_id, run_name=execution.run_name,
            model=execution.model, agents=snapshot.get("agents", {}), tasks=snapshot.get("tasks", {}),
            inputs=inputs, process=snapshot.get("process") or "sequential",
            manager_llm=snapshot.get("manager_llm"), planning=bool(snapshot.get("planning")),
            reasoning=bool(snapshot.get("reasoning")), execution_type=execution.execution_type,
            crew_id=execution.crew_id, options=snapshot.get("options") or {}, version=execution.version,
            crew_settings=snapshot.get("crew") or {},
            unavailable=unavailable, origin=execution.origin,
        )
