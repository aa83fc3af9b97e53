"""Execution logs: the list, live streams (WebSocket and SSE), and Kasal's aliases.

Streams replay from the log read model and then follow it, so a client that
reconnects with the last ``seq`` it saw (``?after=`` or ``Last-Event-ID``)
misses nothing and sees nothing twice, across reconnects and restarts. They
wake when the projector moves past the position they last read, and end with
a ``status`` message once the execution has ended and every line was sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import anyio
import msgspec
from litestar import Controller, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from domain.execution import TERMINAL, ExecutionStatus
from interface.http.common import LastEventId, Offset, group_id, resume_after
from interface.http.executions import execution_or_404
from interface.wiring import Kasal

MAX_SEQ = 2**63 - 1  # seq is a PostgreSQL bigint
LogLimit = Annotated[int, Parameter(ge=1, le=1000, description="Lines per page (max 1000)")]
After = Annotated[int, Parameter(ge=0, le=MAX_SEQ, description="Only lines with a larger seq")]
ResumeAfter = Annotated[
    int | None, Parameter(ge=0, le=MAX_SEQ, required=False, default=None, description="Resume after this seq")
]
PAGE = 500
MAX_WAIT_SLICE_S = 1.0
NOT_FOUND_CLOSE_CODE = 4404


class LogRead(msgspec.Struct, kw_only=True):
    seq: int
    timestamp: datetime
    level: str
    source: str
    message: str


class LogPage(msgspec.Struct, kw_only=True):
    execution_id: str
    items: list[LogRead]
    total: int
    limit: int
    after: int
    has_more: bool
    last_seq: int


class KasalLog(msgspec.Struct, kw_only=True):
    """Kasal's log record (``content``, ``timestamp``) plus our seq, level and source."""

    execution_id: str
    content: str
    timestamp: datetime
    seq: int
    level: str
    source: str


class KasalOutputs(msgspec.Struct, kw_only=True):
    logs: list[KasalLog]


def kasal_log(execution_id: UUID, row: dict[str, Any]) -> KasalLog:
    return KasalLog(execution_id=str(execution_id), content=row["message"], timestamp=row["timestamp"],
                    seq=row["seq"], level=row["level"], source=row["source"])


async def wait_beyond(kasal: Kasal, position: int, timeout: float) -> bool:
    """Wait until the projector passes ``position``; False when ``timeout`` ran out first.

    Waits in slices so a waiter also notices progress made by a projector it
    cannot be woken by (another event loop or process).
    """
    deadline = anyio.current_time() + timeout
    while kasal.projector.position <= position:
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            return False
        await kasal.projector.wait_for(position + 1, min(remaining, MAX_WAIT_SLICE_S))
    return True


async def follow(kasal: Kasal, group: str, execution_id: UUID, after: int) -> AsyncIterator[tuple[str, Any]]:
    """``("log", row)`` for each line after ``after``, ``("heartbeat", None)`` when idle,
    and finally ``("status", row)`` once the execution has ended and its lines were all sent."""
    last = after
    while True:
        seen = kasal.projector.position  # read before the queries, so nothing lands unnoticed in between
        rows = await kasal.views.execution_logs.after(group, execution_id, last, PAGE)
        for row in rows:
            last = row["seq"]
            yield "log", row
        if len(rows) == PAGE:
            continue
        state = await kasal.views.executions.state(group, execution_id)
        if state is None:
            return
        status, log_seq, _ = state
        if ExecutionStatus(status) in TERMINAL and log_seq <= last:
            yield "status", await kasal.views.executions.get(group, execution_id)
            return
        if not await wait_beyond(kasal, seen, kasal.log_heartbeat_s):
            yield "heartbeat", None


def log_message(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "log", **msgspec.to_builtins(LogRead(**{k: row[k] for k in LogRead.__struct_fields__}))}


def status_message(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "status", "execution_id": str(row["id"]), "status": row["status"], "error": row["error"],
        "last_seq": row["log_seq"], "completed_at": msgspec.to_builtins(row["completed_at"]),
    }


async def sse_events(kasal: Kasal, group: str, execution_id: UUID, after: int) -> AsyncIterator[ServerSentEventMessage]:
    async for kind, item in follow(kasal, group, execution_id, after):
        if kind == "log":
            yield ServerSentEventMessage(id=item["seq"], event="log", data=json.dumps(log_message(item)))
        elif kind == "status":
            yield ServerSentEventMessage(event="status", data=json.dumps(status_message(item)))
        else:
            yield ServerSentEventMessage(data=None, comment="heartbeat")


async def sse_response(
    kasal: Kasal, execution_id: UUID, after: int | None, last_event_id: str | None,
) -> ServerSentEvent:
    group = group_id()
    resume = resume_after(after, last_event_id, MAX_SEQ)
    await execution_or_404(kasal, execution_id)
    events = sse_events(kasal, group, execution_id, resume)
    return ServerSentEvent(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class ExecutionLogController(Controller):
    path = "/api/v1/execution-logs"
    tags = ["execution logs"]

    @get("/{execution_id:uuid}", summary="Get execution logs")
    async def list_logs(self, kasal: Kasal, execution_id: UUID, after: After = 0, limit: LogLimit = 200) -> LogPage:
        """Log lines in order. Page with ``after`` = the ``last_seq`` of the previous page."""
        group = group_id()
        await execution_or_404(kasal, execution_id)
        rows = await kasal.views.execution_logs.after(group, execution_id, after, limit + 1)
        items = [LogRead(**{k: r[k] for k in LogRead.__struct_fields__}) for r in rows[:limit]]
        return LogPage(
            execution_id=str(execution_id), items=items,
            total=await kasal.views.execution_logs.count(group, execution_id),
            limit=limit, after=after, has_more=len(rows) > limit, last_seq=items[-1].seq if items else after,
        )

    @get("/{execution_id:uuid}/sse", summary="Stream execution logs (Server-Sent Events)")
    async def sse(
        self, kasal: Kasal, execution_id: UUID, after: ResumeAfter = None, last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        """``event: log`` (``id:`` = seq) per line, ``: heartbeat`` comments while idle, and a final
        ``event: status`` when the execution has ended. Resumes after ``Last-Event-ID`` or ``?after=``."""
        return await sse_response(kasal, execution_id, after, last_event_id)


@websocket("/api/v1/execution-logs/{execution_id:uuid}/stream")
async def log_stream(socket: WebSocket[Any, Any, Any], kasal: Kasal, execution_id: UUID, after: After = 0) -> None:
    """Live log lines as JSON messages (``type: log``), then one ``type: status`` message, then close.
    Reconnect with ``?after=<last seq>`` to resume. An unknown execution closes with code 4404."""
    group = group_id()
    if await kasal.views.executions.state(group, execution_id) is None:
        await socket.close(code=NOT_FOUND_CLOSE_CODE, reason=f"execution {execution_id} not found")
        return
    await socket.accept()

    async def until_disconnect() -> None:
        try:
            while True:
                await socket.receive_data("text")
        except WebSocketDisconnect:
            tasks.cancel_scope.cancel()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(until_disconnect)
        try:
            async for kind, item in follow(kasal, group, execution_id, after):
                if kind == "log":
                    await socket.send_json(log_message(item))
                elif kind == "status":
                    await socket.send_json(status_message(item))
        except WebSocketDisconnect:
            pass  # the client left mid-send; nothing more to do
        tasks.cancel_scope.cancel()
    if socket.connection_state != "disconnect":
        await socket.close()


@get("/api/v1/execution-logs/{execution_id:uuid}/stream", summary="Stream execution logs (Server-Sent Events)",
     tags=["execution logs"])
async def log_stream_sse(
    kasal: Kasal, execution_id: UUID, after: ResumeAfter = None, last_event_id: LastEventId = None,
) -> ServerSentEvent:
    """The WebSocket's path, asked over plain HTTP (``Accept: text/event-stream``): the same stream as
    ``/execution-logs/{id}/sse``, so a client that cannot open a WebSocket still follows the log."""
    return await sse_response(kasal, execution_id, after, last_event_id)


@get("/api/v1/sse/executions/{execution_id:uuid}/stream", summary="Stream execution logs (Kasal SSE path)",
     tags=["execution logs"])
async def kasal_sse(
    kasal: Kasal, execution_id: UUID, after: ResumeAfter = None, last_event_id: LastEventId = None,
) -> ServerSentEvent:
    """Kasal's SSE path; the same stream as ``/execution-logs/{id}/sse``."""
    return await sse_response(kasal, execution_id, after, last_event_id)


@get("/api/v1/logs/executions/{execution_id:uuid}", summary="Execution logs, newest first (Kasal alias)",
     tags=["execution logs"])
async def kasal_logs(kasal: Kasal, execution_id: UUID, limit: LogLimit = 200, offset: Offset = 0) -> list[KasalLog]:
    """A plain list, newest first, as Kasal's ``/logs/executions/{id}`` answers."""
    await execution_or_404(kasal, execution_id)
    rows = await kasal.views.execution_logs.newest(group_id(), execution_id, limit, offset)
    return [kasal_log(execution_id, row) for row in rows]


@get("/api/v1/runs/{execution_id:uuid}/outputs", summary="Execution outputs (Kasal alias)", tags=["execution logs"])
async def kasal_outputs(kasal: Kasal, execution_id: UUID, after: After = 0, limit: LogLimit = 1000) -> KasalOutputs:
    """``{"logs": [...]}`` in order, as Kasal's ``/runs/{id}/outputs`` answers."""
    await execution_or_404(kasal, execution_id)
    rows = await kasal.views.execution_logs.after(group_id(), execution_id, after, limit)
    return KasalOutputs(logs=[kasal_log(execution_id, row) for row in rows])

