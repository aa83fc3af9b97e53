"""Shared wire-shape helpers for msgspec Structs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
from msgspec import UNSET, UnsetType


class Resource(msgspec.Struct, kw_only=True):
    """Fields every resource answers with."""

    id: str
    group_id: str
    created_at: datetime
    updated_at: datetime
    version: int
    created_by: str | None = None
    updated_by: str | None = None


def sent_fields(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields a client actually sent (UNSET ones left out), as plain data."""
    data = msgspec.to_builtins(struct)
    return {k: v for k, v in data.items() if v is not UNSET}


Item = TypeVar("Item", bound=msgspec.Struct)


class Page(msgspec.Struct, Generic[Item], kw_only=True):
    """A list envelope ``{items, total, limit, offset, has_more}``.

    A concrete page names its item type once more (``class AgentPage(Page[AgentRead]):
    items: list[AgentRead]``) because Litestar's OpenAPI schema does not resolve a generic
    base's parameter and would describe every item as an empty object.
    """

    items: list[Item]
    total: int
    limit: int
    offset: int
    has_more: bool


S = TypeVar("S")


def to_struct(data: Any, cls: type[S]) -> S:
    """``data`` (a read-model row, a page) as the wire struct ``cls``, coercing what JSON cannot tell apart."""
    return msgspec.convert(data, cls, strict=False)


__all__ = ["Resource", "sent_fields", "Page", "to_struct", "UNSET", "UnsetType"]
