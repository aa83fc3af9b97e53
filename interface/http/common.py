"""Small helpers every controller shares: settling writes, pagination, ETags, instants and stream cursors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from uuid import UUID

from litestar import MediaType, Request, Response
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.serialization import encode_json

from application.documents import ExpectedVersions, Written
from domain.context import current_actor
from domain.errors import NotFoundError
from interface.wiring import Kasal
from projections.base import LogRows

# Offsets reach SQL as bigint, and some queries add the page size to them: a
# bound far below 2**63 keeps every such sum in range. No list is that long.
MAX_OFFSET = 2**31 - 1
Limit = Annotated[int, Parameter(ge=1, le=100, default=20, description="Page size (max 100)")]
Offset = Annotated[int, Parameter(ge=0, le=MAX_OFFSET, default=0, description=f"Items to skip (max {MAX_OFFSET})")]
IfMatch = Annotated[str | None, Parameter(header="If-Match", required=False, default=None)]
Instant = Annotated[str | None, Parameter(required=False, default=None, max_length=100,
                                          description="ISO 8601 date or date-time; without an offset, UTC")]
LastEventId = Annotated[str | None, Parameter(header="Last-Event-ID", required=False, default=None)]


def group_id() -> str:
    return current_actor().group_id


def invalid(key: str, source: str, message: str) -> ValidationException:
    """The 422 for one bad parameter (``source``: query, header or path), in pydantic's shape."""
    return ValidationException(message, extra=[{"message": message, "key": key, "source": source}])


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime; without an offset (or with ``Z``) it is UTC.

    ValueError for anything else, including an instant that falls outside the
    years 1 to 9999 once moved to UTC (``9999-12-31T23:00:00-05:00``).
    """
    text = text.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text} is beyond the instants a datetime holds once in UTC") from None


def instant_param(value: str | None, name: str, *, blank_is_none: bool = False) -> datetime | None:
    """``parse_instant`` of query parameter ``name``: None when not given (or blank, with ``blank_is_none``);
    a 422 naming the parameter when it is not an instant."""
    if value is None or (blank_is_none and not value.strip()):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise invalid(name, "query", f"{name} must be an ISO 8601 date or date-time, such as 2025-06-01 or "
                                     "2025-06-01T12:00:00Z") from None


def resume_after(after: int | None, last_event_id: str | None, highest: int) -> int:
    """Where a Server-Sent Events stream resumes: ``?after=`` wins; else the ``Last-Event-ID`` a
    reconnecting client sends (an id this stream gave, 0 to ``highest``); else 0. A header that is no
    such id is a 422, before the stream starts: its value never reaches a query."""
    if after is not None:
        return after
    text = (last_event_id or "").strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(highest)) or int(text) > highest:
        raise invalid("Last-Event-ID", "header", "Last-Event-ID must be an event id of this stream: an integer "
                                                  f"from 0 to {highest}")
    return int(text)


async def settle(kasal: Kasal, written: Written | None, position: int | None = None) -> dict[str, str]:
    """Wait until the read models include a write; the headers that say where it landed.

    A write that times out waiting still succeeded: it is answered normally
    with ``X-Kasal-Stale: true`` so the client knows a list may lag.
    """
    at = position if written is None else written.position
    fresh = await kasal.projector.wait_for(at, kasal.settings.read_your_writes_timeout)
    headers = {"X-Kasal-Position": str(at if at is not None else kasal.projector.position)}
    if not fresh:
        headers["X-Kasal-Stale"] = "true"
    if written is not None:
        headers["ETag"] = f'"{written.version}"'
    return headers


class ReadBack(Protocol):
    """A view that reads a resource from its read model, or folds it from the log the same way."""

    async def get(self, group_id: str, resource_id: UUID, /) -> dict[str, Any] | None: ...

    def from_log(self, rows: LogRows, group_id: str, resource_id: UUID, /) -> dict[str, Any] | None: ...

    def projected(self, group_id: str, resource_id: UUID, version: int, /) -> dict[str, Any] | None: ...


async def settled_resource(
    kasal: Kasal, written: Written, view: ReadBack, kind: str, resource_id: UUID | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``settle`` a write, then the resource it wrote (``written.id`` unless named) and the headers.

    A write whose read model outwaited the timeout still succeeded, so it is
    answered with what it wrote, never 404 nor the state before it: until the
    read model holds the written version, the resource is folded from the log
    exactly as the read model will hold it, and the answer says it is stale.
    """
    headers = await settle(kasal, written)
    resource_id = written.id if resource_id is None else resource_id
    group = group_id()
    resource = view.projected(group, resource_id, written.version) if resource_id == written.id else None
    if resource is None:
        resource = await view.get(group, resource_id)
    if resource is None or resource.get("version", written.version) < written.version:
        resource = await kasal.run(view.from_log, _log_rows(kasal), group, resource_id)
    return found(resource, kind, resource_id), headers


def _log_rows(kasal: Kasal) -> LogRows:
    by_table = {table: projection for projection in kasal.projector.projections for table in projection.tables}

    def row(table: str, aggregate_id: UUID) -> dict[str, Any] | None:
        events = kasal.store.history(aggregate_id)
        return by_table[table].row_of(events) if events else None

    return row


_VERSION_TAG = re.compile(r'(?:W/)?"([1-9][0-9]*)"|([1-9][0-9]*)')


async def group_page(
    kasal: Kasal, kind: str, limit: int, offset: int, render: Callable[[], Awaitable[Any]],
) -> Response[Any]:
    """A list page of the caller's group, rendered once per read-model position (``PageCache``)."""
    async def rendered() -> bytes:
        return encode_json(await render())

    body = await kasal.pages.page((kind, group_id(), limit, offset), rendered)
    return Response(content=body, media_type=MediaType.JSON)


def expected_version(if_match: str | None) -> ExpectedVersions | None:
    """The versions an ``If-Match`` allows; None without one, or for ``*``.

    ``*`` means "whatever version is current", which every write already
    demands: a resource that does not exist is 404 either way.

    Our ETags are ``"<version>"``; ``W/"3"`` and a bare ``3`` are accepted as
    well. A comma-separated list allows each version it names. A tag that is
    not one of ours (``"abc"``, ``1.5``, ``""``) can never equal the current
    ETag, so it allows nothing, and a header of only such tags fails the
    precondition (RFC 9110 §13.1.1) rather than being ignored.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    tags = (_VERSION_TAG.fullmatch(tag.strip()) for tag in if_match.split(","))
    return ExpectedVersions(frozenset(int(tag[1] or tag[2]) for tag in tags if tag is not None))


def etag(resource: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{resource["version"]}"'}


def found(resource: dict[str, Any] | None, kind: str, resource_id: Any) -> dict[str, Any]:
    if resource is None:
        raise NotFoundError(f"{kind} {resource_id} not found")
    return resource


def location(request: Request[Any, Any, Any], resource_id: Any) -> str:
    return f"{request.url.path.rstrip('/')}/{resource_id}"
