"""Ids as clients send them: text that may or may not be a UUID."""

from __future__ import annotations

from typing import Any
from uuid import UUID


def parse_id(raw: Any) -> UUID | None:
    """``raw`` as a UUID, or None when it is not one (an unknown id, for every lookup)."""
    if isinstance(raw, UUID):
        return raw
    try:
        return UUID(str(raw))
    except ValueError:
        return None
