"""Unique names per group without read-then-write races.

A name is reserved by an index aggregate whose id is derived from (kind,
group, normalised name). Two concurrent creators both try to record version 1
of the same aggregate; the event store's version check lets exactly one win.
"""

from __future__ import annotations

import re
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import KasalAggregate, event, stable_topics
from domain.errors import ConflictError


def normalise_name(name: str) -> str:
    """Names compare ignoring case and surrounding/repeated white space."""
    return re.sub(r"\s+", " ", name).strip().casefold()


@stable_topics("name_index")
class NameIndex(KasalAggregate):
    """Which resource of a kind holds a name in a group."""

    class Created(KasalAggregate.Created):
        kind: str
        name: str
        holder: UUID

    def __init__(self, group_id: str, kind: str, name: str, holder: UUID) -> None:
        self.group_id = group_id
        self.kind = kind
        self.name = name
        self.holder: UUID | None = holder

    @staticmethod
    def id_for(kind: str, group_id: str, name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"kasal:{kind}:{group_id}:{normalise_name(name)}")

    @classmethod
    def reserve_new(cls, kind: str, group_id: str, name: str, holder: UUID) -> NameIndex:
        return cls._create(
            cls.Created, id=cls.id_for(kind, group_id, name), group_id=group_id, kind=kind,
            name=name, holder=holder,
        )

    def reserve(self, holder: UUID) -> None:
        if self.holder is not None and self.holder != holder:
            raise ConflictError(
                f"A {self.kind} named '{self.name}' already exists",
                errors=[("name", f"'{self.name}' is already used by {self.kind} {self.holder}")],
            )
        if self.holder is None:
            self._reserve(holder=holder)

    def release(self, holder: UUID) -> None:
        if self.holder == holder:
            self._release()

    @event("Reserved")
    def _reserve(self, holder: UUID) -> None:
        self.holder = holder

    @event("Released")
    def _release(self) -> None:
        self.holder = None
