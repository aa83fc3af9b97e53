"""What a model's configuration may add to its requests: endpoint, headers, LiteLLM parameters.

Everything here is checked when a model is written, so a run never learns
at call time that its model cannot be called. The rules keep secrets in one
place, the encrypted key store: a key travels only as the model's
``api_key_name`` names it, so an endpoint URL with a password in it, a
header that looks like a credential, or a parameter that sets a key or an
endpoint is refused (422) rather than stored where answers and events would
show it. Parameters are the LiteLLM completion arguments in ``PARAMETERS``,
each with the JSON type it takes; unknown ones are refused, since LiteLLM
would pass them on to the provider unchecked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from domain.errors import InvalidError
from domain.redaction import check_nesting

Problems = list[tuple[str, str]]

MAX_URL_CHARS = 2048
MAX_HEADERS = 32
MAX_HEADER_CHARS = 1024
MAX_PARAMETERS_BYTES = 8192
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|credential|session|signature", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"^\s*(?:bearer|basic|token|digest)\s|\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{6,}|\bdapi[0-9a-fA-F]{8,}"
    r"|\bAIza[0-9A-Za-z_\-]{10,}|\b(?:ghp|gho|github_pat|xox[abpr]|hf)_[A-Za-z0-9_]{8,}|\bAKIA[0-9A-Z]{12,}",
    re.IGNORECASE,
)
_MANAGED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection"})
KEY_STORE_HINT = "keep credentials in the key store (POST /api/v1/api-keys) and name the key with api_key_name"


def _number(low: float, high: float, *, integer: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return "Expected an integer" if integer else "Expected a number"
        return None if low <= value <= high else f"Must be between {low:g} and {high:g}"
    return check


def _kind(*kinds: type, what: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds) \
            else f"Expected {what}"
    return check


def _stop(value: Any) -> str | None:
    if isinstance(value, str) or (isinstance(value, list) and len(value) <= 16
                                  and all(isinstance(v, str) for v in value)):
        return None
    return "Expected a string or a list of at most 16 strings"


_INT64 = 2.0**63
PARAMETERS: dict[str, Callable[[Any], str | None]] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "top_k": _number(0, 1_000_000, integer=True),
    "min_p": _number(0, 1),
    "n": _number(1, 128, integer=True),
    "max_tokens": _number(1, 100_000_000, integer=True),
    "max_completion_tokens": _number(1, 100_000_000, integer=True),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "repetition_penalty": _number(0, 10),
    "seed": _number(-_INT64, _INT64 - 1, integer=True),
    "stop": _stop,
    "logit_bias": _kind(dict, what="an object"),
    "logprobs": _kind(bool, what="true or false"),
    "top_logprobs": _number(0, 20, integer=True),
    "response_format": _kind(dict, what="an object"),
    "reasoning_effort": _kind(str, what="a string"),
    "thinking": _kind(dict, what="an object"),
    "user": _kind(str, what="a string"),
    "timeout": _number(0.001, 3600),
    "num_retries": _number(0, 10, integer=True),
    "drop_params": _kind(bool, what="true or false"),
    "extra_body": _kind(dict, what="an object"),
    "keep_alive": _kind(str, int, what="a string or a number of seconds"),
    "num_ctx": _number(1, 100_000_000, integer=True),
    "safety_settings": _kind(list, what="a list"),
}
"""The LiteLLM completion arguments a model may set, each with its check (None: fine)."""

REFUSED: dict[str, str] = {
    **dict.fromkeys(("api_key", "azure_ad_token", "aws_secret_access_key", "aws_access_key_id",
                     "aws_session_token", "vertex_credentials"), KEY_STORE_HINT),
    **dict.fromkeys(("api_base", "base_url"), "set the model's api_base field instead"),
    **dict.fromkeys(("extra_headers", "headers"), "set the model's extra_headers field instead"),
    **dict.fromkeys(("model", "messages", "custom_llm_provider"), "set by the service for every call"),
    **dict.fromkeys(("stream", "stream_options"), "runs read whole answers; streaming cannot be turned on"),
    **dict.fromkeys(("mock_response", "mock_delay"), "the offline models are chosen by name (offline/echo)"),
    **dict.fromkeys(("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls"),
                    "the tools offered are the agent's; set them on the agent"),
}
"""Arguments that cannot be set through ``parameters``, with what to do instead."""


def check_parameters(parameters: dict[str, Any]) -> Problems:
    """What is wrong with a model's ``parameters`` (an empty list: nothing)."""
    try:
        check_nesting(parameters, "parameters", limit=8)
        size = len(msgspec.json.encode(parameters))
    except InvalidError:
        return [("parameters", "nested deeper than 8 levels")]
    except (TypeError, ValueError, OverflowError):
        return [("parameters", "Expected JSON values")]
    if size > MAX_PARAMETERS_BYTES:
        return [("parameters", f"at most {MAX_PARAMETERS_BYTES} bytes of JSON")]
    problems: Problems = []
    for name in sorted(parameters, key=str):
        value = parameters[name]
        if name in REFUSED:
            problems.append((f"parameters.{name}", f"cannot be set in parameters: {REFUSED[name]}"))
        elif name not in PARAMETERS:
            problems.append((f"parameters.{str(name)[:100]}", "not a LiteLLM completion parameter this service "
                             "passes; use one of " + ", ".join(sorted(PARAMETERS))))
        elif (problem := PARAMETERS[name](value)) is not None:
            problems.append((f"parameters.{name}", problem))
    return problems


def check_api_base(value: Any) -> Problems:
    """An ``http``/``https`` URL with a host and no credentials in it (None: the provider's own)."""
    if value is None:
        return []
    if not isinstance(value, str) or not value.strip():
        return [("api_base", "Expected an http or https URL")]
    if len(value) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in value):
        return [("api_base", f"Expected an http or https URL of at most {MAX_URL_CHARS} characters, "
                             "without spaces")]
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        return [("api_base", "Expected an http or https URL")]
    if url.scheme.lower() not in ("http", "https") or not url.hostname:
        return [("api_base", "Expected an http or https URL, e.g. http://10.0.0.5:8000/v1")]
    if url.username is not None or url.password is not None:
        return [("api_base", f"must not carry a user or password: {KEY_STORE_HINT}")]
    return []


def check_extra_headers(value: Any) -> Problems:
    """Header names and plain values; anything that looks like a credential is refused."""
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [("extra_headers", "Expected an object of header names to string values")]
    if len(value) > MAX_HEADERS:
        return [("extra_headers", f"at most {MAX_HEADERS} headers")]
    problems: Problems = []
    for name in sorted(value, key=str):
        shown = f"extra_headers.{str(name)[:100]}"
        text = value[name]
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            problems.append((shown, "not a valid header name (letters, digits and !#$%&'*+-.^_`|~, "
                                    "at most 100)"))
        elif name.lower() in _MANAGED_HEADERS:
            problems.append((shown, "set by the service for every request"))
        elif len(text) > MAX_HEADER_CHARS or not all(c == "\t" or " " <= c <= "~" for c in text):
            problems.append((shown, f"a header value is at most {MAX_HEADER_CHARS} printable ASCII characters "
                                    "on one line"))
        elif _SECRET_NAME.search(name) or _SECRET_VALUE.search(text):
            problems.append((shown, f"looks like a credential: {KEY_STORE_HINT}"))
    return problems


def headers_to_store(value: dict[str, str] | None) -> dict[str, str]:
    """Headers as kept: one entry per name ignoring case (the last sent wins)."""
    kept: dict[str, str] = {}
    for name, text in (value or {}).items():
        for old in [k for k in kept if k.lower() == name.lower()]:
            del kept[old]
        kept[name] = text
    return kept
