"""The service's single LiteLLM entry point, plus offline models.

Every model call in Kasal-ES (AI generation and run names in the service
process, crews in their child processes) goes through :func:`complete` so that
offline and real providers share one code path: ``litellm.completion`` with
callbacks, usage accounting and cost computation. Offline models
(``offline/echo``, ``offline/slow``, ``offline/random``) are served by LiteLLM's
``mock_response`` mechanism, backed by a real model name so that token counts
are realistic; they cost nothing. ``offline/echo`` and ``offline/slow`` are
deterministic, ``offline/random`` is not. Credentials are passed per call
(``api_key=``) and never written to ``os.environ``, because one service process
runs crews for many users.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from domain.model_config import KEYLESS_PROVIDERS, ModelCall, credential_name
from interface.settings import quiet_libraries


class _LazyLiteLLM:
    """LiteLLM, imported on first use: it takes seconds, and the API process starts
    without it (only generation and the crew children call models)."""

    _module: ModuleType | None = None

    def __getattr__(self, name: str) -> Any:
        if _LazyLiteLLM._module is None:
            quiet_libraries()  # before the import: litellm fetches its cost map while importing
            module: Any = importlib.import_module("litellm")  # untyped, like every litellm import here
            # LiteLLM prints a "Give Feedback / Get Help" banner on every provider error.
            module.suppress_debug_info = True
            _LazyLiteLLM._module = module
        return getattr(_LazyLiteLLM._module, name)


litellm: Any = _LazyLiteLLM()

OFFLINE_PROVIDER = "offline"
OFFLINE_DELAYS: dict[str, float] = {"offline/echo": 0.0, "offline/slow": 0.2, "offline/random": 0.0}
NONCED_OFFLINE = frozenset({"offline/random"})
"""Offline models whose answers carry a fresh nonce, so two runs of one crew differ."""
BACKING_MODEL = "openai/gpt-4o-mini"
NO_KEY = "no-key"

_BARE_PREFIXES = (
    ("gpt-", "openai"), ("o1", "openai"), ("o3", "openai"), ("o4", "openai"),
    ("chatgpt", "openai"), ("text-", "openai"), ("claude", "anthropic"),
    ("gemini", "gemini"), ("mistral", "mistral"), ("command", "cohere"),
)
_TOOL_MARKER = re.compile(r"\[use ([\w-]+):\s*([^\]]*)\]")
_OBSERVATION = re.compile(r"Observation:\s*(.+?)(?=\n(?:Thought|Action|Final Answer):|\Z)", re.DOTALL)
_TOOL_ARGUMENTS = re.compile(r"Tool Name: ([^\n]+)\nTool Arguments: ")
_TASK_LINE = re.compile(r"Current Task:\s*(.+)")
_SCHEMA_MARKER = "according to the following OpenAPI schema:"


class MissingCredential(RuntimeError):
    """A real provider's model was requested but no API key was supplied for it."""

    def __init__(self, model: str, provider: str, key_name: str | None = None) -> None:
        self.model = model
        self.provider = provider
        self.key_name = key_name or credential_name(provider)
        super().__init__(
            f"model {model!r} (provider {provider!r}) needs an API key: add {self.key_name} to the credentials"
        )


@dataclass(frozen=True)
class CompletionResult:
    """What one model call produced and cost, for events and budgets."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    latency_ms: float
    request: dict[str, Any] | None = None
    """What was sent besides the messages, safe to record (see ``recorded_request``)."""


def provider_of(model: str) -> str:
    """Name the provider serving ``model`` ("gpt-4o" -> "openai")."""
    if "/" in model:
        return model.split("/", 1)[0]
    entry = litellm.model_cost.get(model)
    if entry and entry.get("litellm_provider"):
        return str(entry["litellm_provider"])
    for prefix, provider in _BARE_PREFIXES:
        if model.startswith(prefix):
            return provider
    try:
        return str(litellm.get_llm_provider(model)[1])
    except Exception as exc:
        raise ValueError(
            f"cannot tell which provider serves model {model!r}; prefix it, e.g. 'openai/{model}'"
        ) from exc


def is_offline(model: str) -> bool:
    """True for the built-in models that never leave the process."""
    return model in OFFLINE_DELAYS


def require_credential(model: str, credentials: Mapping[str, str], call: ModelCall | None = None) -> str | None:
    """The API key for ``model`` (None for keyless providers); never reads os.environ.

    The model's ``api_key_name`` is looked up first. A model with its own
    ``api_base`` gets only the key it names (none if it names none), so a
    group's provider key never travels to an endpoint it was not meant for;
    elsewhere the provider's key is the fallback.
    """
    if is_offline(model):
        return None
    provider = provider_of(model)
    if provider == OFFLINE_PROVIDER:
        raise ValueError(f"unknown offline model {model!r}; choose one of {sorted(OFFLINE_DELAYS)}")
    named = call.api_key_name if call else None
    key = credentials.get(named) if named else None
    if call is not None and call.api_base:
        if named and key is None:
            raise MissingCredential(model, provider, named)
        return key
    key = key or credentials.get(provider) or credentials.get(credential_name(provider))
    if key is None and provider not in KEYLESS_PROVIDERS:
        raise MissingCredential(model, provider, named)
    return key


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Flatten chat messages into one readable string (for events and hashing)."""
    return "\n\n".join(f"{m.get('role', 'user')}: {_content_text(m.get('content'))}" for m in messages)


def _task_line(messages: Sequence[Mapping[str, Any]]) -> str:
    """The current task's description (else the last user message); context is not obeyed."""
    match = _TASK_LINE.search(prompt_text(messages))
    if match:
        return match.group(1)
    users = [_content_text(m.get("content")) for m in messages if m.get("role", "user") == "user"]
    return users[-1] if users else ""


def _summary(task: str) -> str:
    words = task.split()
    return " ".join(words[:12]) + (" ..." if len(words) > 12 else "")


def _observations(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Tool results CrewAI appended to earlier assistant turns (not the instructions)."""
    found: list[str] = []
    for message in messages:
        if message.get("role") == "assistant":
            found += _OBSERVATION.findall(_content_text(message.get("content")))
    return [" ".join(item.split()) for item in found]


def _tool_step(task: str, text: str) -> str:
    """The ReAct action a ``[use tool: input]`` marker asks for.

    Plain input goes to the tool's first argument, as read from the tool list
    crewai puts in the prompt; input starting with ``{`` is the arguments as JSON.
    """
    marker = _TOOL_MARKER.search(task)
    assert marker is not None
    tool, raw = marker.group(1), marker.group(2).strip()
    if raw.startswith("{"):
        action_input = raw
    else:
        argument = _first_argument(text, tool) or ("expression" if tool == "calculator" else "input")
        action_input = "{}" if not raw else json.dumps({argument: raw})
    return f"Thought: I should use the {tool} tool.\nAction: {tool}\nAction Input: {action_input}"


def _comparable(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _first_argument(text: str, tool: str) -> str | None:
    """The first (required, if any) argument of ``tool`` in the prompt's ``Tool Arguments:`` JSON."""
    for match in _TOOL_ARGUMENTS.finditer(text):
        if _comparable(match.group(1)) != _comparable(tool):
            continue
        try:
            schema, _ = json.JSONDecoder().raw_decode(text, match.end())
        except ValueError:
            return None
        names = list(schema.get("properties") or {}) if isinstance(schema, dict) else []
        required = [name for name in schema.get("required") or [] if name in names] if names else []
        first = (required or names or [None])[0]
        return None if first is None else str(first)
    return None


def _requested_schema(text: str) -> dict[str, Any] | None:
    """The JSON schema crewai embeds when it wants structured output (planning, output_pydantic)."""
    at = text.find(_SCHEMA_MARKER)
    if at < 0:
        return None
    start = text.find("{", at)
    try:
        found, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    nested = found.get("json_schema", found)
    return nested.get("schema", nested) if isinstance(nested, dict) else None


def _example(schema: dict[str, Any], defs: dict[str, Any], text: str) -> Any:
    """A minimal instance of ``schema`` whose strings all carry ``text``."""
    if "$ref" in schema:
        return _example(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, text)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _example(options[0], defs, text)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: _example(sub, defs, text) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example(schema.get("items", {}), defs, text)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def offline_answer(model: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """Reply for an offline model, derived only from the prompt (plus a nonce for ``offline/random``).

    Crew prompts (which ask for a ``Final Answer:``) get ReAct-formatted replies,
    with one tool step first when the current task carries a ``[use tool: input]``
    marker; any other prompt gets a plain one-line answer.  When crewai asks for
    output matching a JSON schema, the answer is a minimal instance of it.
    ``offline/random`` answers alike but adds ``(nonce …)`` to every answer (tool
    steps stay as they are), so two live runs of one crew differ, as real models do.
    """
    text = prompt_text(messages)
    task = _task_line(messages)
    observed = _observations(messages)
    react = "Final Answer" in text
    if react and not observed and _TOOL_MARKER.search(task):
        return _tool_step(task, text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    answer = f"[{model}] answer to: {_summary(task)} (digest {digest})"
    if model in NONCED_OFFLINE:
        answer += f" (nonce {secrets.token_hex(4)})"
    if observed:
        answer += f" | tool result: {observed[-1]}"
    schema = _requested_schema(text)
    if schema is not None:
        answer = json.dumps(_example(schema, schema.get("$defs", {}), answer))
    return f"Thought: I now can give a great answer\nFinal Answer: {answer}" if react else answer


def offline_complete(model: str, prompt_text: str) -> str:
    """Offline answer for a single-prompt request (used by AI generation)."""
    return offline_answer(model, [{"role": "user", "content": prompt_text}])


def _mock_payload(text: str, messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A full ModelResponse dict, so usage reflects the real prompt and answer sizes."""
    backing = BACKING_MODEL.split("/", 1)[1]
    prompt_tokens = litellm.token_counter(model=backing, messages=list(messages))
    completion_tokens = litellm.token_counter(model=backing, text=text, count_response_tokens=True)
    return {
        "model": backing,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def call_params(call: ModelCall | None) -> dict[str, Any]:
    """The LiteLLM arguments a model's configuration adds to each request (unset ones left out)."""
    if call is None:
        return {}
    params: dict[str, Any] = dict(call.parameters)
    if call.temperature is not None:
        params["temperature"] = call.temperature
    if call.max_tokens is not None:
        params["max_tokens"] = call.max_tokens
    if call.api_base:
        params["api_base"] = call.api_base
    if call.extra_headers:
        params["extra_headers"] = dict(call.extra_headers)
    return params


_NOT_RECORDED = frozenset({"messages", "model", "api_key", "mock_response", "mock_delay", "extra_headers",
                           "temperature", "max_tokens", "api_base", "timeout"})


def recorded_request(model: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What a call sent besides the messages, for the run's events: never a key or a header's value."""
    return {
        "model": model, "temperature": kwargs.get("temperature"), "max_tokens": kwargs.get("max_tokens"),
        "api_base": kwargs.get("api_base"), "headers": sorted(kwargs.get("extra_headers") or {}),
        "parameters": {k: v for k, v in kwargs.items() if k not in _NOT_RECORDED},
    }


def completion_kwargs(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    credentials: Mapping[str, str],
    *,
    mock_response: str | None = None,
    call: ModelCall | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Arguments for ``litellm.completion``; raises MissingCredential before any I/O.

    ``call`` (the model's configuration) comes first, ``params`` (what the
    caller adds for this request) over it. Offline models take the sampling
    settings (they are recorded) but no endpoint or headers.
    """
    kwargs: dict[str, Any] = {"messages": list(messages), **call_params(call), **params}
    if is_offline(model):
        kwargs.pop("api_base", None)
        kwargs.pop("extra_headers", None)
        text = mock_response if mock_response is not None else offline_answer(model, messages)
        kwargs.update(model=BACKING_MODEL, mock_response=_mock_payload(text, messages))
        if OFFLINE_DELAYS[model]:
            kwargs["mock_delay"] = OFFLINE_DELAYS[model]
        return kwargs
    api_key = require_credential(model, credentials, call)
    kwargs["model"] = model
    if api_key is None and kwargs.get("api_base") and provider_of(model) not in KEYLESS_PROVIDERS:
        api_key = NO_KEY  # OpenAI-style clients insist on one; a keyless self-hosted server ignores it
    if api_key is not None:
        kwargs["api_key"] = api_key
    if mock_response is not None:
        kwargs["mock_response"] = _mock_payload(mock_response, messages)
    return kwargs


def _cost(response: Any) -> float | None:
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:
        return None


def complete(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    credentials: Mapping[str, str],
    *,
    mock_response: str | None = None,
    call: ModelCall | None = None,
    **params: Any,
) -> CompletionResult:
    """Call a model through LiteLLM and report text, usage, cost and latency."""
    kwargs = completion_kwargs(model, messages, credentials, mock_response=mock_response, call=call, **params)
    request = recorded_request(model, kwargs)
    started = time.perf_counter()
    response = litellm.completion(**kwargs)
    latency_ms = (time.perf_counter() - started) * 1000.0
    usage = getattr(response, "usage", None)
    return CompletionResult(
        text=_content_text(response.choices[0].message.content),
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost=0.0 if is_offline(model) else _cost(response),
        latency_ms=latency_ms,
        request=request,
    )
