"""Model configurations: which LLMs a group may run, and how to call them.

A model is addressed by its ``key`` (unique in a group, the URL's
``model_name``); ``name`` is the provider's model id and ``provider`` one
LiteLLM knows. Built-in models are shared by every group exactly as built-in
tools are (see ``domain.tool``): stored once under ``BUILTIN_GROUP`` with ids
derived from their keys, and changed per group only through a
``ModelSetting`` of that group, so a restart's re-seed never undoes an
admin's choice. The offline models serve the quick start and the tests with
no network, so they are always enabled and cannot be removed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

from domain.base import Document, stable_topics
from domain.errors import ConflictError, InvalidError
from domain.model_request import PARAMETERS, check_api_base, check_extra_headers, check_parameters, headers_to_store
from domain.name_index import normalise_name
from domain.tool import BUILTIN_GROUP

__all__ = ["BUILTIN_GROUP", "ModelConfig", "ModelSetting", "ModelCall", "KNOWN_PROVIDERS", "OFFLINE_PROVIDER",
           "litellm_model", "effective_model", "model_call", "builtin_model_id", "model_setting_id"]

OFFLINE_PROVIDER = "offline"

KNOWN_PROVIDERS = frozenset({
    "openai", "anthropic", "deepseek", "ollama", "ollama_chat", "databricks", "gemini", "vertex_ai",
    "azure", "azure_ai", "bedrock", "sagemaker", "mistral", "groq", "cohere", "cohere_chat",
    "together_ai", "openrouter", "huggingface", "fireworks_ai", "perplexity", "xai", "hosted_vllm",
    "vllm", "lm_studio", "watsonx", "nvidia_nim", "cerebras", "deepinfra", "replicate",
    "openai_like", "custom_openai", "litellm_proxy",
})
"""LiteLLM providers a model may name (a unit test keeps this within ``litellm.provider_list``)."""

DEFAULT_API_KEY_NAMES: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "databricks": "DATABRICKS_TOKEN",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
}

KEYLESS_PROVIDERS = frozenset({"offline", "ollama", "ollama_chat", "vertex_ai", "bedrock", "sagemaker", "lm_studio"})
"""Providers reachable without an API key (local servers, ambient cloud auth)."""
_CONVENTIONAL_KEY_NAMES = {"gemini": "GEMINI_API_KEY", "vertex_ai": "GOOGLE_APPLICATION_CREDENTIALS",
                           "azure": "AZURE_API_KEY"}


def credential_name(provider: str) -> str:
    """The conventional environment-style name of a provider's key (``OPENAI_API_KEY``)."""
    return _CONVENTIONAL_KEY_NAMES.get(provider, f"{provider.upper()}_API_KEY")


def missing_key(record: Mapping[str, Any], key_names: Collection[str]) -> str | None:
    """The key a model (as a group sees it) cannot be called without and the group lacks, or None.

    The same rule the call itself follows: the key the model names, else the
    provider's; a model on its own ``api_base`` needs only a key it names.
    """
    provider = str(record.get("provider") or "")
    if provider == OFFLINE_PROVIDER:
        return None
    named = record.get("api_key_name") or None
    if record.get("api_base"):
        return named if named and named not in key_names else None
    if provider in KEYLESS_PROVIDERS or any(
            name in key_names for name in (named, provider, credential_name(provider)) if name):
        return None
    return str(named or credential_name(provider))


MODEL_DEFAULTS: dict[str, Any] = {
    "temperature": 0.7,
    "context_window": 128_000,
    "max_output_tokens": 4096,
    "api_key_name": None,
    "parameters": {},
    "enabled": True,
    "extended_thinking": False,
    "api_base": None,
    "extra_headers": {},
}
OVERRIDABLE = ("enabled", "temperature", "context_window", "max_output_tokens", "api_key_name",
               "parameters", "extended_thinking", "api_base", "extra_headers")
"""What a group may change about a built-in model; its identity (key, name, provider) is shared."""


def builtin_model_id(key: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"kasal:builtin-model:{normalise_name(key)}")


def model_setting_id(group_id: str, model_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"kasal:model-setting:{group_id}:{model_id}")


def litellm_model(provider: str, name: str, api_base: str | None = None) -> str:
    """The model string LiteLLM routes: OpenAI's are bare, others are ``provider/name``.

    A model on its own endpoint (``api_base``) is always prefixed: a self-hosted
    server's model ids are unknown to LiteLLM, so only the prefix says which
    protocol to speak.
    """
    if name.startswith(f"{provider}/") or provider == OFFLINE_PROVIDER:
        return name
    if provider == "openai" and not api_base:
        return name
    return f"{provider}/{name}"


def _number(fields: dict[str, Any], key: str, *, low: float, high: float, integer: bool) -> list[tuple[str, str]]:
    value = fields.get(key)
    if value is None:
        return []
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        return [(key, "Expected an integer" if integer else "Expected a number")]
    if not low <= value <= high:
        return [(key, f"Must be between {low:g} and {high:g}")]
    return []


@stable_topics("model_config")
class ModelConfig(Document):
    KIND = "model"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        merged = {**MODEL_DEFAULTS, **{k: v for k, v in fields.items() if v is not None}}
        key = str(merged.get("key") or "").strip()
        if not key:
            raise InvalidError("A model needs a key (or name)", errors=[("key", "Field required")])
        merged["key"] = key
        merged["name"] = str(merged.get("name") or key).strip()
        parameters = merged["parameters"]
        if not isinstance(parameters, dict):
            raise InvalidError("parameters must be an object", errors=[("parameters", "Expected an object")])
        # The contract puts sampling settings in ``parameters``; they fill the columns left unsent.
        if "temperature" not in fields and "temperature" in parameters:
            merged["temperature"] = parameters["temperature"]
        if "max_output_tokens" not in fields and "max_tokens" in parameters:
            merged["max_output_tokens"] = parameters["max_tokens"]
        provider = str(merged.get("provider") or "").strip().lower()
        if provider != OFFLINE_PROVIDER and provider not in KNOWN_PROVIDERS:
            raise InvalidError(
                f"Unknown provider '{merged.get('provider')}'",
                errors=[("provider", "Must be a provider LiteLLM knows, e.g. "
                         + ", ".join(sorted(KNOWN_PROVIDERS)[:8]) + ", … (or 'offline')")],
            )
        merged["provider"] = provider
        if isinstance(merged["api_base"], str):
            merged["api_base"] = merged["api_base"].strip() or None
        # A model with its own endpoint gets only the key it names: never the provider's by default.
        default_key = None if merged["api_base"] else DEFAULT_API_KEY_NAMES.get(provider)
        merged["api_key_name"] = merged["api_key_name"] or default_key
        problems = (
            _number(merged, "temperature", low=0, high=2, integer=False)
            + _number(merged, "context_window", low=1, high=100_000_000, integer=True)
            + _number(merged, "max_output_tokens", low=1, high=100_000_000, integer=True)
            + check_parameters(parameters) + check_api_base(merged["api_base"])
            + check_extra_headers(merged["extra_headers"])
        )
        if provider == OFFLINE_PROVIDER and merged["api_base"]:
            problems.append(("api_base", "offline models answer inside the service and have no endpoint"))
        if merged["api_key_name"] is not None and not isinstance(merged["api_key_name"], str):
            problems.append(("api_key_name", "Expected a string"))
        if problems:
            raise InvalidError("Invalid model configuration", errors=problems)
        merged["enabled"] = bool(merged["enabled"])
        merged["extended_thinking"] = bool(merged["extended_thinking"])
        merged["extra_headers"] = headers_to_store(merged["extra_headers"])
        return merged

    @property
    def name(self) -> str:
        """The key: what is unique per group (``name`` in the fields is the provider's id)."""
        return str(self.fields.get("key", ""))

    @property
    def builtin(self) -> bool:
        return self.group_id == BUILTIN_GROUP

    @property
    def always_on(self) -> bool:
        """Built-in offline models: the service's no-network fallback, never disabled or removed."""
        return self.builtin and self.fields.get("provider") == OFFLINE_PROVIDER

    def override(self, changes: dict[str, Any]) -> dict[str, Any]:
        """What a group's change to this built-in amounts to, checked against the rules.

        Identity fields may be sent back unchanged (clients echo whole records)
        but not changed; the result is validated as the effective model would be.
        """
        if self.always_on and changes.get("enabled") is False:
            raise ConflictError(
                f"Model '{self.name}' is a built-in offline model: it is always enabled and cannot be disabled",
                errors=[("enabled", "offline models cannot be disabled")],
            )
        fixed = [k for k, v in changes.items() if k not in OVERRIDABLE and self.fields.get(k) != v]
        if fixed:
            raise ConflictError(
                f"Built-in model '{self.name}' is shared by every group: its {', '.join(sorted(fixed))} "
                "cannot be changed; create a model of your own instead",
                errors=[(k, "fixed for built-in models") for k in sorted(fixed)],
            )
        wanted = {k: v for k, v in changes.items() if k in OVERRIDABLE}
        type(self).prepare({**self.fields, **wanted})
        return wanted

    def check_removable(self) -> None:
        if self.always_on:
            raise ConflictError(
                f"Model '{self.name}' is a built-in offline model: it is always available and cannot be deleted",
                errors=[("key", "offline models cannot be deleted")],
            )
        if self.builtin:
            raise ConflictError(
                f"Built-in model '{self.name}' is shared by every group and cannot be deleted; disable it instead",
                errors=[("key", "built-in models cannot be deleted")],
            )


@stable_topics("model_setting")
class ModelSetting(Document):
    """One group's overrides of one built-in model (only ``OVERRIDABLE`` fields)."""

    KIND = "model setting"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        if not fields.get("model_id"):
            raise InvalidError("A model setting names its model", errors=[("model_id", "Field required")])
        kept = {k: v for k, v in fields.items() if k in OVERRIDABLE}
        return {"model_id": str(fields["model_id"]), **kept}

    @classmethod
    def for_model(cls, group_id: str, model_id: UUID, fields: dict[str, Any]) -> ModelSetting:
        return cls.new(group_id, {**fields, "model_id": str(model_id)}, id=model_setting_id(group_id, model_id))


def effective_model(model: dict[str, Any], setting: dict[str, Any] | None) -> dict[str, Any]:
    """A model as one group sees it: its setting's overrides over the shared definition."""
    seen = dict(model)
    for key in OVERRIDABLE:
        if setting and key in setting:
            seen[key] = setting[key]
    if setting and setting.get("api_base") and "api_key_name" not in setting:
        seen["api_key_name"] = None  # a built-in's provider key never follows it to another endpoint
    seen["litellm_model"] = litellm_model(str(seen.get("provider", "")), str(seen.get("name", "")),
                                          seen.get("api_base") or None)
    return seen


class ModelCall(msgspec.Struct, frozen=True, kw_only=True):
    """How to call one model: its LiteLLM name and what every request to it carries.

    ``parameters`` are further LiteLLM completion arguments (checked when the
    model was written); ``api_key_name`` names the key of the group's key
    store the call uses. A bare name (an ``llm`` no catalogue entry matches)
    is called with LiteLLM's defaults.
    """

    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    parameters: dict[str, Any] = {}
    api_base: str | None = None
    extra_headers: dict[str, str] = {}
    api_key_name: str | None = None


def model_call(record: dict[str, Any]) -> ModelCall:
    """The call configuration of a model as one group sees it (``effective_model``'s result)."""
    return ModelCall(
        model=str(record.get("litellm_model") or litellm_model(str(record.get("provider", "")),
                                                                 str(record.get("name", "")), record.get("api_base"))),
        temperature=record.get("temperature"),
        max_tokens=record.get("max_output_tokens"),
        parameters={k: v for k, v in (record.get("parameters") or {}).items()
                    if k in PARAMETERS and k not in ("temperature", "max_tokens")},
        api_base=record.get("api_base") or None,
        extra_headers=dict(record.get("extra_headers") or {}),
        api_key_name=record.get("api_key_name") or None,
    )
