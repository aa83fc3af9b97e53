"""AI generation API: ``/api/v1/agent-generation``, ``/task-generation``, ``/crew-generation``.

The use case is ``application.generation_service``: prompts come from the
template store (a group's own ``generate_agent`` … wins over the built-in),
calls go through the service's one LiteLLM entry point with the group's own
provider keys, and what comes back is parsed and checked by
``application.generation``. How failures answer:

- unknown or disabled model, no API key for its provider (the message names
  the key to add), a key that cannot be decrypted: 422;
- the provider fails (unreachable, rejects the key, rate limit, …): 502 with
  the provider's message, minus anything that looks like a credential;
- the model's answer is still unusable after one retry: 502
  (``type: model_output_invalid``), because the request itself was fine.

Offline models (``offline/echo``) answer with JSON derived from the
description (``application.offline_generation``), so generation works with
no keys and no network. Real providers are never given a canned answer.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, post

from application.generation import AGENT, CREW, TASK, GeneratedAgent, GeneratedCrewTask, GeneratedTask, crew_name
from application.ports import ModelProviderError
from interface.http.common import settle
from interface.wiring import Kasal

Description = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ToolName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def provider_error_handler(request: Request[Any, Any, Any], exc: ModelProviderError) -> Response[Any]:
    """502 in the domain-error shape: the request was fine, the model provider was not."""
    body = {"detail": exc.detail, "type": exc.type, "errors": [{"field": f, "message": m} for f, m in exc.errors]}
    return Response(content=body, status_code=502, media_type=MediaType.JSON)


class AgentGenerateRequest(msgspec.Struct, kw_only=True):
    """``tools`` limits the tools the agent may get (default: every tool enabled for the group)."""

    description: Description
    model: ModelName | None = None
    tools: list[ToolName] | None = None


class AgentHint(msgspec.Struct, kw_only=True):
    """The agent a task is for, as far as the caller knows it."""

    name: str | None = None
    role: str | None = None
    goal: str | None = None
    backstory: str | None = None
    tools: list[ToolName] | None = None


class TaskGenerateRequest(msgspec.Struct, kw_only=True):
    """``agent`` (a name or an agent object) tailors the task to the agent that will do it."""

    description: Description
    model: ModelName | None = None
    agent: Name | AgentHint | None = None
    tools: list[ToolName] | None = None


class CrewGenerateRequest(msgspec.Struct, kw_only=True):
    """``save: true`` also creates the agents, tasks and a crew (named ``name``, else from the description)."""

    description: Description
    model: ModelName | None = None
    save: bool = False
    name: Name | None = None
    tools: list[ToolName] | None = None


class AgentGenerated(msgspec.Struct, kw_only=True):
    agent: GeneratedAgent


class TaskGenerated(msgspec.Struct, kw_only=True):
    task: GeneratedTask


class CrewGenerated(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Tasks name their agent and context by name; the ids are there when the crew was saved."""

    agents: list[GeneratedAgent]
    tasks: list[GeneratedCrewTask]
    crew_id: str | None = None
    agent_ids: list[str] | None = None
    task_ids: list[str] | None = None


def _agent_brief(agent: str | AgentHint) -> str:
    if isinstance(agent, str):
        return f"The task will be performed by the agent '{agent}'."
    known = [(label, value) for label, value in
             (("Name", agent.name), ("Role", agent.role), ("Goal", agent.goal), ("Backstory", agent.backstory))
             if value]
    return "The task will be performed by this agent:\n" + "\n".join(f"{k}: {v}" for k, v in known)


def _wanted_tools(data: TaskGenerateRequest) -> Collection[str] | None:
    if data.tools is not None:
        return data.tools
    if isinstance(data.agent, AgentHint):
        return data.agent.tools
    return None


class GenerationController(Controller):
    path = "/api/v1"
    tags = ["generation"]
    exception_handlers = {ModelProviderError: provider_error_handler}

    @post("/agent-generation/generate", summary="Generate an agent from a description", status_code=200)
    async def generate_agent(self, kasal: Kasal, data: AgentGenerateRequest) -> AgentGenerated:
        """Ask ``model`` (default: the service's default model) for one agent: name, role, goal,
        backstory and tools. Only tools enabled for the group (and in ``tools``, when sent) are
        kept. Nothing is saved. Unknown model or missing API key: 422; provider failure or an
        answer still unusable after one retry: 502."""
        agent = await kasal.services.generation.generate(AGENT, data.description, data.model, data.tools)
        return AgentGenerated(agent=agent)

    @post("/task-generation/generate", summary="Generate a task from a description", status_code=200)
    async def generate_task(self, kasal: Kasal, data: TaskGenerateRequest) -> TaskGenerated:
        """Ask ``model`` for one task: name, description, expected_output and tools, tailored to
        ``agent`` when sent. Nothing is saved. Errors as for agent generation."""
        brief = "" if data.agent is None else _agent_brief(data.agent)
        wanted = _wanted_tools(data)
        task = await kasal.services.generation.generate(
            TASK, data.description, data.model, None if wanted is None else list(wanted), brief=brief)
        return TaskGenerated(task=task)

    @post("/crew-generation/generate", summary="Generate a crew (agents and tasks) from a description",
          status_code=200)
    async def generate_crew(self, kasal: Kasal, data: CrewGenerateRequest) -> Response[CrewGenerated]:
        """Ask ``model`` for a crew: ``agents`` and ``tasks`` in run order, each task naming its
        ``agent`` and its ``context`` (earlier tasks) by name. With ``save: true`` the agents
        (using ``model``), tasks and a crew listing them are created as the caller, answered 201
        with ``crew_id``, ``agent_ids`` and ``task_ids``: ``POST /api/v1/executions
        {"crew_id": ...}`` runs it. A crew name in use gets a number (``Name (2)``).
        Errors as for agent generation."""
        generation = kasal.services.generation
        crew = await generation.generate(CREW, data.description, data.model, data.tools)
        if not data.save:
            return Response(CrewGenerated(agents=crew.agents, tasks=crew.tasks), status_code=200)
        saved = await generation.save_crew(crew, name=data.name or crew_name(data.description),
                                           description=data.description, model=generation.model_key(data.model))
        headers = await settle(kasal, None, saved.position)
        headers["Location"] = f"/api/v1/crews/{saved.crew_id}"
        body = CrewGenerated(agents=crew.agents, tasks=crew.tasks, crew_id=saved.crew_id,
                             agent_ids=saved.agent_ids, task_ids=saved.task_ids)
        return Response(body, status_code=201, headers=headers)
