"""API keys: a group's provider credentials (OpenAI, Anthropic, Databricks, …).

The aggregate only ever holds the *ciphertext* of a key and a short hint of
its last characters: the application layer encrypts before anything reaches
an event, so the event log, read models and backups never contain a usable
secret. The domain refuses plaintext fields outright, so a future code path
that forgets to encrypt fails at once instead of leaking.
"""

from __future__ import annotations

import re
from typing import Any

from domain.base import Document, stable_topics
from domain.errors import InvalidError

SECRET_FIELD = "encrypted_value"
"""Field holding the ciphertext; read models drop it and keep only ``is_set``."""

_PLAINTEXT_FIELDS = ("key", "value")
_NAME_SUFFIXES = {"api", "key", "token", "secret"}


def service_from_name(name: str) -> str:
    """The provider a conventionally named key is for.

    ``OPENAI_API_KEY`` → ``openai``, ``DATABRICKS_TOKEN`` → ``databricks``,
    ``OpenAI API Key`` → ``openai``: lower-case words with trailing
    ``api``/``key``/``token``/``secret`` dropped.
    """
    words = [w for w in re.split(r"[^0-9a-z]+", name.lower()) if w]
    kept = list(words)
    while kept and kept[-1] in _NAME_SUFFIXES:
        kept.pop()
    return "_".join(kept or words)


@stable_topics("api_key")
class ApiKey(Document):
    KIND = "api key"

    @classmethod
    def prepare(cls, fields: dict[str, Any]) -> dict[str, Any]:
        leaked = [f for f in _PLAINTEXT_FIELDS if f in fields]
        if leaked:
            # A programming error, not a user error: plaintext must be encrypted first.
            raise ValueError(f"API key fields {leaked} would store a plaintext secret")
        name = str(fields.get("name") or "").strip()
        if not name:
            raise InvalidError("API key name is required", errors=[("name", "Field required")])
        if len(name) > 200:
            raise InvalidError("API key name is too long", errors=[("name", "At most 200 characters")])
        service = str(fields.get("service") or "").strip().lower() or service_from_name(name)
        secret = fields.get(SECRET_FIELD) or None
        return {
            "name": name,
            "service": service,
            "description": str(fields.get("description") or ""),
            SECRET_FIELD: secret,
            "hint": str(fields.get("hint") or "") if secret else "",
        }

    @property
    def ciphertext(self) -> str | None:
        value = self.fields.get(SECRET_FIELD)
        return str(value) if value else None

    @property
    def service(self) -> str:
        return str(self.fields.get("service", ""))


__all__ = ["ApiKey", "SECRET_FIELD", "service_from_name"]
