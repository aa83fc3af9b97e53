"""Executions API: ``/api/v1/executions`` (start, read, list, cancel) and Kasal's aliases.

Starting an execution records ``Execution.Requested`` and answers at once
with status PENDING; a runner claims it later. The use cases are
``application.execution_control`` (start, cancel) over ``application.planning``
(the crew is checked with the same rules as ``/crews/debug`` first).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post

from application.executions import Requested
from application.planning import PlanRequest
from application.replay import REPLAY_OF, RERUN_OF
from domain.errors import InvalidError
from domain.execution import TERMINAL, ExecutionStatus
from interface.http.common import Limit, Offset, found, group_id, instant_param, location, settle
from interface.http.history import AsOf, execution_as_of
from interface.http.structs import UNSET, Page, UnsetType, to_struct
from interface.wiring import Kasal

ConfigMap = dict[str, Any] | str


class ExecutionCreate(msgspec.Struct, kw_only=True):
    """Kasal's ``CrewConfig``: a saved crew (``crew_id``) or an inline config. Unknown keys are ignored.
    ``schedule_id``, when sent, must name a schedule of the caller's group."""

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


class RerunRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a rerun changes: all optional. ``from_task`` (a task's key or name): the tasks before it
    reuse their recorded outputs; ``inputs`` over the original's; ``model`` for its model;
    ``config`` merged over its configuration snapshot (``{"agents": {"writer": {"goal": "…"}}}``;
    a null removes a key)."""

    from_task: str | None = None
    inputs: dict[str, Any] | None = None
    model: str | None = None
    config: dict[str, Any] | None = None


class ExecutionAccepted(msgspec.Struct, kw_only=True):
    """The answer to a start: the request is recorded (PENDING); a runner takes it from there."""

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
    replayed_calls: int | UnsetType = UNSET
    """Calls a replay answered from its recording (counted in ``llm_calls``, at no cost); replays only."""


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
    replay_of: dict[str, Any] | None = None
    """``{"id"}`` of the execution this one replays."""
    rerun_of: dict[str, Any] | None = None
    """``{"id", "from_task"}`` of the execution this one reruns (``from_task`` null: all of it live)."""


class ExecutionPage(Page[ExecutionRead]):
    items: list[ExecutionRead]


class CancelAnswer(msgspec.Struct, kw_only=True):
    execution_id: str
    status: str
    message: str


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


def origin_fields(row: dict[str, Any]) -> dict[str, Any]:
    """``replay_of``/``rerun_of`` of an execution that repeats another (both null otherwise)."""
    origin = row.get("origin") or {}
    replay_of = {"id": origin[REPLAY_OF]} if origin.get(REPLAY_OF) else None
    rerun_of = {"id": origin[RERUN_OF], "from_task": origin.get("from_task")} if origin.get(RERUN_OF) else None
    return {"replay_of": replay_of, "rerun_of": rerun_of}


def execution_read(row: dict[str, Any]) -> ExecutionRead:
    terminal = ExecutionStatus(row["status"]) in TERMINAL
    return to_struct({
        **row, "execution_id": str(row["id"]), "id": str(row["id"]),
        "result": normalise_result(row.get("result_text")) if terminal else None, **origin_fields(row),
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


async def execution_or_404(kasal: Kasal, execution_id: UUID) -> dict[str, Any]:
    """The caller's group's execution row; any other id is 404, whoever owns it."""
    return found(await kasal.views.executions.get(group_id(), execution_id), "execution", execution_id)


def plan_request(data: ExecutionCreate) -> PlanRequest:
    return PlanRequest(
        crew_id=data.crew_id, agents_yaml=data.agents_yaml, tasks_yaml=data.tasks_yaml, inputs=dict(data.inputs or {}),
        model=data.model, process=data.process, manager_llm=data.manager_llm, run_name=data.run_name,
        schedule_id=data.schedule_id,
    )


async def accepted(request: Request[Any, Any, Any], kasal: Kasal, requested: Requested) -> Response[
        ExecutionAccepted]:
    """201 with Kasal's start body, once the read models show the new execution."""
    headers = await settle(kasal, None, requested.position)
    headers["Location"] = location(request, requested.execution_id)
    body = ExecutionAccepted(execution_id=str(requested.execution_id), status=requested.status,
                             message=requested.message, run_name=requested.run_name)
    return Response(body, status_code=201, headers=headers)


class ExecutionController(Controller):
    path = "/api/v1/executions"
    tags = ["executions"]

    @post("/", summary="Start an execution", opt={"min_role": "operator"})
    async def create(
        self, request: Request[Any, Any, Any], kasal: Kasal, data: ExecutionCreate,
    ) -> Response[ExecutionAccepted]:
        """Queue a crew run and answer at once (status PENDING). Send ``crew_id`` of a saved crew,
        or ``agents_yaml``/``tasks_yaml`` (objects, YAML or JSON text). Every ``{placeholder}``
        needs a value in ``inputs``; secret-looking inputs (key, token, secret, password) are
        redacted in everything recorded. 422 lists what would stop the crew from running. With
        the single-job rule on (``KASAL_REJECT_WHEN_BUSY``), a group already at its limit is 409."""
        requested = await kasal.services.control.start(
            plan_request(data), planning=data.planning, reasoning=data.reasoning, execution_type=data.execution_type)
        return await accepted(request, kasal, requested)

    @post("/{execution_id:uuid}/replay", summary="Replay an execution from its recording",
          opt={"min_role": "operator"})
    async def replay(self, request: Request[Any, Any, Any], kasal: Kasal, execution_id: UUID) -> Response[
            ExecutionAccepted]:
        """Run an ended execution again exactly as it happened: its configuration and inputs through
        the real crew runtime, every model and tool call answered from its recording (no provider,
        key or network; no tool side effect repeated; usage at cost 0). It ends COMPLETED with the
        original's result, or FAILED naming where it diverged (a FAILED original fails again).
        409 while the original runs; another group's is 404."""
        requested = await kasal.run(kasal.services.replays.replay, execution_id)
        return await accepted(request, kasal, requested)

    @post("/{execution_id:uuid}/rerun", summary="Rerun an execution, from a task, with changes",
          opt={"min_role": "operator"})
    async def rerun(
        self, request: Request[Any, Any, Any], kasal: Kasal, execution_id: UUID, data: RerunRequest | None = None,
    ) -> Response[ExecutionAccepted]:
        """Run an ended execution again live, with ``inputs``, ``model`` or ``config`` changed; from
        ``from_task`` on (the tasks before it reuse their recorded outputs, which reach later tasks'
        context as before). Checked like ``POST /executions`` (422); 409 while the original runs."""
        body = data or RerunRequest()
        draft = await kasal.run(functools.partial(
            kasal.services.replays.rerun_draft, execution_id, from_task=body.from_task, inputs=body.inputs,
            model=body.model, config=body.config))
        return await accepted(request, kasal, await kasal.services.control.rerun(draft))

    @get("/", summary="List executions")
    async def list_executions(
        self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0, status: str | None = None,
        crew_id: str | None = None,
    ) -> ExecutionPage:
        """Executions of the caller's group, newest first; ``status`` (any case) and ``crew_id`` filter."""
        page = await kasal.views.executions.list(
            group_id(), limit=limit, offset=offset, status=status_filter(status), crew_id=crew_id)
        page["items"] = [execution_read(row) for row in page["items"]]
        return to_struct(page, ExecutionPage)

    @get("/{execution_id:uuid}", summary="Get an execution")
    async def get_execution(self, kasal: Kasal, execution_id: UUID, as_of: AsOf = None) -> ExecutionRead:
        """Status, timestamps, usage, and (once finished) the result or error. ``?as_of=`` (ISO 8601)
        answers all of it as it was at that instant (404 before the execution was requested)."""
        moment = instant_param(as_of, "as_of")
        if moment is not None:
            return execution_read(await execution_as_of(kasal, execution_id, moment))
        return execution_read(await execution_or_404(kasal, execution_id))

    @get("/{execution_id:uuid}/status", summary="Get an execution's status (Kasal alias)")
    async def get_status(self, kasal: Kasal, execution_id: UUID) -> ExecutionRead:
        """Same as ``GET /executions/{id}``; the path Kasal's own clients poll."""
        return execution_read(await execution_or_404(kasal, execution_id))

    @post("/{execution_id:uuid}/cancel", summary="Cancel an execution", status_code=200, opt={"min_role": "operator"})
    async def cancel(self, kasal: Kasal, execution_id: UUID) -> Response[CancelAnswer]:
        """PENDING executions are cancelled at once. Running ones are asked to stop: the request is
        recorded and the runner ends the run as CANCELLED. A finished execution is 409."""
        return await _cancel(kasal, execution_id, lenient=False)

    @post("/{execution_id:uuid}/stop", summary="Stop an execution (Kasal alias)", status_code=200,
          opt={"min_role": "operator"})
    async def stop(self, kasal: Kasal, execution_id: UUID) -> Response[CancelAnswer]:
        """Like ``cancel``, but a finished execution answers 200 saying it is not running (as Kasal does)."""
        return await _cancel(kasal, execution_id, lenient=True)

    @post("/{execution_id:uuid}/force-stop", summary="Force-stop an execution (Kasal alias)", status_code=200,
          opt={"min_role": "operator"})
    async def force_stop(self, kasal: Kasal, execution_id: UUID) -> Response[CancelAnswer]:
        """Record CANCELLED at once whatever the runner is doing (it is told to kill the crew)."""
        return await _cancel(kasal, execution_id, lenient=True, force=True)


async def _cancel(kasal: Kasal, execution_id: UUID, *, lenient: bool, force: bool = False) -> Response[CancelAnswer]:
    done = await kasal.services.control.cancel(execution_id, lenient=lenient, force=force)
    answer = CancelAnswer(execution_id=str(execution_id), status=done.status, message=done.message)
    if done.written is None:
        return Response(answer)
    return Response(answer, headers=await settle(kasal, done.written))
