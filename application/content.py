"""Content-addressed storage for large texts (prompts, responses, outputs, results).

Events stay small by keeping only a ``TextRef`` (hash, size, preview) of any
long text; the bytes live in a side table keyed by (group, sha256). Writing
the bytes *before* the event that references them means a reference never
dangles; a failed save leaves at most an unreferenced blob, which is harmless
because the same text always has the same key. Keeping the group in the key
lets one tenant's content be erased without touching anyone else's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from domain.execution_progress import PREVIEW_CHARS, TEXT_FIELDS, Observation, TextRef, fits_inline
from domain.redaction import scrub


class ContentStore(Protocol):
    """Where offloaded texts live (PostgreSQL in the service, a dict in unit tests)."""

    def put_many(self, group_id: str, blobs: Mapping[str, bytes]) -> None:
        """Store ``sha256 -> bytes``; storing a known hash again is a no-op."""
        ...

    def get(self, group_id: str, sha256: str) -> bytes | None:
        ...


class MemoryContentStore:
    """An in-process content store, for the in-memory event store."""

    def __init__(self) -> None:
        self._blobs: dict[tuple[str, str], bytes] = {}

    def put_many(self, group_id: str, blobs: Mapping[str, bytes]) -> None:
        for sha, data in blobs.items():
            self._blobs.setdefault((group_id, sha), data)

    def get(self, group_id: str, sha256: str) -> bytes | None:
        return self._blobs.get((group_id, sha256))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Offloader:
    """Replaces long texts by references, collecting the bytes to store first."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def text(self, value: str) -> TextRef:
        value = scrub(value)  # NUL is not text to PostgreSQL; stored content is read back as text
        if fits_inline(value):
            return TextRef(preview=value, size=len(value.encode()))
        data = value.encode()
        sha = digest(data)
        self.blobs[sha] = data
        return TextRef(preview=value[:PREVIEW_CHARS], size=len(data), sha256=sha)

    def json(self, value: Any) -> TextRef:
        """A JSON document kept whole in the content store (always by reference)."""
        data = msgspec.json.encode(value)
        sha = digest(data)
        self.blobs[sha] = data
        return TextRef(preview=data[:PREVIEW_CHARS].decode(errors="ignore"), size=len(data), sha256=sha)

    def observation(self, observation: Observation) -> Observation:
        changes = {
            name: self.text(value)
            for name in TEXT_FIELDS.get(type(observation), ())
            if isinstance(value := getattr(observation, name), str) and not fits_inline(value)
        }
        return msgspec.structs.replace(observation, **changes) if changes else observation

    def observations(self, observations: Sequence[Observation]) -> list[Observation]:
        return [self.observation(o) for o in observations]

    def save(self, store: ContentStore, group_id: str) -> None:
        if self.blobs:
            store.put_many(group_id, self.blobs)
            self.blobs = {}
