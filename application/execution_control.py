"""Starting and stopping executions, as a caller asks for them.

``start`` plans the crew (422 when it could never run) and records the request
(PENDING; 409 under the single-job rule when the group is busy); a runner
claims it once the projector has put it in the read model claims are made
from. ``cancel`` ends a PENDING execution at once and
asks the runner holding a running one to stop: the request is recorded as an
event and announced to this process's runner through the ``CancelRegistry``.
A force-stop records CANCELLED itself. A runner in another process reads
either from the log within a second and stops the crew (see
``interface.runner.ExecutionRunner._watch_stops``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import anyio.to_thread

from application.documents import Written
from application.executions import ExecutionService, Requested
from application.planning import Planner, PlanRequest
from application.ports import DocumentLookup
from application.replay import RerunDraft
from domain.context import current_actor
from domain.errors import NotFoundError
from domain.execution import TERMINAL, ExecutionStatus


class CancelRegistry:
    """In-process hooks a runner registers to hear that a run it holds must stop."""

    def __init__(self) -> None:
        self._handlers: dict[UUID, Callable[[str], None]] = {}

    def register(self, execution_id: UUID, handler: Callable[[str], None]) -> Callable[[], None]:
        """Call ``handler(reason)`` on cancel; returns the function that unregisters it."""
        self._handlers[execution_id] = handler

        def unregister() -> None:
            if self._handlers.get(execution_id) is handler:
                del self._handlers[execution_id]

        return unregister

    def notify(self, execution_id: UUID, reason: str) -> bool:
        handler = self._handlers.get(execution_id)
        if handler is None:
            return False
        handler(reason)
        return True


@dataclass(frozen=True, slots=True)
class Cancellation:
    """What a cancel did; ``written`` is None when nothing was recorded (already finished)."""

    execution_id: UUID
    status: str
    message: str
    written: Written | None


class ExecutionControl:
    """The start and cancel use cases over ``ExecutionService``."""

    def __init__(
        self, executions: ExecutionService, planner: Planner, *, rows: DocumentLookup,
        cancellations: CancelRegistry,
    ) -> None:
        self.executions = executions
        self.planner = planner
        self.rows = rows
        self.cancellations = cancellations

    async def start(
        self, request: PlanRequest, *, planning: bool = False, reasoning: bool = False, execution_type: str = "crew",
    ) -> Requested:
        """Record ``Execution.Requested`` for a crew that can run, and answer at once."""
        plan = await self.planner.plan(request)
        requested = await anyio.to_thread.run_sync(functools.partial(
            self.executions.request_execution, **{**plan.fields(), "planning": planning or plan.planning},
            inputs=request.inputs, reasoning=reasoning, execution_type=execution_type, schedule_id=request.schedule_id,
        ))
        return requested

    async def rerun(self, draft: RerunDraft) -> Requested:
        """Record a rerun, checked like any request (its changes may not make a crew that cannot run)."""
        plan = await self.planner.plan(PlanRequest(
            agents_yaml=draft.agents, tasks_yaml=draft.tasks, inputs=draft.inputs, model=draft.model,
            process=draft.process, manager_llm=draft.manager_llm, run_name=draft.run_name,
        ))
        fields = {**plan.fields(), "planning": draft.planning, "crew_settings": draft.crew_settings,
                  "crew_id": draft.crew_id, "options": draft.options, "origin": draft.origin()}
        return await anyio.to_thread.run_sync(functools.partial(
            self.executions.request_execution, **fields, inputs=draft.inputs))

    async def cancel(self, execution_id: UUID, *, lenient: bool, force: bool = False) -> Cancellation:
        """Cancel, or (``force``) record CANCELLED at once whatever the runner is doing.

        A finished execution is a ``ConflictError``, unless ``lenient`` (Kasal's
        ``stop``), which answers that it is not running.
        """
        row = await self.rows.get(current_actor().group_id, execution_id)
        if row is None:
            raise NotFoundError(f"execution {execution_id} not found")
        if lenient and ExecutionStatus(row["status"]) in TERMINAL:
            return Cancellation(execution_id, row["status"], f"Execution is not running (status: {row['status']})",
                                 None)
        reason = f"{'Force-stopped' if force else 'Cancelled'} by {current_actor().actor}"
        if force:
            written = await anyio.to_thread.run_sync(self.executions.cancel, execution_id, reason)
            self.cancellations.notify(execution_id, reason)
            return Cancellation(execution_id, "CANCELLED", "Execution cancelled", written)
        outcome = await anyio.to_thread.run_sync(self.executions.request_cancel, execution_id, reason)
        message = "Execution cancelled"
        if outcome.runner_must_stop:
            self.cancellations.notify(execution_id, reason)
            message = "Cancellation requested; the execution stops shortly"
        return Cancellation(execution_id, outcome.status, message, outcome.written)
