"""Executions API: ``/api/v1/executions`` (start, read, list, cancel) and Kasal's aliases.

Starting an execution records ``Execution.Requested`` and answers at once
with status PENDING; a runner claims it later. The crew to run is checked
with the same rules as ``/crews/debug`` first, so a request that could never
run is a 422 with the findings instead of a FAILED run a moment later.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from psycopg_pool import ConnectionPool

from application.crew_config import CrewReport, missing_inputs, validate_crew
from application.crews import debug_crew
from application.executions import ExecutionService
from domain.context import current_actor
from domain.errors import ConflictError, InvalidError, NotFoundError
from domain.execution import TERMINAL, ExecutionStatus
from interface.content_store import PostgresContentStore
from interface.core import Core, Feature
from interface.http.common import Limit, Offset, found, group_id, location, settle
from interface.http.crews import CrewDebugRequest, CrewsFeature
from interface.http.tasks import TasksFeature
from interface.http.structs import UNSET, page_type, to_struct
from projections.execution_logs import ExecutionLogsProjection, ExecutionLogView
from projections.execution_trace import ContentView, ExecutionTraceProjection, ExecutionTraceView
from projections.executions import ExecutionIndexQueries, ExecutionsProjection, ExecutionView

ConfigMap = dict[str, Any] | str


class ExecutionCreate(msgspec.Struct, kw_only=True):
    """Kasal's ``CrewConfig``: a saved crew (``crew_id``) or an inline config. Unknown keys are ignored."""

    crew_id: str | None = None
    agents_yaml: ConfigMap | None = None
    tasks_yaml: ConfigMap | None = None
    inputs: dict[str, Any] | None = None
    model: str | None = None
    planning: bool = False
    reasoning: bool = False
    execution_type: str = "crew"
    process: str | None = None
    manager_llm: str | None = None
    run_name: str | None = None
    schedule_id: str | None = None


class ExecutionStarted(msgspec.Struct, kw_only=True):
    execution_id: str
    status: str
    message: str
    run_name: str


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    llm_calls: int = 0


class ExecutionRead(msgspec.Struct, kw_only=True):
    execution_id: str
    id: str
    group_id: str
    status: str
    run_name: str
    crew_id: str | None
    model: str
    execution_type: str
    inputs: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    result: dict[str, Any] | None
    error: str | None
    usage: Usage
    cancel_requested: dict[str, Any] | None
    version: int


ExecutionPage = page_type(ExecutionRead, "ExecutionPage")


class CancelAnswer(msgspec.Struct, kw_only=True):
    execution_id: str
    status: str
    message: str


class CancelRegistry:
    """In-process hooks a runner registers to hear that a run it holds must stop.

    The request is also recorded as ``Execution.CancelRequested`` (the
    ``cancel_requested`` column), which a runner in another process can watch.
    """

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


class ExecutionsFeature(Feature):
    name = "executions"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        # Commands run in worker threads, so their side tables use a small sync pool.
        self.sync_pool = ConnectionPool(core.database_url, open=False, min_size=1, max_size=4)
        self.content = PostgresContentStore(self.sync_pool)
        self.service = ExecutionService(core.store, self.content, ExecutionIndexQueries(self.sync_pool))
        self.view = ExecutionView(core.pool)
        self.logs = ExecutionLogView(core.pool)
        self.trace = ExecutionTraceView(core.pool)
        self.texts = ContentView(core.pool)
        self.cancellations = CancelRegistry()
        self.heartbeat_s = 15.0
        self.runner: Any = None  # set by the runner feature when this process runs crews

    def projections(self) -> list[Any]:
        return [ExecutionsProjection(), ExecutionLogsProjection(), ExecutionTraceProjection()]

    def route_handlers(self) -> list[Any]:
        from interface.http.execution_history import ExecutionHistoryController
        from interface.http.execution_logs import LOG_HANDLERS
        from interface.http.execution_trace import TRACE_HANDLERS

        return [ExecutionController, ExecutionHistoryController, *LOG_HANDLERS, *TRACE_HANDLERS]

    async def start(self) -> None:
        # Recovering orphans at start-up is the runner's job: only it knows which runners are alive.
        await self.core.run(functools.partial(self.sync_pool.open, wait=True, timeout=30))
        await self.core.run(self.content.create_table)

    async def stop(self) -> None:
        await self.core.run(self.sync_pool.close)

    async def get_or_404(self, execution_id: UUID) -> dict[str, Any]:
        """The caller's group's execution row; any other id is 404, whoever owns it."""
        return found(await self.view.get(group_id(), execution_id), "execution", execution_id)


def normalise_result(text: str | None) -> dict[str, Any] | None:
    """Kasal's result shape: a JSON object as is, a JSON list as ``items``, other text as ``value``."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"value": text}
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {"items": value}
    return {"value": text}


def execution_read(row: dict[str, Any]) -> ExecutionRead:
    terminal = ExecutionStatus(row["status"]) in TERMINAL
    return to_struct({
        **row, "execution_id": str(row["id"]), "id": str(row["id"]),
        "result": normalise_result(row.get("result_text")) if terminal else None,
    }, ExecutionRead)


def status_filter(status: str | None) -> str | None:
    if status is None or not status.strip():
        return None
    wanted = status.strip().upper()
    if wanted not in ExecutionStatus.__members__:
        raise InvalidError(
            f"Unknown status {status!r}",
            errors=[("status", "must be one of " + ", ".join(ExecutionStatus.__members__))],
        )
    return wanted


def _sent(value: ConfigMap | None) -> Any:
    return UNSET if value is None else value


async def saved_crew(crews: CrewsFeature | None, crew_id: str) -> dict[str, Any]:
    """The caller's group's crew; a malformed id, another group's crew or no crews feature is 404."""
    try:
        crew_uuid = UUID(crew_id)
    except ValueError:
        raise NotFoundError(f"crew {crew_id} not found") from None
    if crews is None:
        raise NotFoundError(f"crew {crew_id} not found")
    return found(await crews.view.get(group_id(), crew_uuid), "crew", crew_uuid)


async def plan_crew(core: Core, data: ExecutionCreate, inputs: dict[str, Any]) -> dict[str, Any]:
    """Check the crew to run and return what ``request_execution`` records about it.

    A saved crew (``crew_id``) supplies what the body leaves out; an inline
    ``agents_yaml``/``tasks_yaml`` overrides the saved one. Kasal also reads
    ``process`` and ``manager_llm`` from ``inputs``.
    """
    if data.agents_yaml is None and data.tasks_yaml is None and not data.crew_id:
        raise InvalidError("Send crew_id, or agents_yaml and tasks_yaml",
                           errors=[("crew_id", "or agents_yaml and tasks_yaml, is required")])
    try:
        crews: CrewsFeature | None = core.get(CrewsFeature)
    except LookupError:
        crews = None
    crew = await saved_crew(crews, data.crew_id) if data.crew_id else {}
    process = data.process or inputs.get("process") or None
    manager_llm = data.manager_llm or inputs.get("manager_llm") or None
    model = data.model or crew.get("model") or core.settings.default_model
    if crews is not None:
        draft = await crews.draft(CrewDebugRequest(
            crew_id=UUID(crew["id"]) if crew else None, agents_yaml=_sent(data.agents_yaml),
            tasks_yaml=_sent(data.tasks_yaml), process=process, manager_llm=manager_llm, model=model,
        ))
        report: CrewReport = await core.run(debug_crew, draft, await crews.catalogue(group_id()))
        process, manager_llm = draft.process, draft.manager_llm
    else:
        report = validate_crew(data.agents_yaml, data.tasks_yaml, process=process or "sequential",
                               manager_llm=manager_llm, default_model=model)
    if not report.valid or report.parsed is None:
        raise InvalidError("The crew configuration cannot run: " + "; ".join(
            f"{f.path}: {f.message}" for f in report.errors[:5]), errors=[(f.path, f.message) for f in report.errors])
    missing = missing_inputs(report, inputs)
    if missing:
        raise InvalidError("Missing inputs for placeholders: " + ", ".join(missing),
                           errors=[(f"inputs.{name}", f"no value for placeholder {{{name}}}") for name in missing])
    canvas_name = await first_task_name(core, crew) if data.tasks_yaml is None else None
    return {
        "agents": report.parsed.agents, "tasks": report.parsed.tasks, "model": model,
        "run_name": data.run_name or canvas_name, "process": process or "sequential", "manager_llm": manager_llm,
        "crew_id": crew.get("id"), "crew_version": crew.get("version"),
    }


async def first_task_name(core: Core, crew: dict[str, Any]) -> str | None:
    """A canvas crew's run is named after its first task document (config keys are slugs)."""
    task_ids = crew.get("task_ids") or []
    if not task_ids or crew.get("tasks_yaml") is not None:
        return None
    try:
        task = await core.get(TasksFeature).view.get(group_id(), UUID(str(task_ids[0])))
    except (LookupError, ValueError):
        return None
    return str(task["name"]) if task and task.get("name") else None


async def refuse_when_busy(core: Core) -> None:
    """Kasal's single-job rule, when configured: a second run is 409 instead of queueing.

    Only the caller's group is looked at, so the message never names another tenant's run.
    """
    if not core.settings.reject_when_busy:
        return
    view = core.get(ExecutionsFeature).view
    busy: list[dict[str, Any]] = []
    unfinished = 0
    for status in ("RUNNING", "PREPARING", "PENDING"):
        page = await view.list(group_id(), limit=1, offset=0, status=status)
        busy += page["items"]
        unfinished += page["total"]
    if unfinished >= core.settings.max_concurrent_executions:
        current = busy[0]
        raise ConflictError(
            f"Cannot start new job. Another job is currently running: '{current['run_name']}' "
            f"(Status: {current['status']})."
        )


class ExecutionController(Controller):
    path = "/api/v1/executions"
    tags = ["executions"]

    @post("/", summary="Start an execution", opt={"min_role": "operator"})
    async def create(self, request: Request[Any, Any, Any], core: Core, data: ExecutionCreate) -> Response[ExecutionStarted]:
        """Queue a crew run and answer at once (status PENDING). Send ``crew_id`` of a saved crew,
        or ``agents_yaml``/``tasks_yaml`` (objects, YAML or JSON text). Every ``{placeholder}``
        needs a value in ``inputs``; secret-looking inputs (key, token, secret, password) are
        redacted in everything recorded. 422 lists what would stop the crew from running."""
        inputs = dict(data.inputs or {})
        plan = await plan_crew(core, data, inputs)
        await refuse_when_busy(core)
        service = core.get(ExecutionsFeature).service
        requested = await core.run(functools.partial(
            service.request_execution, **plan, inputs=inputs, planning=data.planning, reasoning=data.reasoning,
            execution_type=data.execution_type, schedule_id=data.schedule_id,
        ))
        headers = await settle(core, None, requested.position)
        headers["Location"] = location(request, requested.execution_id)
        body = ExecutionStarted(execution_id=str(requested.execution_id), status=requested.status,
                                message=requested.message, run_name=requested.run_name)
        runner = core.get(ExecutionsFeature).runner
        if runner is not None:
            runner.wake()
        return Response(body, status_code=201, headers=headers)

    @get("/", summary="List executions")
    async def list_executions(
        self, core: Core, limit: Limit = 20, offset: Offset = 0, status: str | None = None, crew_id: str | None = None,
    ) -> ExecutionPage:  # type: ignore[valid-type]
        """Executions of the caller's group, newest first; ``status`` (any case) and ``crew_id`` filter."""
        page = await core.get(ExecutionsFeature).view.list(
            group_id(), limit=limit, offset=offset, status=status_filter(status), crew_id=crew_id)
        page["items"] = [execution_read(row) for row in page["items"]]
        return to_struct(page, ExecutionPage)

    @get("/{execution_id:uuid}", summary="Get an execution")
    async def get_execution(self, core: Core, execution_id: UUID) -> ExecutionRead:
        """Status, timestamps, usage, and (once finished) the result or error."""
        return execution_read(await core.get(ExecutionsFeature).get_or_404(execution_id))

    @get("/{execution_id:uuid}/status", summary="Get an execution's status (Kasal alias)")
    async def get_status(self, core: Core, execution_id: UUID) -> ExecutionRead:
        """Same as ``GET /executions/{id}``; the path Kasal's own clients poll."""
        return execution_read(await core.get(ExecutionsFeature).get_or_404(execution_id))

    @post("/{execution_id:uuid}/cancel", summary="Cancel an execution", status_code=200, opt={"min_role": "operator"})
    async def cancel(self, core: Core, execution_id: UUID) -> Response[CancelAnswer]:
        """PENDING executions are cancelled at once. Running ones are asked to stop: the request is
        recorded and the runner ends the run as CANCELLED. A finished execution is 409."""
        return await _cancel(core, execution_id, lenient=False)

    @post("/{execution_id:uuid}/stop", summary="Stop an execution (Kasal alias)", status_code=200,
          opt={"min_role": "operator"})
    async def stop(self, core: Core, execution_id: UUID) -> Response[CancelAnswer]:
        """Like ``cancel``, but a finished execution answers 200 saying it is not running (as Kasal does)."""
        return await _cancel(core, execution_id, lenient=True)

    @post("/{execution_id:uuid}/force-stop", summary="Force-stop an execution (Kasal alias)", status_code=200,
          opt={"min_role": "operator"})
    async def force_stop(self, core: Core, execution_id: UUID) -> Response[CancelAnswer]:
        """Record CANCELLED at once whatever the runner is doing (it is told to kill the crew)."""
        return await _cancel(core, execution_id, lenient=True, force=True)


async def _cancel(core: Core, execution_id: UUID, *, lenient: bool, force: bool = False) -> Response[CancelAnswer]:
    executions = core.get(ExecutionsFeature)
    row = await executions.get_or_404(execution_id)
    if lenient and ExecutionStatus(row["status"]) in TERMINAL:
        message = f"Execution is not running (status: {row['status']})"
        return Response(CancelAnswer(execution_id=str(execution_id), status=row["status"], message=message))
    reason = f"{'Force-stopped' if force else 'Cancelled'} by {current_actor().actor}"
    if force:
        written = await core.run(executions.service.cancel, execution_id, reason)
        status, message = "CANCELLED", "Execution cancelled"
        executions.cancellations.notify(execution_id, reason)
    else:
        outcome = await core.run(executions.service.request_cancel, execution_id, reason)
        written, status = outcome.written, outcome.status
        message = "Execution cancelled"
        if outcome.runner_must_stop:
            executions.cancellations.notify(execution_id, reason)
            message = "Cancellation requested; the execution stops shortly"
    headers = await settle(core, written)
    return Response(CancelAnswer(execution_id=str(execution_id), status=status, message=message), headers=headers)
