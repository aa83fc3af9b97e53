"""Ports: what the application needs from the outside world, as Protocols.

Real adapters live in ``interface/`` or ``projections/``; tests use
hand-written fakes (``tests/fakes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain.errors import DomainError
from domain.model_config import ModelCall


class AgentDirectory(Protocol):
    """Finds the agent a task's ``agent`` reference means, within one group."""

    def agent_id_for(self, group_id: str, reference: str) -> UUID | None:
        """The agent whose id is ``reference``, or whose name matches it ignoring
        case, spaces, hyphens and underscores; ``None`` when there is none (yet)."""
        ...


class TaskDirectory(Protocol):
    """Finds tasks by what they point at, within one group."""

    def tasks_assigned_to(self, group_id: str, agent_id: UUID) -> list[UUID]:
        """Ids of the live tasks whose ``agent_id`` is ``agent_id``."""
        ...


class DocumentLookup(Protocol):
    """One read-model row of a group by id (adapter: ``projections.documents.DocumentView``).

    Another group's id answers ``None``, exactly like an id that exists nowhere.
    """

    async def get(self, group_id: str, document_id: UUID) -> dict[str, Any] | None:
        ...


class ToolCatalogue(Protocol):
    """The tools a group can use (adapter: ``projections.catalogue.ToolCatalogueView``)."""

    async def tool_names(self, group_id: str) -> tuple[set[str], set[str]]:
        """``(enabled, disabled)`` tool names visible to the group."""
        ...

    async def all(self, group_id: str) -> list[dict[str, Any]]:
        """Every tool the group sees, built-ins as the group has set them."""
        ...


class KeyNames(Protocol):
    """Which API keys a group has stored, by name and service (adapter: ``projections.api_keys.ApiKeyView``)."""

    async def key_names(self, group_id: str) -> set[str]:
        """Names and services of the group's keys that hold a value; never the values."""
        ...


class ModelCatalogue(Protocol):
    """The models a group can use (adapter: ``projections.catalogue.ModelCatalogueView``)."""

    async def model_names(self, group_id: str) -> set[str]:
        """Model keys the group may run."""
        ...

    async def all(self, group_id: str) -> list[dict[str, Any]]:
        """Every model the group sees, built-ins as the group has set them."""
        ...


class ModelResolver(Protocol):
    """What an ``llm:`` value means for a group (adapter: ``projections.catalogue.ModelCatalogueView``)."""

    async def resolve_model(self, group_id: str, name: str) -> dict[str, Any] | None:
        """The model record by key, LiteLLM string or provider model id (disabled ones too,
        with ``enabled`` false); it carries ``litellm_model``, ``provider`` and ``api_key_name``."""
        ...


class TemplateSource(Protocol):
    """Prompt templates as a group sees them (adapter: ``projections.templates.TemplateView``)."""

    async def template_for(self, group_id: str, name: str) -> str:
        """The group's own active template ``name``, else the built-in; ``NotFoundError`` if neither."""
        ...


class CredentialSource(Protocol):
    """A group's provider keys in plaintext, for one model call (``application.credentials``)."""

    async def credentials(self, group_id: str) -> dict[str, str]:
        ...


class SecretBox(Protocol):
    """Encryption at rest for provider credentials (adapter: ``interface.secret_box.SecretBox``).

    ``associated_data`` binds a ciphertext to where it belongs (group and key
    id), so one copied elsewhere fails to decrypt. ``decrypt`` raises on any
    failure; it never returns an empty or wrong value.
    """

    def encrypt(self, plaintext: str, *, associated_data: bytes = b"") -> str:
        ...

    def decrypt(self, token: str, *, associated_data: bytes = b"") -> str:
        ...

    def hint(self, plaintext: str) -> str:
        """At most the last few characters, safe to show in listings ("" for short values)."""
        ...


class ModelCompletion(Protocol):
    """What one model call produced (the real adapter's ``CompletionResult`` is one)."""

    @property
    def text(self) -> str: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


class ModelProviderError(DomainError):
    """The model provider failed or answered unusably (answered 502, Bad Gateway).

    The message is the provider's, with anything that looks like a credential
    removed: it must be safe to show to the caller and to log.
    """

    type = "model_provider_error"


class ModelClient(Protocol):
    """One chat completion (adapter: ``interface.llm_gateway.complete``, wrapped).

    ``credentials`` are the group's provider keys, passed per call. Raises
    ``domain.errors.InvalidError`` when the model cannot be called as asked
    (no key for its provider: the message names the key to add; a model no
    provider serves) and ``ModelProviderError`` when the provider fails.
    ``mock_response`` is the exact text to answer with, through the same code
    path (offline models and tests). ``call`` is the model's configuration
    (endpoint, headers, sampling settings, key name) when the catalogue has one.
    """

    def complete(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        credentials: Mapping[str, str],
        *,
        mock_response: str | None = None,
        call: ModelCall | None = None,
    ) -> ModelCompletion:
        ...


class Clock(Protocol):
    """The time, as the scheduler sees it (adapter: ``interface.scheduler.SystemClock``).

    Injected so tests can stand at any instant (a DST change, a restart three
    days later) without waiting for real minutes to pass.
    """

    def now(self) -> datetime:
        """The current instant, time-zone aware, in UTC."""
        ...
