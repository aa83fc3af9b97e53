"""Commands on document aggregates: create, change, replace, delete.

Thin by design: load, call the aggregate, save, return ids and the
log position. Unique names are reserved through ``NameIndex`` in the same
save as the document, so a duplicate can never slip in between a check and a
write.

A write that loses a race for the document's version is tried again on the
fresh version, and that includes checking the caller's ``If-Match`` again:
a client that asked for version 3 gets a 412 when someone else's write made
it 4 between our load and our save, and a client that asked for nothing
gets its change re-applied on top of the other one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from application.store import KasalStore, retry_on_conflict
from domain.base import Document
from domain.context import current_actor
from domain.errors import InvalidError, NotFoundError, PreconditionFailedError
from domain.name_index import NameIndex, normalise_name

D = TypeVar("D", bound=Document)


@dataclass(frozen=True, slots=True)
class Written:
    """What a command did: which aggregate, at which version, where in the log."""

    id: UUID
    version: int
    position: int | None


@dataclass(frozen=True, slots=True)
class ExpectedVersions:
    """The versions a conditional write (``If-Match``) may apply to.

    Empty when the client's tags named no version of ours: such a
    precondition holds for no version at all, so the write is refused.
    """

    versions: frozenset[int]

    def check(self, kind: str, resource_id: object, version: int) -> None:
        if version in self.versions:
            return
        expected = " or ".join(map(str, sorted(self.versions)))
        if not expected:
            raise PreconditionFailedError(f"{kind} {resource_id} is at version {version}; the precondition names none")
        raise PreconditionFailedError(f"{kind} {resource_id} is at version {version}, not {expected}")


class DocumentService(Generic[D]):
    """Create/change/delete documents of one kind, with optional unique names."""

    def __init__(self, store: KasalStore, cls: type[D], *, unique_names: bool) -> None:
        self.store = store
        self.cls = cls
        self.unique_names = unique_names

    @property
    def kind(self) -> str:
        return self.cls.KIND

    def create(self, fields: dict[str, Any], *, id: UUID | None = None) -> Written:
        def attempt() -> Written:
            document, index = self.draft(fields, id=id)
            position = self.store.record(document, index)
            return Written(document.id, document.version, position)

        return retry_on_conflict(attempt, attempts=2)

    def draft(
        self, fields: dict[str, Any], *, id: UUID | None = None, trusted: bool = False,
    ) -> tuple[D, NameIndex | None]:
        """A new document of the caller's group and its name reservation, not yet saved.

        ``trusted`` fields are not checked against the store: the caller made
        what they refer to itself, in the same save (a generated crew's agents).
        """
        document = self.cls.new(current_actor().group_id, fields if trusted else self.checked(fields), id=id)
        index = self._reserve(document.name, document.id) if self.unique_names else None
        return document, index

    def get(self, document_id: UUID) -> D:
        return self.store.load(self.cls, document_id, kind=self.kind)

    def change(
        self, document_id: UUID, changes: dict[str, Any], expected_version: ExpectedVersions | None = None
    ) -> Written:
        return self._mutate(document_id, lambda d: d.change(self.checked(changes)), expected_version)

    def replace(
        self, document_id: UUID, fields: dict[str, Any], expected_version: ExpectedVersions | None = None
    ) -> Written:
        return self._mutate(document_id, lambda d: d.replace(self.checked(fields)), expected_version)

    def delete(self, document_id: UUID, expected_version: ExpectedVersions | None = None) -> Written:
        def attempt() -> Written:
            document = self._load_expecting(document_id, expected_version)
            document.delete()
            extra = self._release(document.name, document.id) if self.unique_names else None
            position = self.store.record(document, extra, *self.cascade_delete(document))
            return Written(document.id, document.version, position)

        return retry_on_conflict(attempt)

    def restore(
        self, document_id: UUID, version: int, expected_version: ExpectedVersions | None = None
    ) -> Written:
        """Make version ``version``'s fields current again, as a new version; undeletes a deleted document.

        A name taken since by another document is a 409; restoring what is
        already current records nothing.
        """

        def attempt() -> Written:
            document = self.load_any(document_id)
            if expected_version is not None:
                expected_version.check(self.kind, document_id, document.version)
            past = self.past(document, version)
            old_name, was_deleted = document.name, document.deleted
            if not document.restore(self.restored_fields(document, past.fields), from_version=version):
                return Written(document.id, document.version, None)
            indexes: list[NameIndex | None] = []
            if self.unique_names and (was_deleted or normalise_name(document.name) != normalise_name(old_name)):
                indexes.append(self._reserve(document.name, document.id))
                if not was_deleted:
                    indexes.append(self._release(old_name, document.id))
            position = self.store.record(document, *indexes)
            return Written(document.id, document.version, position)

        return retry_on_conflict(attempt)

    def restored_fields(self, document: D, fields: dict[str, Any]) -> dict[str, Any]:
        """Hook: what restoring ``fields`` (an earlier version's) onto ``document`` records."""
        return fields

    def past(self, document: D, version: int) -> D:
        """``document`` as it was at ``version``: 404 beyond its last version or where it was deleted."""
        if not 1 <= version <= document.version:
            raise NotFoundError(f"{self.kind} {document.id} has no version {version}")
        past: D = self.store.repository.get(document.id, version=version)
        if past.deleted:
            raise NotFoundError(f"{self.kind} {document.id} was deleted at version {version}")
        return past

    def load_any(self, document_id: UUID) -> D:
        """The caller's group's document of this kind, deleted or not (404 otherwise)."""
        document = self.store.find(document_id)
        if not isinstance(document, self.cls) or document.group_id != current_actor().group_id:
            raise NotFoundError(f"{self.kind} {document_id} not found")
        return document

    def cascade_delete(self, document: D) -> list[Any]:
        """Aggregates changed as a consequence of deleting ``document`` (saved atomically)."""
        return []

    def checked(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields to record for what the client sent: references resolved and checked.

        A change calls it only once the document is loaded, so a document the
        caller's group cannot see is 404 before anything in the body is judged.
        """
        return fields

    def require_own(self, cls: type[Document], references: list[tuple[str, Any]]) -> None:
        """422 unless each ``(field, id)`` names a live ``cls`` of the caller's group.

        Another group's id is refused exactly like an id that exists nowhere,
        so the answer never tells one group what another has.
        """
        unknown = [(field, value) for field, value in references if not self._owns(cls, value)]
        if unknown:
            raise InvalidError(
                f"Unknown {cls.KIND}: " + ", ".join(repr(str(value)) for _, value in unknown),
                errors=[(field, f"no such {cls.KIND} in this group") for field, _ in unknown],
            )

    def _owns(self, cls: type[Document], reference: Any) -> bool:
        try:
            self.store.load(cls, UUID(str(reference)))
        except (ValueError, NotFoundError):
            return False
        return True

    def _mutate(self, document_id: UUID, change: Any, expected_version: ExpectedVersions | None) -> Written:
        def attempt() -> Written:
            document = self._load_expecting(document_id, expected_version)
            old_name = document.name
            change(document)
            indexes: list[NameIndex | None] = []
            if self.unique_names and normalise_name(document.name) != normalise_name(old_name):
                indexes = [self._reserve(document.name, document.id), self._release(old_name, document.id)]
            position = self.store.record(document, *indexes)
            return Written(document.id, document.version, position)

        return retry_on_conflict(attempt)

    def _load_expecting(self, document_id: UUID, expected_version: ExpectedVersions | None) -> D:
        document = self.get(document_id)
        if expected_version is not None:
            expected_version.check(self.kind, document_id, document.version)
        return document

    def _reserve(self, name: str, holder: UUID) -> NameIndex:
        group_id = current_actor().group_id
        index_id = NameIndex.id_for(self.kind, group_id, name)
        index = self.store.find(index_id)
        if not isinstance(index, NameIndex):
            return NameIndex.reserve_new(self.kind, group_id, name, holder)
        index.reserve(holder)
        return index

    def _release(self, name: str, holder: UUID) -> NameIndex | None:
        index = self.store.find(NameIndex.id_for(self.kind, current_actor().group_id, name))
        if index is not None:
            index.release(holder)
        return index
