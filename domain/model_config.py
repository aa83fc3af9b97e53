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
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import Document, stable_topics
from domain.errors import ConflictError, InvalidError
from domain.name_index import normalise_name
from domain.tool import BUILTIN_GROUP

__all__ = ["BUILTIN_GROUP", "ModelConfig", "ModelSetting", "KNOWN_PROVIDERS", "OFFLINE_PROVIDER",
           "litellm_model", "effective_model", "builtin_model_id", "model_setting_id"]

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

MODEL_DEFAULTS: dict[str, Any] = {
    "temperature": 0.7,
    "context_window": 128_000,
    "max_output_tokens": 4096,
    "api_key_name": None,
    "parameters": {},
    "enabled": True,
    "extended_thinking": False,
}
OVERRIDABLE = ("enabled", "temperature", "context_window", "max_output_tokens", "api_key_name",
               "parameters", "extended_thinking")
"""What a group may change about a built-in model; its identity (key, name, provider) is shared."""


def builtin_model_id(key: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"kasal:builtin-model:{normalise_name(key)}")


def model_setting_id(group_id: str, model_id: UUID) -> UUID:
    return uuid5(NAMESPACE_URL, f"kasal:model-setting:{group_id}:{model_id}")


def litellm_model(provider: str, name: str) -> str:
    """The model string LiteLLM routes: OpenAI's are bare, others are ``provider/name``."""
    if provider in ("openai", OFFLINE_PROVIDER) or name.startswith(f"{provider}/"):
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
        merged["api_key_name"] = merged["api_key_name"] or DEFAULT_API_KEY_NAMES.get(provider)
        problems = (
            _number(merged, "temperature", low=0, high=2, integer=False)
            + _number(merged, "context_window", low=1, high=100_000_000, integer=True)
            + _number(merged, "max_output_tokens", low=1, high=100_000_000, integer=True)
        )
        if problems:
            raise InvalidError("Invalid model configuration", errors=problems)
        merged["enabled"] = bool(merged["enabled"])
        merged["extended_thinking"] = bool(merged["extended_thinking"])
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
    seen["litellm_model"] = litellm_model(str(seen.get("provider", "")), str(seen.get("name", "")))
    return seen
