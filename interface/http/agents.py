"""Agents API: ``/api/v1/agents``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put

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

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
Filled = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000, pattern=r"\S",
                                      description="Required: at least one character that is not white space")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class AgentFields(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: Name | UnsetType = UNSET
    llm: str | None | UnsetType = UNSET
    tools: list[str] | UnsetType = UNSET
    tool_configs: dict[str, Any] | UnsetType = UNSET
    max_iter: Annotated[int, msgspec.Meta(ge=1, le=1000)] | UnsetType = UNSET
    max_rpm: Annotated[int, msgspec.Meta(ge=1)] | None | UnsetType = UNSET
    max_execution_time: Annotated[int, msgspec.Meta(ge=1)] | None | UnsetType = UNSET
    verbose: bool | UnsetType = UNSET
    allow_delegation: bool | UnsetType = UNSET
    cache: bool | UnsetType = UNSET
    memory: bool | UnsetType = UNSET
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None | UnsetType = UNSET
    function_calling_llm: str | None | UnsetType = UNSET
    system_template: str | None | UnsetType = UNSET
    prompt_template: str | None | UnsetType = UNSET
    response_template: str | None | UnsetType = UNSET
    max_retry_limit: Annotated[int, msgspec.Meta(ge=0)] | UnsetType = UNSET
    use_system_prompt: bool | UnsetType = UNSET
    respect_context_window: bool | UnsetType = UNSET
    allow_code_execution: bool | UnsetType = UNSET


class AgentCreate(AgentFields, kw_only=True):
    role: Filled
    goal: Filled
    backstory: Filled


class AgentUpdate(AgentFields, kw_only=True):
    role: Filled | UnsetType = UNSET
    goal: Filled | UnsetType = UNSET
    backstory: Filled | UnsetType = UNSET


class AgentRead(Resource, kw_only=True):
    name: str
    role: str
    goal: str
    backstory: str
    llm: str | None
    tools: list[str]
    tool_configs: dict[str, Any]
    max_iter: int
    max_rpm: int | None
    max_execution_time: int | None
    verbose: bool
    allow_delegation: bool
    cache: bool
    memory: bool
    temperature: float | None
    function_calling_llm: str | None
    system_template: str | None
    prompt_template: str | None
    response_template: str | None
    max_retry_limit: int
    use_system_prompt: bool
    respect_context_window: bool
    allow_code_execution: bool


class AgentPage(Page[AgentRead]):
    items: list[AgentRead]


class AgentController(Controller):
    path = "/api/v1/agents"
    tags = ["agents"]

    @post("/", summary="Create an agent")
    async def create(self, request: Request[Any, Any, Any], kasal: Kasal, data: AgentCreate) -> Response[AgentRead]:
        """Create an agent. Fields left out take Kasal's defaults."""
        written = await kasal.run(kasal.services.agents.create, sent_fields(data))
        agent, headers = await settled_resource(kasal, written, kasal.views.agents, "agent")
        headers["Location"] = location(request, written.id)
        return Response(to_struct(agent, AgentRead), status_code=201, headers=headers)

    @get("/", summary="List agents")
    async def list_agents(self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0) -> Response[AgentPage]:
        """Agents of the caller's group, newest first."""
        async def render() -> AgentPage:
            return to_struct(await kasal.views.agents.list(group_id(), limit=limit, offset=offset), AgentPage)

        return await group_page(kasal, "agents", limit, offset, render)

    @get("/{agent_id:uuid}", summary="Get an agent")
    async def get_agent(self, kasal: Kasal, agent_id: UUID, as_of: AsOf = None) -> Response[AgentRead]:
        """One agent of the caller's group; other groups' agents are 404. ``?as_of=`` answers it as it was then."""
        agent = await read(kasal, "agent", agent_id, as_of)
        return Response(to_struct(agent, AgentRead), headers=etag(agent))

    @put("/{agent_id:uuid}", summary="Update an agent")
    async def update(
        self, kasal: Kasal, agent_id: UUID, data: AgentUpdate, if_match: IfMatch = None
    ) -> Response[AgentRead]:
        """Change only the fields sent. ``If-Match: "<version>"`` makes the change conditional."""
        written = await kasal.run(kasal.services.agents.change, agent_id, sent_fields(data), expected_version(if_match))
        agent, headers = await settled_resource(kasal, written, kasal.views.agents, "agent")
        return Response(to_struct(agent, AgentRead), headers=headers)

    @delete("/{agent_id:uuid}", summary="Delete an agent", status_code=204)
    async def remove(self, kasal: Kasal, agent_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete an agent; tasks that pointed at it are unassigned (recorded as events)."""
        written = await kasal.run(kasal.services.agents.delete, agent_id, expected_version(if_match))
        headers = await settle(kasal, written)
        return Response(None, status_code=204, headers=headers)
