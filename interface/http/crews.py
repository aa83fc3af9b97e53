"""Crews API: ``/api/v1/crews`` and ``/api/v1/crews/debug``."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put

from application.crew_config import Finding
from application.crew_drafts import DraftRequest
from interface.http.common import (
    IfMatch,
    Limit,
    Offset,
    etag,
    expected_version,
    group_id,
    group_page,
    location,
    settle,
    settled_resource,
)
from interface.http.history import AsOf, read
from interface.http.structs import UNSET, Page, Resource, UnsetType, sent_fields, to_struct
from interface.wiring import Kasal

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]
ConfigMap = str | dict[str, Any]
Process = Literal["sequential", "hierarchical"]
Rpm = Annotated[int, msgspec.Meta(ge=1)]


class CrewFields(msgspec.Struct, kw_only=True, omit_defaults=True):
    description: Text | None | UnsetType = UNSET
    process: Process | UnsetType = UNSET
    model: str | None | UnsetType = UNSET
    verbose: bool | UnsetType = UNSET
    memory: bool | UnsetType = UNSET
    planning: bool | UnsetType = UNSET
    manager_llm: str | None | UnsetType = UNSET
    max_rpm: Rpm | None | UnsetType = UNSET
    agent_ids: list[str] | UnsetType = UNSET
    task_ids: list[str] | UnsetType = UNSET
    nodes: list[dict[str, Any]] | UnsetType = UNSET
    edges: list[dict[str, Any]] | UnsetType = UNSET
    agents_yaml: ConfigMap | None | UnsetType = UNSET
    tasks_yaml: ConfigMap | None | UnsetType = UNSET


class CrewCreate(CrewFields, kw_only=True):
    name: Name


class CrewUpdate(CrewFields, kw_only=True):
    name: Name | UnsetType = UNSET


class ConfigEntry(msgspec.Struct, kw_only=True):
    """One decoded agent or task of ``agents_yaml``/``tasks_yaml``, in written order."""

    key: str
    config: dict[str, Any]


class CrewRead(Resource, kw_only=True):
    name: str
    description: str = ""
    process: str = "sequential"
    model: str | None = None
    verbose: bool = False
    memory: bool = False
    planning: bool = False
    manager_llm: str | None = None
    max_rpm: int | None = None
    agent_ids: list[str] = []
    task_ids: list[str] = []
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    agents_yaml: ConfigMap | None = None
    tasks_yaml: ConfigMap | None = None
    agents_config: list[ConfigEntry] | None = None
    tasks_config: list[ConfigEntry] | None = None


class CrewPage(Page[CrewRead]):
    items: list[CrewRead]


class CrewDebugRequest(msgspec.Struct, kw_only=True):
    """A config to check, or ``crew_id`` of a saved crew (fields sent here override it)."""

    crew_id: UUID | None = None
    agents_yaml: ConfigMap | None | UnsetType = UNSET
    tasks_yaml: ConfigMap | None | UnsetType = UNSET
    process: str | None = None
    manager_llm: str | None = None
    model: str | None = None


class CrewDebugReport(msgspec.Struct, kw_only=True):
    valid: bool
    errors: list[Finding]
    warnings: list[Finding]
    agents: list[str]
    tasks: list[str]
    placeholders: list[str]


class CrewController(Controller):
    path = "/api/v1/crews"
    tags = ["crews"]

    @post("/", summary="Create a crew")
    async def create(self, request: Request[Any, Any, Any], kasal: Kasal, data: CrewCreate) -> Response[CrewRead]:
        """Create a crew; its name must be unique in the group (409 otherwise). ``agents_yaml``
        and ``tasks_yaml`` may be YAML text, JSON text or objects; a crew is saved even when
        they do not validate (``POST /crews/debug`` says why). Every id in ``agent_ids`` and
        ``task_ids`` must be one of the group's agents or tasks (422 otherwise)."""
        written = await kasal.run(kasal.services.crews.create, sent_fields(data))
        crew, headers = await settled_resource(kasal, written, kasal.views.crews, "crew")
        headers["Location"] = location(request, written.id)
        return Response(to_struct(crew, CrewRead), status_code=201, headers=headers)

    @get("/", summary="List crews")
    async def list_crews(self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0) -> Response[CrewPage]:
        """Crews of the caller's group, newest first."""
        async def render() -> CrewPage:
            return to_struct(await kasal.views.crews.list(group_id(), limit=limit, offset=offset), CrewPage)

        return await group_page(kasal, "crews", limit, offset, render)

    @get("/{crew_id:uuid}", summary="Get a crew")
    async def get_crew(self, kasal: Kasal, crew_id: UUID, as_of: AsOf = None) -> Response[CrewRead]:
        """One crew of the caller's group; other groups' crews are 404. ``?as_of=`` answers it as it was then."""
        crew = await read(kasal, "crew", crew_id, as_of)
        return Response(to_struct(crew, CrewRead), headers=etag(crew))

    @put("/{crew_id:uuid}", summary="Update a crew")
    async def update(
        self, kasal: Kasal, crew_id: UUID, data: CrewUpdate, if_match: IfMatch = None
    ) -> Response[CrewRead]:
        """Change only the fields sent; renaming to a name in use is 409.
        ``If-Match: "<version>"`` makes the change conditional."""
        written = await kasal.run(kasal.services.crews.change, crew_id, sent_fields(data), expected_version(if_match))
        crew, headers = await settled_resource(kasal, written, kasal.views.crews, "crew")
        return Response(to_struct(crew, CrewRead), headers=headers)

    @delete("/{crew_id:uuid}", summary="Delete a crew", status_code=204)
    async def remove(self, kasal: Kasal, crew_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete a crew; its name becomes free again."""
        written = await kasal.run(kasal.services.crews.delete, crew_id, expected_version(if_match))
        return Response(None, status_code=204, headers=await settle(kasal, written))

    @post("/debug", summary="Validate a crew configuration", status_code=200, opt={"min_role": "operator"})
    async def debug(self, kasal: Kasal, data: CrewDebugRequest) -> CrewDebugReport:
        """Check a crew config without running it: YAML/JSON syntax (with line numbers),
        required fields, unknown agent or task references, context cycles, unknown or
        disabled tools and unknown models. Send ``crew_id`` to check a saved crew; a crew
        drawn on the canvas is checked from its agents and tasks."""
        report = await kasal.services.drafts.check(DraftRequest(
            agents_yaml=data.agents_yaml, tasks_yaml=data.tasks_yaml, process=data.process,
            manager_llm=data.manager_llm, model=data.model,
        ), data.crew_id)
        return CrewDebugReport(
            valid=report.valid, errors=report.errors, warnings=report.warnings,
            agents=report.agents, tasks=report.tasks, placeholders=report.placeholders,
        )
