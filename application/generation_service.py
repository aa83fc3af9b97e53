"""The generation use case: resolve what a request names, ask the model, save on request.

For one agent, task or crew: the model is looked up in the caller's group's
catalogue (unknown or disabled: 422), the prompt comes from the group's
template (its own ``generate_agent`` … wins over the built-in), the tools the
model may choose from are the group's enabled ones (and only those the
caller lists), and the group's provider keys go along with the call. Offline
models get their answer from the kind's ``offline_reply`` through the same
client path, so generation works with no keys and no network; real
providers are never given a canned answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio.to_thread

from application.api_keys import ApiKeyDecryptionError
from application.generation import CrewSaver, GeneratedCrew, Generation, Generator, Kind, SavedCrew, allowed_only
from application.ports import CredentialSource, ModelClient, ModelResolver, TemplateSource, ToolCatalogue
from application.tool_access import ToolAccess
from domain.context import current_actor
from domain.errors import InvalidError
from domain.model_config import ModelCall, model_call
from domain.template import render

T = TypeVar("T")


class GenerationService:
    """Generates definitions as the caller's group; ``model_client`` is the port tests replace."""

    def __init__(
        self, model_client: ModelClient, *, models: ModelResolver, tools: ToolCatalogue, templates: TemplateSource,
        credentials: CredentialSource, saver: CrewSaver, default_model: str, is_offline: Callable[[str], bool],
        tool_access: ToolAccess,
    ) -> None:
        self.model_client = model_client
        self.models = models
        self.tools = tools
        self.templates = templates
        self.credentials = credentials
        self.saver = saver
        self.default_model = default_model
        self.is_offline = is_offline
        self.tool_access = tool_access

    def model_key(self, requested: str | None) -> str:
        return (requested or self.default_model).strip()

    async def generate(
        self, kind: Kind[T], description: str, requested_model: str | None, tools: Sequence[str] | None,
        *, brief: str = "",
    ) -> T:
        """Ask the model for one ``kind`` and return it checked (see ``Generator``)."""
        group = current_actor().group_id
        model_call = await self._model(group, self.model_key(requested_model))
        model = model_call.model
        allowed = await self._tools(group, tools)
        text = description if not brief else f"{description}\n\n{brief}"
        template = await self.templates.template_for(group, kind.template)
        prompt = render(template, {"description": text, "tools": allowed})
        offline = self.is_offline(model)
        call = Generation(
            model=model, prompt=prompt, allowed_tools=allowed,
            credentials={} if offline else await self._credentials(group),
            mock_response=kind.offline_reply(description, allowed) if offline else None, call=model_call,
        )
        return await anyio.to_thread.run_sync(Generator(self.model_client).generate, kind, call)

    async def save_crew(self, crew: GeneratedCrew, *, name: str, description: str, model: str) -> SavedCrew:
        """Record the crew as ordinary agents, tasks and a crew, made by the caller."""
        save = functools.partial(self.saver.save, crew, name=name, description=description, model=model)
        return await anyio.to_thread.run_sync(save)

    async def _model(self, group: str, requested: str) -> ModelCall:
        """How to call a model the group may use (as runs call it), else 422."""
        record: dict[str, Any] | None = await self.models.resolve_model(group, requested)
        if record is None:
            if self.is_offline(requested):
                return ModelCall(model=requested)
            raise InvalidError(f"Unknown model '{requested}'",
                               errors=[("model", "not one of the group's models; GET /api/v1/models lists them")])
        if not record["enabled"]:
            raise InvalidError(f"Model '{requested}' is disabled",
                               errors=[("model", f"enable it with PATCH /api/v1/models/{record['key']}/toggle")])
        return model_call(record)

    async def _tools(self, group: str, wanted: Sequence[str] | None) -> list[str]:
        """The tools the model may choose from: enabled for the group, runnable here (and asked for, if listed)."""
        runnable = self.tool_access.runnable(await self.tools.all(group))
        enabled = {str(tool["name"]) for tool in runnable if tool["enabled"]}
        if wanted is None:
            return sorted(enabled, key=str.casefold)
        return allowed_only(wanted, enabled)

    async def _credentials(self, group: str) -> dict[str, str]:
        """The group's keys (the model's ``api_key_name`` picks one of them at call time)."""
        try:
            return await self.credentials.credentials(group)
        except ApiKeyDecryptionError as exc:
            raise InvalidError(str(exc), errors=[("api_keys", "set the key again")]) from None
