"""Gathering a crew to check or run: a saved crew, the fields sent over it, and the group's catalogue.

``POST /crews/debug`` and planning an execution see a crew the same way: a
config sent in the request wins over the saved crew's, a crew drawn on the
canvas (agent and task ids, no YAML) is turned into config maps from its
agent and task documents, and tools and models are checked against what the
caller's group may use. All reads go through ports (read models), in the
caller's group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import anyio.to_thread
from msgspec import UNSET

from application.crew_config import CrewReport, Finding
from application.crews import Catalogue, CrewDraft, canvas_config, debug_crew
from application.ids import parse_id
from application.ports import DocumentLookup, KeyNames, ModelCatalogue, ToolCatalogue
from application.tool_access import ToolAccess
from domain.context import current_actor
from domain.errors import NotFoundError
from domain.model_config import missing_key
from domain.run_options import crew_refusals


def blocked_models(models: list[dict[str, Any]], key_names: set[str]) -> dict[str, str]:
    """Each name of an enabled model the group cannot call for want of a key → why."""
    blocked: dict[str, str] = {}
    for model in models:
        missing = missing_key(model, key_names) if model["enabled"] else None
        if missing:
            reason = f"needs the API key {missing}, which this group has not stored (POST /api/v1/api-keys)"
            blocked |= {str(model["key"]): reason, str(model["litellm_model"]): reason}
    return blocked


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """What a caller sent about the crew; ``UNSET`` configs fall back to the saved crew's."""

    agents_yaml: Any = UNSET
    tasks_yaml: Any = UNSET
    process: str | None = None
    manager_llm: str | None = None
    model: str | None = None


class CrewDrafts:
    """Builds ``CrewDraft``s from requests and saved crews, and checks them."""

    def __init__(
        self, *, crews: DocumentLookup, agents: DocumentLookup, tasks: DocumentLookup,
        tools: ToolCatalogue, models: ModelCatalogue, default_model: str,
        tool_access: ToolAccess, key_names: KeyNames,
    ) -> None:
        self.crews = crews
        self.agents = agents
        self.tasks = tasks
        self.tools = tools
        self.models = models
        self.default_model = default_model
        self.tool_access = tool_access
        self.key_names = key_names

    async def saved_crew(self, crew_id: str | UUID) -> dict[str, Any]:
        """The caller's group's crew; a malformed id or another group's crew is ``NotFoundError``."""
        crew_uuid = parse_id(crew_id)
        crew = None if crew_uuid is None else await self.crews.get(current_actor().group_id, crew_uuid)
        if crew is None:
            raise NotFoundError(f"crew {crew_id} not found")
        return crew

    async def check(self, request: DraftRequest, crew_id: UUID | None = None) -> CrewReport:
        """What would stop the crew from running (``/crews/debug``); nothing is recorded."""
        saved = await self.saved_crew(crew_id) if crew_id is not None else None
        return await self.report(await self.draft(request, saved))

    async def report(self, draft: CrewDraft) -> CrewReport:
        catalogue = await self.catalogue()
        return await anyio.to_thread.run_sync(debug_crew, draft, catalogue)

    async def draft(self, request: DraftRequest, saved: dict[str, Any] | None) -> CrewDraft:
        """The request on top of ``saved`` (when given); a canvas crew's documents become its config."""
        crew = saved or {}
        agents_yaml = crew.get("agents_yaml") if request.agents_yaml is UNSET else request.agents_yaml
        tasks_yaml = crew.get("tasks_yaml") if request.tasks_yaml is UNSET else request.tasks_yaml
        problems: list[Finding] = []
        if crew and agents_yaml is None and tasks_yaml is None:
            agents_yaml, tasks_yaml, problems = await self._canvas(crew)
        problems += [Finding(".".join(path), reason) for path, reason in crew_refusals(crew)]
        return CrewDraft(
            agents_yaml=agents_yaml,
            tasks_yaml=tasks_yaml,
            process=request.process or crew.get("process") or "sequential",
            manager_llm=request.manager_llm if request.manager_llm is not None else crew.get("manager_llm"),
            model=request.model or crew.get("model") or self.default_model,
            problems=tuple(problems),
        )

    async def catalogue(self) -> Catalogue:
        """The tools and models the caller's group may use, and the tools that cannot run now."""
        group = current_actor().group_id
        tools = await self.tools.all(group)
        keys = await self.key_names.key_names(group)
        disabled = frozenset(tool["name"] for tool in tools if not tool["enabled"])
        return Catalogue(known_tools=frozenset(tool["name"] for tool in tools), disabled_tools=disabled,
                         blocked_tools=self.tool_access.blocked(tools, keys),
                         known_models=frozenset(await self.models.model_names(group)),
                         blocked_models=blocked_models(await self.models.all(group), keys))

    async def _canvas(self, crew: dict[str, Any]) -> tuple[Any, Any, list[Finding]]:
        agent_ids, task_ids = list(crew.get("agent_ids") or []), list(crew.get("task_ids") or [])
        agents = await self._documents(self.agents, agent_ids)
        tasks = await self._documents(self.tasks, task_ids)
        return canvas_config(agent_ids, task_ids, agents, tasks)

    @staticmethod
    async def _documents(view: DocumentLookup, ids: list[str]) -> dict[str, dict[str, Any] | None]:
        group = current_actor().group_id
        documents: dict[str, dict[str, Any] | None] = {}
        for raw in ids:
            document_id = parse_id(raw)
            documents[str(raw)] = None if document_id is None else await view.get(group, document_id)
        return documents
