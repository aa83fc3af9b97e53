"""Versions and time travel of definitions: ``…/{id}/versions``, ``…/versions/{n}`` and restores.

Each resource answers what it was at any version exactly as its ``GET``
answered then: the past is folded from the resource's own events
(``interface/http/history.py``) and rendered by the same view and wire
struct as ``GET``. A restore records a new version holding an old one's
fields (``<kind>.restored.v1``), also for a deleted resource, and answers as
any other write does.

Models are addressed by key, which may contain ``/``: their routes live in
``interface/http/models.py`` and use the same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol
from uuid import UUID

from litestar import Controller, Response, get, post

from application.documents import ExpectedVersions, Written
from interface.http.agents import AgentRead
from interface.http.api_keys import api_key_read
from interface.http.common import IfMatch, Limit, Offset, expected_version, group_id, settled_resource
from interface.http.crews import CrewRead
from interface.http.history import (
    KINDS,
    VersionPage,
    Wire,
    as_builtins,
    build_timeline,
    timeline,
    version_number,
    version_resource,
    versions_page,
)
from interface.http.models import model_read
from interface.http.schedules import schedule_read
from interface.http.structs import to_struct
from interface.http.tasks import TaskRead
from interface.http.templates import template_read
from interface.http.tools import tool_read
from interface.wiring import Kasal

AUDITOR = {"min_role": "auditor"}

WIRES: dict[str, Wire] = {
    "agent": lambda resource: to_struct(resource, AgentRead),
    "task": lambda resource: to_struct(resource, TaskRead),
    "crew": lambda resource: to_struct(resource, CrewRead),
    "tool": tool_read,
    "model": model_read,
    "template": template_read,
    "schedule": schedule_read,
    "api_key": api_key_read,
}
"""How ``GET /{resource}/{id}`` turns each kind's resource into its answer (``wire`` completes it)."""


def wire(kasal: Kasal, kind: str) -> Wire:
    """The answer ``GET`` gives for a resource of ``kind``: a tool also says whether it can run here."""
    if kind == "tool":
        return lambda resource: tool_read(resource, kasal.services.tool_access)
    return WIRES[kind]


async def resource_at_version(kasal: Kasal, kind: str, resource_id: UUID, version: int) -> dict[str, Any] | None:
    """The JSON body ``GET`` answered for a resource right after ``version``, as plain data.

    None when the resource was deleted at that version, never had it, does not
    exist, or is not the caller's group's to see. ``kind`` is one of ``KINDS``
    (``agent``, ``task``, ``crew``, ``tool``, ``model``, ``template``,
    ``schedule``, ``api_key``); a model is named by its id here.
    """
    past = await kasal.run(build_timeline, kasal, kind, resource_id, group_id())
    resource = None if past is None else past.resource(version)
    return None if resource is None else as_builtins(resource, wire(kasal, kind))


async def restored(
    kasal: Kasal, kind: str, resource_id: UUID, version: int, if_match: str | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Restore ``version`` as the caller; the resource as ``GET`` now answers it, and the write's headers."""
    service = RESTORERS[kind](kasal)
    written = await kasal.run(service.restore, resource_id, version, expected_version(if_match))
    resource, headers = await settled_resource(kasal, written, KINDS[kind].view(kasal), KINDS[kind].label, resource_id)
    headers["ETag"] = f'"{resource["version"]}"'
    if kind == "schedule":
        kasal.scheduler.wake()  # its next run may have moved
    return resource, headers


class Restorer(Protocol):
    """A kind's command service, as far as restoring goes."""

    def restore(self, resource_id: UUID, version: int, expected: ExpectedVersions | None = None, /) -> Written:
        ...


RESTORERS: dict[str, Callable[[Kasal], Restorer]] = {
    "agent": lambda kasal: kasal.services.agents,
    "task": lambda kasal: kasal.services.tasks,
    "crew": lambda kasal: kasal.services.crews,
    "tool": lambda kasal: kasal.services.tools,
    "model": lambda kasal: kasal.services.models,
    "template": lambda kasal: kasal.services.templates,
    "schedule": lambda kasal: kasal.services.schedules,
    "api_key": lambda kasal: kasal.services.api_keys,
}
"""The service whose ``restore(id, version, expected)`` records a restore of each kind."""


class _VersionRoutes(Controller):
    """``/versions``, ``/versions/{n}`` and ``/versions/{n}/restore`` of one kind addressed by id."""

    kind: ClassVar[str]

    @get("/{resource_id:uuid}/versions", summary="List a resource's versions", opt=AUDITOR)
    async def list_versions(
        self, kasal: Kasal, resource_id: UUID, limit: Limit = 20, offset: Offset = 0,
    ) -> VersionPage:
        """Every version, oldest first: when, who, the event, and each field that changed
        (``{"from", "to"}``, as ``GET`` showed it). A deleted resource still answers; its
        deletion is the last entry. Other groups' ids are 404."""
        past = await timeline(kasal, self.kind, resource_id)
        return versions_page(past, wire(kasal, self.kind), limit, offset)

    @get("/{resource_id:uuid}/versions/{version:str}", summary="Get a resource at one version", opt=AUDITOR)
    async def get_version(self, kasal: Kasal, resource_id: UUID, version: str) -> Response[Any]:
        """The resource exactly as ``GET`` answered right after version ``n``: 404 if it was
        deleted then or ``n`` is beyond the last version, 422 for ``n`` below 1."""
        number = version_number(version)
        past = await timeline(kasal, self.kind, resource_id)
        resource = version_resource(past, number)
        return Response(wire(kasal, self.kind)(resource), headers={"ETag": f'"{resource["version"]}"'})

    @post("/{resource_id:uuid}/versions/{version:str}/restore", summary="Restore a version", status_code=200)
    async def restore(
        self, kasal: Kasal, resource_id: UUID, version: str, if_match: IfMatch = None,
    ) -> Response[Any]:
        """Record a new version holding version ``n``'s fields (``…restored.v1``), bringing a
        deleted resource back. 409 if its name was taken since, 412 if ``If-Match`` fails;
        restoring what is already current writes nothing. Answers the resource as ``GET`` now does."""
        number = version_number(version)
        resource, headers = await restored(kasal, self.kind, resource_id, number, if_match)
        return Response(wire(kasal, self.kind)(resource), headers=headers)


ROUTES = (
    ("agent", "/api/v1/agents"), ("task", "/api/v1/tasks"), ("crew", "/api/v1/crews"), ("tool", "/api/v1/tools"),
    ("template", "/api/v1/templates"), ("api_key", "/api/v1/api-keys"),
    ("schedule", "/api/v1/scheduler/schedules"), ("schedule", "/api/v1/schedules"),
)
"""Each kind addressed by id, and where its routes live (schedules: Kasal's path and the short alias)."""


def version_routes(kind_name: str, at: str) -> type[_VersionRoutes]:
    """The version routes of one kind under ``at``, tagged like the kind's other routes (its path's last part)."""

    class VersionRoutes(_VersionRoutes):
        path = at
        tags = [at.rsplit("/", 1)[-1]]
        kind = kind_name

    return VersionRoutes


VERSION_CONTROLLERS = tuple(version_routes(kind, path) for kind, path in ROUTES)
