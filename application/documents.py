"""Commands on document aggregates: create, change, replace, delete.

Thin by design (STYLE 4): load, call the aggregate, save, return ids and the
log position. Unique names are reserved through ``NameIndex`` in the same
save as the document, so a duplicate can never slip in between a check and a
write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from domain.base import Document
from domain.context import current_actor
from domain.errors import PreconditionFailedError
from domain.name_index import NameIndex, normalise_name
from application.store import KasalStore, retry_on_conflict

D = TypeVar("D", bound=Document)


@dataclass(frozen=True, slots=True)
class Written:
    """What a command did: which aggregate, at which version, where in the log."""

    id: UUID
    version: int
    position: int | None


class DocumentService(Generic[D]):
    """Create/change/delete documents of one kind, with optional unique names."""

    def __init__(self, store: KasalStore, cls: type[D], *, unique_names: bool) -> None:
        self.store = store
        self.cls = cls
        self.unique_names = unique_names

    @property
    def kind(self) -> str:
        return self.cls.KIND

    def create(self, fields: dict[str, Any], *, id: UUID | None = None) -> Written:  # noqa: A002
        group_id = current_actor().group_id

        def attempt() -> Written:
            document = self.cls.new(group_id, fields, id=id)
            index = self._reserve(document.name, document.id) if self.unique_names else None
            position = self.store.record(document, index)
            return Written(document.id, document.version, position)

        return retry_on_conflict(attempt, attempts=2)

    def get(self, document_id: UUID) -> D:
        return self.store.load(self.cls, document_id, kind=self.kind)

    def change(
        self, document_id: UUID, changes: dict[str, Any], expected_version: int | None = None
    ) -> Written:
        return self._mutate(document_id, lambda d: d.change(changes), expected_version)

    def replace(
        self, document_id: UUID, fields: dict[str, Any], expected_version: int | None = None
    ) -> Written:
        return self._mutate(document_id, lambda d: d.replace(fields), expected_version)

    def delete(self, document_id: UUID, expected_version: int | None = None) -> Written:
        def attempt() -> Written:
            document = self._load_expecting(document_id, expected_version)
            document.delete()
            extra = self._release(document.name, document.id) if self.unique_names else None
            position = self.store.record(document, extra, *self.cascade_delete(document))
            return Written(document.id, document.version, position)

        return retry_on_conflict(attempt)

    def cascade_delete(self, document: D) -> list[Any]:
        """Aggregates changed as a consequence of deleting ``document`` (saved atomically)."""
        return []

    def _mutate(self, document_id: UUID, change: Any, expected_version: int | None) -> Written:
        def attempt() -> Written:
            document = self._load_expecting(document_id, expected_version)
            old_name = document.name
            change(document)
            indexes: list[NameIndex | None] = []
            if self.unique_names and normalise_name(document.name) != normalise_name(old_name):
                indexes = [self._reserve(document.name, document.id), self._release(old_name, document.id)]
            position = self.store.record(document, *indexes)
            return Written(document.id, document.version, position)

        # With an explicit expected version the caller asked for exactly that version:
        # a concurrent change is a 412, not something to paper over by re-applying.
        return retry_on_conflict(attempt, attempts=1 if expected_version is not None else 16)

    def _load_expecting(self, document_id: UUID, expected_version: int | None) -> D:
        document = self.get(document_id)
        if expected_version is not None and document.version != expected_version:
            raise PreconditionFailedError(
                f"{self.kind} {document_id} is at version {document.version}, not {expected_version}"
            )
        return document

    def _reserve(self, name: str, holder: UUID) -> NameIndex:
        group_id = current_actor().group_id
        index_id = NameIndex.id_for(self.kind, group_id, name)
        index = self.store.find(index_id)
        if index is None:
            return NameIndex.reserve_new(self.kind, group_id, name, holder)
        index.reserve(holder)
        return index

    def _release(self, name: str, holder: UUID) -> NameIndex | None:
        index = self.store.find(NameIndex.id_for(self.kind, current_actor().group_id, name))
        if index is not None:
            index.release(holder)
        return index
