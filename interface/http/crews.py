"""Crews API: ``/api/v1/crews`` and ``/api/v1/crews/debug``."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put

from application.crew_config import Finding
from application.crews import Catalogue, CrewDraft, CrewService, canvas_config, debug_crew
from application.ports import ModelCatalogue, ToolCatalogue
from domain.crew import Crew
from interface.core import Core, Feature
from interface.http.agents import AgentsFeature
from interface.http.tasks import TasksFeature
from interface.http.common import IfMatch, Limit, Offset, etag, expected_version, found, group_id, location, settle
from interface.http.structs import UNSET, Resource, UnsetType, page_type, sent_fields, to_struct
from projections.documents import DocumentProjection, DocumentView

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


CrewPage = page_type(CrewRead, "CrewPage")


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


class CrewsFeature(Feature):
    name = "crews"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.service = CrewService(core.store)
        self.view = DocumentView(core.pool, "rm_crews")

    def projections(self) -> list[Any]:
        return [DocumentProjection.for_aggregate(Crew, "rm_crews")]

    def route_handlers(self) -> list[Any]:
        return [CrewController]

    async def catalogue(self, group: str) -> Catalogue:
        """The group's tools and models, from whichever catalogue features are installed."""
        tools = _installed(self.core, "tools", ToolCatalogue)
        models = _installed(self.core, "models", ModelCatalogue)
        known_tools: frozenset[str] | None = None
        disabled: frozenset[str] = frozenset()
        if tools is not None:
            enabled, off = await tools.tool_names(group)
            known_tools, disabled = frozenset(enabled | off), frozenset(off)
        known_models = None if models is None else frozenset(await models.model_names(group))
        return Catalogue(known_tools=known_tools, disabled_tools=disabled, known_models=known_models)

    async def draft(self, data: CrewDebugRequest) -> CrewDraft:
        """What to debug: the body, on top of the saved crew when ``crew_id`` is sent."""
        saved: dict[str, Any] = {}
        if data.crew_id is not None:
            saved = found(await self.view.get(group_id(), data.crew_id), "crew", data.crew_id)
        agents_yaml = saved.get("agents_yaml") if data.agents_yaml is UNSET else data.agents_yaml
        tasks_yaml = saved.get("tasks_yaml") if data.tasks_yaml is UNSET else data.tasks_yaml
        problems: list[Finding] = []
        if saved and agents_yaml is None and tasks_yaml is None:
            agents_yaml, tasks_yaml, problems = await self._canvas(saved)
        return CrewDraft(
            agents_yaml=agents_yaml,
            tasks_yaml=tasks_yaml,
            process=data.process or saved.get("process") or "sequential",
            manager_llm=data.manager_llm if data.manager_llm is not None else saved.get("manager_llm"),
            model=data.model or saved.get("model") or self.core.settings.default_model,
            problems=tuple(problems),
        )

    async def _canvas(self, crew: dict[str, Any]) -> tuple[Any, Any, list[Finding]]:
        agent_ids, task_ids = list(crew.get("agent_ids") or []), list(crew.get("task_ids") or [])
        agents = await _documents(self.core, AgentsFeature, agent_ids)
        tasks = await _documents(self.core, TasksFeature, task_ids)
        return canvas_config(agent_ids, task_ids, agents, tasks)


def _installed(core: Core, name: str, port: type[Any]) -> Any | None:
    """The installed feature called ``name`` if it offers ``port``; else None."""
    return next((f for f in core.features.values() if f.name == name and isinstance(f, port)), None)


async def _documents(core: Core, feature_cls: type[Any], ids: list[str]) -> dict[str, dict[str, Any] | None]:
    try:
        view = core.get(feature_cls).view
    except LookupError:
        return {}
    documents: dict[str, dict[str, Any] | None] = {}
    for raw in ids:
        try:
            documents[str(raw)] = await view.get(group_id(), UUID(str(raw)))
        except ValueError:
            documents[str(raw)] = None
    return documents


class CrewController(Controller):
    path = "/api/v1/crews"
    tags = ["crews"]

    @post("/", summary="Create a crew")
    async def create(self, request: Request[Any, Any, Any], core: Core, data: CrewCreate) -> Response[CrewRead]:
        """Create a crew; its name must be unique in the group (409 otherwise). ``agents_yaml``
        and ``tasks_yaml`` may be YAML text, JSON text or objects; a crew is saved even when
        they do not validate (``POST /crews/debug`` says why)."""
        crews = core.get(CrewsFeature)
        written = await core.run(crews.service.create, sent_fields(data))
        headers = await settle(core, written)
        crew = found(await crews.view.get(group_id(), written.id), "crew", written.id)
        headers["Location"] = location(request, written.id)
        return Response(to_struct(crew, CrewRead), status_code=201, headers=headers)

    @get("/", summary="List crews")
    async def list_crews(self, core: Core, limit: Limit = 20, offset: Offset = 0) -> CrewPage:  # type: ignore[valid-type]
        """Crews of the caller's group, newest first."""
        page = await core.get(CrewsFeature).view.list(group_id(), limit=limit, offset=offset)
        return to_struct(page, CrewPage)

    @get("/{crew_id:uuid}", summary="Get a crew")
    async def get_crew(self, core: Core, crew_id: UUID) -> Response[CrewRead]:
        """One crew of the caller's group; other groups' crews are 404."""
        crew = found(await core.get(CrewsFeature).view.get(group_id(), crew_id), "crew", crew_id)
        return Response(to_struct(crew, CrewRead), headers=etag(crew))

    @put("/{crew_id:uuid}", summary="Update a crew")
    async def update(
        self, core: Core, crew_id: UUID, data: CrewUpdate, if_match: IfMatch = None
    ) -> Response[CrewRead]:
        """Change only the fields sent; renaming to a name in use is 409.
        ``If-Match: "<version>"`` makes the change conditional."""
        crews = core.get(CrewsFeature)
        written = await core.run(crews.service.change, crew_id, sent_fields(data), expected_version(if_match))
        headers = await settle(core, written)
        crew = found(await crews.view.get(group_id(), crew_id), "crew", crew_id)
        return Response(to_struct(crew, CrewRead), headers=headers)

    @delete("/{crew_id:uuid}", summary="Delete a crew", status_code=204)
    async def remove(self, core: Core, crew_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete a crew; its name becomes free again."""
        crews = core.get(CrewsFeature)
        written = await core.run(crews.service.delete, crew_id, expected_version(if_match))
        return Response(None, status_code=204, headers=await settle(core, written))

    @post("/debug", summary="Validate a crew configuration", status_code=200, opt={"min_role": "operator"})
    async def debug(self, core: Core, data: CrewDebugRequest) -> CrewDebugReport:
        """Check a crew config without running it: YAML/JSON syntax (with line numbers),
        required fields, unknown agent or task references, context cycles, unknown or
        disabled tools and unknown models. Send ``crew_id`` to check a saved crew; a crew
        drawn on the canvas is checked from its agents and tasks."""
        crews = core.get(CrewsFeature)
        draft = await crews.draft(data)
        report = await core.run(debug_crew, draft, await crews.catalogue(group_id()))
        return CrewDebugReport(
            valid=report.valid, errors=report.errors, warnings=report.warnings,
            agents=report.agents, tasks=report.tasks, placeholders=report.placeholders,
        )
