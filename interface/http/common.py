"""Small helpers every controller shares: settling writes, pagination, ETags."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import Parameter

from application.documents import Written
from domain.context import current_actor
from domain.errors import NotFoundError
from interface.core import Core

Limit = Annotated[int, Parameter(ge=1, le=100, default=20, description="Page size (max 100)")]
Offset = Annotated[int, Parameter(ge=0, default=0, description="Items to skip")]
IfMatch = Annotated[str | None, Parameter(header="If-Match", required=False, default=None)]


def group_id() -> str:
    return current_actor().group_id


async def settle(core: Core, written: Written | None, position: int | None = None) -> dict[str, str]:
    """Wait until the read models include a write; the headers that say where it landed.

    A write that times out waiting still succeeded: it is answered normally
    with ``X-Kasal-Stale: true`` so the client knows a list may lag.
    """
    at = position if written is None else written.position
    fresh = await core.projector.wait_for(at, core.settings.read_your_writes_timeout)
    headers = {"X-Kasal-Position": str(at if at is not None else core.projector.position)}
    if not fresh:
        headers["X-Kasal-Stale"] = "true"
    if written is not None:
        headers["ETag"] = f'"{written.version}"'
    return headers


def expected_version(if_match: str | None) -> int | None:
    """``If-Match: "3"`` → 3; anything else means no precondition."""
    if not if_match:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    return int(value) if value.isdigit() else None


def etag(resource: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{resource["version"]}"'}


def found(resource: dict[str, Any] | None, kind: str, resource_id: Any) -> dict[str, Any]:
    if resource is None:
        raise NotFoundError(f"{kind} {resource_id} not found")
    return resource


def location(request: Request[Any, Any, Any], resource_id: Any) -> str:
    return f"{request.url.path.rstrip('/')}/{resource_id}"
