"""The audit log: ``GET /api/v1/events`` (pages) and ``/events/stream`` (Server-Sent Events).

Both read the audit read model (``projections/audit.py``) within the caller's
group, in log order, with one cursor: the position of the last record seen.
A page answers ``next_after``, which fed back as ``after`` continues exactly
where it stopped; the stream sends each record with ``id:`` = its position,
so a reconnecting client's ``Last-Event-ID`` resumes it the same way. Then
the stream follows the projector, as an auditor's tail. Auditors (the lowest
role) may read these and nothing else; every higher role may read them too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from interface.http.common import Instant, LastEventId, group_id, instant_param, resume_after
from interface.http.execution_logs import wait_beyond
from interface.wiring import Kasal
from projections.audit import MAX_POSITION, AuditQuery

AUDITORS = {"min_role": "auditor"}
STREAM_PAGE = 500
MAX_TEXT = 1000

Kind = Literal["agent", "task", "crew", "tool", "model", "api_key", "template", "execution", "schedule", "token"]
After = Annotated[int, Parameter(ge=0, le=MAX_POSITION, default=0,
                                 description="Only events after this log position (the cursor: `next_after`)")]
ResumeAfter = Annotated[int | None, Parameter(ge=0, le=MAX_POSITION, required=False, default=None,
                                              description="Resume after this log position (wins over Last-Event-ID)")]
EventLimit = Annotated[int, Parameter(ge=1, le=1000, default=100, description="Events per page (max 1000)")]
AggregateId = Annotated[UUID | None, Parameter(required=False, default=None,
                                               description="Only events of this resource (or execution)")]
KindFilter = Annotated[Kind | None, Parameter(required=False, default=None, description="Only this kind")]
TypeFilter = Annotated[str | None, Parameter(
    required=False, default=None, min_length=1, max_length=MAX_TEXT,
    description="An exact type (`agent.updated.v1`), or a prefix ending in `.` (`agent.`)")]
Text = Annotated[str | None, Parameter(required=False, default=None, min_length=1, max_length=MAX_TEXT)]
STREAM_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "description": "The event's type, such as `agent.updated.v1`"},
        "id": {"type": "string", "description": "The event's log position"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/EventRecord"}},
    },
}
STREAM_DESCRIPTION = ("Server-Sent Events: one per audit record (`id:` = position, `event:` = type, `data:` = the "
                      "record as JSON), then live ones as they happen, with `: heartbeat` comments while idle")


class EventRecord(msgspec.Struct, kw_only=True):
    """One event of the log as an auditor sees it: who did what to which resource, when, in which request.
    ``data`` is the event's own fields, secrets replaced by ``[REDACTED]``."""

    position: int
    type: str
    kind: str
    aggregate_id: str
    version: int
    at: datetime
    actor: str
    group_id: str
    correlation_id: str
    data: dict[str, Any]


class EventPage(msgspec.Struct, kw_only=True):
    items: list[EventRecord]
    next_after: int
    has_more: bool


def audit_query(
    group: str | None, *, after: int = 0, aggregate_id: UUID | None = None, kind: str | None = None,
    event_type: str | None = None, actor: str | None = None, correlation_id: str | None = None,
    since: str | None = None, until: str | None = None,
) -> AuditQuery:
    """The query of the API's (and the export's) parameters; bad instants are a 422."""
    return AuditQuery(
        group_id=group, after=after, aggregate_id=aggregate_id, kind=kind, type=event_type, actor=actor,
        correlation_id=correlation_id, since=instant_param(since, "since"), until=instant_param(until, "until"),
    )


async def follow(kasal: Kasal, query: AuditQuery) -> AsyncIterator[dict[str, Any] | None]:
    """Each matching record after ``query.after``, then each new one as the projector folds it;
    None (a heartbeat) whenever ``kasal.log_heartbeat_s`` passes with nothing new."""
    while True:
        seen = kasal.projector.position  # read before the query, so nothing lands unnoticed in between
        records, more = await kasal.views.audit.page(query, STREAM_PAGE)
        for record in records:
            yield record
        if records:
            query = query.after_position(records[-1]["position"])
        if more:
            continue
        if not await wait_beyond(kasal, seen, kasal.log_heartbeat_s):
            yield None


async def stream_messages(kasal: Kasal, query: AuditQuery) -> AsyncIterator[ServerSentEventMessage]:
    async for record in follow(kasal, query):
        if record is None:
            yield ServerSentEventMessage(data=None, comment="heartbeat")
        else:
            yield ServerSentEventMessage(id=record["position"], event=record["type"],
                                         data=msgspec.json.encode(record).decode())


class EventController(Controller):
    path = "/api/v1/events"
    tags = ["audit"]

    @get("/", summary="List the audit log", opt=AUDITORS)
    async def list_events(
        self, kasal: Kasal, after: After = 0, limit: EventLimit = 100, aggregate_id: AggregateId = None,
        kind: KindFilter = None, type: TypeFilter = None, actor: Text = None, correlation_id: Text = None,
        since: Instant = None, until: Instant = None,
    ) -> EventPage:
        """The caller's group's events in log order, secrets redacted. Filters combine: ``aggregate_id``,
        ``kind``, ``type`` (exact, or a prefix ending in ``.``), ``actor``, ``correlation_id`` (the
        request's ``X-Request-ID``), ``since`` (inclusive) and ``until`` (exclusive). Feed ``next_after``
        back as ``after`` for the next page; each event is on exactly one page."""
        query = audit_query(group_id(), after=after, aggregate_id=aggregate_id, kind=kind, event_type=type,
                            actor=actor, correlation_id=correlation_id, since=since, until=until)
        records, more = await kasal.views.audit.page(query, limit)
        return EventPage(items=[EventRecord(**record) for record in records],
                         next_after=records[-1]["position"] if records else after, has_more=more)

    @get("/stream", summary="Follow the audit log (Server-Sent Events)",
         opt={**AUDITORS, "sse_schema": STREAM_EVENT, "sse_description": STREAM_DESCRIPTION})
    async def stream_events(
        self, kasal: Kasal, after: ResumeAfter = None, last_event_id: LastEventId = None,
        aggregate_id: AggregateId = None, kind: KindFilter = None, type: TypeFilter = None,
        actor: Text = None, correlation_id: Text = None, since: Instant = None, until: Instant = None,
    ) -> ServerSentEvent:
        """The records ``GET /events`` lists, with the same filters, then new ones as they happen,
        until the client leaves. ``id:`` is the position: reconnect with ``Last-Event-ID`` (or
        ``?after=``) to resume without gaps or repeats."""
        query = audit_query(group_id(), after=resume_after(after, last_event_id, MAX_POSITION),
                            aggregate_id=aggregate_id, kind=kind, event_type=type, actor=actor,
                            correlation_id=correlation_id, since=since, until=until)
        return ServerSentEvent(stream_messages(kasal, query),
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
