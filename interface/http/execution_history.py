"""Execution history: ``/api/v1/execution-history`` and Kasal's ``/executions/history``.

A history entry is what an auditor or someone comparing runs needs: the
timeline of status changes (who, when, why), the configuration snapshot that
ran, the inputs (secrets redacted), per-task outputs, usage, and the result
or error. It is exactly what folding the execution's events gives.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, get

from application.replay import REPLAY_OF
from domain.execution import TERMINAL, ExecutionStatus
from interface.http.common import Limit, Offset, group_id
from interface.http.executions import Usage, execution_or_404, normalise_result, origin_fields, status_filter
from interface.http.structs import UNSET, Page, UnsetType, to_struct
from interface.wiring import Kasal


class TimelineEntry(msgspec.Struct, kw_only=True):
    status: str
    at: str
    actor: str
    message: str


class HistoryRead(msgspec.Struct, kw_only=True):
    execution_id: str
    group_id: str
    run_name: str
    status: str
    crew_id: str | None
    crew_version: int | None
    model: str
    execution_type: str
    schedule_id: str | None
    inputs: dict[str, Any]
    redacted_inputs: list[str]
    config: dict[str, Any] | None
    config_ref: dict[str, Any] | None
    timeline: list[TimelineEntry]
    result: dict[str, Any] | None
    result_ref: dict[str, Any] | None
    error: str | None
    task_outputs: list[dict[str, Any]]
    usage: Usage
    cancel_requested: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    version: int
    replay_of: dict[str, Any] | None = None
    rerun_of: dict[str, Any] | None = None
    repeats: list[dict[str, Any]] | UnsetType = UNSET
    """Its replays and reruns, oldest first (``GET /execution-history/{id}`` only)."""


class ExecutionHistoryPage(Page[HistoryRead]):
    items: list[HistoryRead]


def history_read(row: dict[str, Any]) -> HistoryRead:
    terminal = ExecutionStatus(row["status"]) in TERMINAL
    config = row["config"]
    if config is None and row.get("config_text"):
        config = json.loads(row["config_text"])
    return to_struct({
        **row, "execution_id": str(row["id"]), "config": config,
        "result": normalise_result(row.get("result_text")) if terminal else None, **origin_fields(row),
    }, HistoryRead)


def repeat(row: dict[str, Any]) -> dict[str, Any]:
    origin = row["origin"]
    kind = "replay" if origin.get(REPLAY_OF) else "rerun"
    return {"execution_id": str(row["id"]), "kind": kind, "from_task": origin.get("from_task"),
            "status": row["status"], "created_at": row["created_at"], "requested_by": row["requested_by"]}


async def history_page(
    kasal: Kasal, limit: int, offset: int, status: str | None,
) -> ExecutionHistoryPage:
    page = await kasal.views.executions.list(group_id(), limit=limit, offset=offset, status=status_filter(status))
    page["items"] = [history_read(row) for row in page["items"]]
    return to_struct(page, ExecutionHistoryPage)


class ExecutionHistoryController(Controller):
    path = "/api/v1"
    tags = ["execution history"]

    @get("/execution-history", summary="List execution history")
    async def list_history(
        self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0, status: str | None = None,
    ) -> ExecutionHistoryPage:
        """Past and current executions of the caller's group, newest first, with their timelines."""
        return await history_page(kasal, limit, offset, status)

    @get("/executions/history", summary="List execution history (Kasal alias)")
    async def list_history_alias(
        self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0, status: str | None = None,
    ) -> ExecutionHistoryPage:
        """Kasal's path for the history list (which Kasal itself shadows with a 404)."""
        return await history_page(kasal, limit, offset, status)

    @get("/execution-history/{execution_id:uuid}", summary="Get one execution's history")
    async def get_history(self, kasal: Kasal, execution_id: UUID) -> HistoryRead:
        """Timeline ``[{status, at, actor, message}]``, config snapshot, inputs, per-task outputs,
        usage, and the result or error of one execution; ``repeats`` lists its replays and reruns."""
        history = history_read(await execution_or_404(kasal, execution_id))
        history.repeats = [repeat(row) for row in await kasal.views.executions.repeats(group_id(), execution_id)]
        return history
