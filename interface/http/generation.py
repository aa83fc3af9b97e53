"""AI generation API: ``/api/v1/agent-generation``, ``/task-generation``, ``/crew-generation``.

Prompts come from the template store (a group's own ``generate_agent`` …
wins over the built-in), calls go through the service's one LiteLLM entry
point with the group's own provider keys, and what comes back is parsed and
checked by ``application.generation``. How failures answer:

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

import functools
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, MediaType, Request, Response, post

from application import offline_generation
from application.api_keys import ApiKeyDecryptionError
from application.generation import (
    AGENT, CREW, TASK, CrewSaver, Generation, GeneratedAgent, GeneratedCrew, GeneratedCrewTask, GeneratedTask,
    Generator, Kind, SavedCrew, allowed_only, crew_name,
)
from application.ports import ModelClient, ModelProviderError
from application.templates import BUILTIN_TEMPLATES
from domain.errors import InvalidError
from domain.template import render
from interface.core import Core, Feature
from interface.crew_runtime import offline_model
from interface.crew_runtime.offline_model import CompletionResult, MissingCredential, is_offline
from interface.http.agents import AgentsFeature
from interface.http.api_keys import ApiKeysFeature
from interface.http.common import group_id, settle
from interface.http.crews import CrewsFeature
from interface.http.models import ModelsFeature
from interface.http.tasks import TasksFeature
from interface.http.templates import TemplatesFeature
from interface.http.tools import ToolsFeature

log = logging.getLogger("kasal.generation")
T = TypeVar("T")

Description = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ToolName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

OFFLINE_REPLIES: dict[str, Callable[[str, Iterable[str]], str]] = {
    AGENT.noun: offline_generation.agent_reply,
    TASK.noun: offline_generation.task_reply,
    CREW.noun: offline_generation.crew_reply,
}

# Things providers put in error messages that must not reach a caller or a log.
_KEY_LIKE = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}|\bdapi[0-9a-fA-F]{8,}|\bAIza[0-9A-Za-z_\-]{10,}"
    r"|\bBearer\s+\S+|\b[A-Za-z0-9+/]{32,}={0,2}"
)
_KEY_ASSIGNMENT = re.compile(r"(?i)\b(api[_-]?key|token|secret|password|authorization)(\s*[=:]\s*)\S+")


def scrub(message: str, secrets: Iterable[str]) -> str:
    """A provider's message safe to show: known secrets and key-looking strings replaced."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        message = message.replace(secret, "***")
    message = _KEY_ASSIGNMENT.sub(r"\1\2***", _KEY_LIKE.sub("***", message))
    message = " ".join(message.split())
    return message if len(message) <= 500 else message[:500] + " ..."


class LiteLLMModelClient:
    """The ``ModelClient`` port over ``offline_model.complete``, with its errors translated.

    ``complete`` is the function to call; tests hand in one that answers a
    scripted ``mock_response`` through the same real function.
    """

    def __init__(self, complete: Callable[..., CompletionResult] = offline_model.complete, *,
                 timeout: float = 120.0) -> None:
        self._complete = complete
        self.timeout = timeout

    def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], credentials: Mapping[str, str], *,
        mock_response: str | None = None,
    ) -> CompletionResult:
        try:
            offline_model.require_credential(model, credentials)
        except MissingCredential as exc:
            raise InvalidError(
                f"Model '{model}' needs an API key for {exc.provider}: add {exc.key_name} with POST /api/v1/api-keys",
                errors=[("model", f"no API key for provider '{exc.provider}'; add {exc.key_name}")],
            ) from None
        except ValueError as exc:
            raise InvalidError(str(exc), errors=[("model", str(exc))]) from None
        try:
            return self._complete(model, messages, credentials, mock_response=mock_response, timeout=self.timeout)
        except Exception as exc:  # anything the provider call raises is the provider's failure
            message = scrub(str(getattr(exc, "message", "") or exc), credentials.values())
            log.warning("model %s failed (%s): %s", model, type(exc).__name__, message)
            raise ModelProviderError(f"The model provider failed: {message}", errors=[("model", message)]) from None


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


class GenerationFeature(Feature):
    """Generation of agents, tasks and crews; ``model_client`` is the port tests replace."""

    name = "generation"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.model_client: ModelClient = LiteLLMModelClient()

    def route_handlers(self) -> list[Any]:
        from interface.http.run_names import generate_name

        return [GenerationController, generate_name]

    def model_key(self, requested: str | None) -> str:
        return (requested or self.core.settings.default_model).strip()

    async def generate(
        self, kind: Kind[T], description: str, requested_model: str | None, tools: Sequence[str] | None,
        *, brief: str = "",
    ) -> T:
        """Ask the model for one ``kind`` and return it checked, as the current group."""
        group = group_id()
        model, provider, key_name = await self._model(group, self.model_key(requested_model))
        allowed = await self._tools(group, tools)
        text = description if not brief else f"{description}\n\n{brief}"
        prompt = render(await self._template(group, kind.template), {"description": text, "tools": allowed})
        offline = is_offline(model)
        call = Generation(
            model=model, prompt=prompt, allowed_tools=allowed,
            credentials={} if offline else await self._credentials(group, provider, key_name),
            mock_response=OFFLINE_REPLIES[kind.noun](description, allowed) if offline else None,
        )
        return await self.core.run(Generator(self.model_client).generate, kind, call)

    async def save_crew(self, crew: GeneratedCrew, *, name: str, description: str, model: str) -> SavedCrew:
        try:
            saver = CrewSaver(self.core.get(AgentsFeature).service, self.core.get(TasksFeature).service,
                              self.core.get(CrewsFeature).service)
        except LookupError:
            raise InvalidError("Saving needs the agents, tasks and crews features, which are not installed",
                               errors=[("save", "not available on this service")]) from None
        return await self.core.run(functools.partial(saver.save, crew, name=name, description=description, model=model))

    async def _model(self, group: str, requested: str) -> tuple[str, str | None, str | None]:
        """``(LiteLLM model, provider, API key name)`` for a model the group may use, else 422."""
        try:
            models: ModelsFeature | None = self.core.get(ModelsFeature)
        except LookupError:
            models = None
        record = None if models is None else await models.resolve_model(group, requested)
        if record is None:
            if models is None or is_offline(requested):
                return requested, None, None
            raise InvalidError(f"Unknown model '{requested}'",
                               errors=[("model", "not one of the group's models; GET /api/v1/models lists them")])
        if not record["enabled"]:
            raise InvalidError(f"Model '{requested}' is disabled",
                               errors=[("model", f"enable it with PATCH /api/v1/models/{record['key']}/toggle")])
        return str(record["litellm_model"]), record.get("provider"), record.get("api_key_name")

    async def _tools(self, group: str, wanted: Sequence[str] | None) -> list[str]:
        """The tools the model may choose from: enabled for the group (and asked for, if listed)."""
        try:
            enabled, _ = await self.core.get(ToolsFeature).tool_names(group)
        except LookupError:
            return []
        if wanted is None:
            return sorted(enabled, key=str.casefold)
        return allowed_only(wanted, enabled)

    async def _template(self, group: str, name: str) -> str:
        try:
            templates = self.core.get(TemplatesFeature)
        except LookupError:
            return next(str(t["template"]) for t in BUILTIN_TEMPLATES if t["name"] == name)
        return await templates.template_for(group, name)

    async def _credentials(self, group: str, provider: str | None, key_name: str | None) -> dict[str, str]:
        """The group's keys; a model's own ``api_key_name`` wins for its provider."""
        try:
            keys = self.core.get(ApiKeysFeature)
        except LookupError:
            return {}
        try:
            credentials = await keys.credentials(group)
        except ApiKeyDecryptionError as exc:
            raise InvalidError(str(exc), errors=[("api_keys", "set the key again")]) from None
        if provider and key_name and key_name in credentials:
            credentials[provider] = credentials[key_name]
        return credentials


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
    async def generate_agent(self, core: Core, data: AgentGenerateRequest) -> AgentGenerated:
        """Ask ``model`` (default: the service's default model) for one agent: name, role, goal,
        backstory and tools. Only tools enabled for the group (and in ``tools``, when sent) are
        kept. Nothing is saved. Unknown model or missing API key: 422; provider failure or an
        answer still unusable after one retry: 502."""
        agent = await core.get(GenerationFeature).generate(AGENT, data.description, data.model, data.tools)
        return AgentGenerated(agent=agent)

    @post("/task-generation/generate", summary="Generate a task from a description", status_code=200)
    async def generate_task(self, core: Core, data: TaskGenerateRequest) -> TaskGenerated:
        """Ask ``model`` for one task: name, description, expected_output and tools, tailored to
        ``agent`` when sent. Nothing is saved. Errors as for agent generation."""
        brief = "" if data.agent is None else _agent_brief(data.agent)
        wanted = _wanted_tools(data)
        task = await core.get(GenerationFeature).generate(
            TASK, data.description, data.model, None if wanted is None else list(wanted), brief=brief)
        return TaskGenerated(task=task)

    @post("/crew-generation/generate", summary="Generate a crew (agents and tasks) from a description",
          status_code=200)
    async def generate_crew(self, core: Core, data: CrewGenerateRequest) -> Response[CrewGenerated]:
        """Ask ``model`` for a crew: ``agents`` and ``tasks`` in run order, each task naming its
        ``agent`` and its ``context`` (earlier tasks) by name. With ``save: true`` the agents
        (using ``model``), tasks and a crew listing them are created as the caller, answered 201
        with ``crew_id``, ``agent_ids`` and ``task_ids``: ``POST /api/v1/executions
        {"crew_id": ...}`` runs it. A crew name in use gets a number (``Name (2)``).
        Errors as for agent generation."""
        generation = core.get(GenerationFeature)
        crew = await generation.generate(CREW, data.description, data.model, data.tools)
        if not data.save:
            return Response(CrewGenerated(agents=crew.agents, tasks=crew.tasks), status_code=200)
        saved = await generation.save_crew(crew, name=data.name or crew_name(data.description),
                                           description=data.description, model=generation.model_key(data.model))
        headers = await settle(core, None, saved.position)
        headers["Location"] = f"/api/v1/crews/{saved.crew_id}"
        body = CrewGenerated(agents=crew.agents, tasks=crew.tasks, crew_id=saved.crew_id,
                             agent_ids=saved.agent_ids, task_ids=saved.task_ids)
        return Response(body, status_code=201, headers=headers)
