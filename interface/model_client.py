"""The ``ModelClient`` port over LiteLLM: one chat completion, its errors translated.

Credentials travel with each call (never through ``os.environ``). What a
provider says when it fails is passed on, minus anything that looks like a
credential, so it is safe to show the caller and to log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from application.ports import ModelProviderError
from domain.errors import InvalidError
from domain.model_config import ModelCall
from domain.redaction import REDACTED, KnownSecrets
from interface import llm_gateway
from interface.llm_gateway import CompletionResult, MissingCredential

log = logging.getLogger("kasal.generation")

# Things providers put in error messages that must not reach a caller or a log.
_KEY_LIKE = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}|\bdapi[0-9a-fA-F]{8,}|\bAIza[0-9A-Za-z_\-]{10,}"
    r"|\bBearer\s+\S+|\b[A-Za-z0-9+/]{32,}={0,2}"
)
_KEY_ASSIGNMENT = re.compile(r"(?i)\b(api[_-]?key|token|secret|password|authorization)(\s*[=:]\s*)\S+")


def scrub(message: str, secrets: Iterable[str]) -> str:
    """A provider's message safe to show: known secrets and key-looking strings replaced.

    Known values go through the same ``KnownSecrets`` a run's records do, so
    values under its minimum length are left alone; no provider key is that short.
    """
    message = KnownSecrets(secrets).hide(message)
    message = _KEY_ASSIGNMENT.sub(rf"\1\2{REDACTED}", _KEY_LIKE.sub(REDACTED, message))
    message = " ".join(message.split())
    return message if len(message) <= 500 else message[:500] + " ..."


class LiteLLMModelClient:
    """The ``ModelClient`` port over ``llm_gateway.complete``, with its errors translated.

    ``complete`` is the function to call; tests hand in one that answers a
    scripted ``mock_response`` through the same real function.
    """

    def __init__(self, complete: Callable[..., CompletionResult] = llm_gateway.complete, *,
                 timeout: float = 120.0) -> None:
        self._complete = complete
        self.timeout = timeout

    def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], credentials: Mapping[str, str], *,
        mock_response: str | None = None, call: ModelCall | None = None,
    ) -> CompletionResult:
        try:
            llm_gateway.require_credential(model, credentials, call)
        except MissingCredential as exc:
            raise InvalidError(
                f"Model '{model}' needs an API key for {exc.provider}: add {exc.key_name} with POST /api/v1/api-keys",
                errors=[("model", f"no API key for provider '{exc.provider}'; add {exc.key_name}")],
            ) from None
        except ValueError as exc:
            raise InvalidError(str(exc), errors=[("model", str(exc))]) from None
        try:
            return self._complete(model, messages, credentials, mock_response=mock_response, call=call,
                                  timeout=self.timeout)
        except Exception as exc:  # anything the provider call raises is the provider's failure
            message = scrub(str(getattr(exc, "message", "") or exc), credentials.values())
            log.warning("model %s failed (%s): %s", model, type(exc).__name__, message)
            raise ModelProviderError(f"The model provider failed: {message}", errors=[("model", message)]) from None
