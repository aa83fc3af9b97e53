"""Executions API: ``/api/v1/executions`` (start, read, list, cancel) and Kasal's aliases.

Starting an execution records ``Execution.Requested`` and answers at once
with status PENDING; a runner claims it later. The use cases are
``application.execution_control`` (start, cancel) over ``application.planning``
(the crew is checked with the same rules as ``/crews/debug`` first).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post

from application.planning import PlanRequest
from domain.errors import InvalidError
from domain.execution import TERMINAL, ExecutionStatus
from interface.http.common import Limit, Offset, found, group_id, instant_param, location, settle
from interface.http.history import AsOf, execution_as_of
from interface.http.structs import Page, to_struct
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


async def execution_or_404(kasal: Kasal, execution_id: UUID) -> dict[str, Any]:
    """The caller's group's execution row; any other id is 404, whoever owns it."""
    return found(await kasal.views.executions.get(group_id(), execution_id), "execution", execution_id)


def plan_request(data: ExecutionCreate) -> PlanRequest:
    return PlanRequest(
        crew_id=data.crew_id, agents_yaml=data.agents_yaml, tasks_yaml=data.tasks_yaml, inputs=dict(data.inputs or {}),
        model=data.model, process=data.process, manager_llm=data.manager_llm, run_name=data.run_name,
        schedule_id=data.schedule_id,
    )


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
        headers = await settle(kasal, None, requested.position)
        headers["Location"] = location(request, requested.execution_id)
        body = ExecutionAccepted(execution_id=str(requested.execution_id), status=requested.status,
                                 message=requested.message, run_name=requested.run_name)
        return Response(body, status_code=201, headers=headers)

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
