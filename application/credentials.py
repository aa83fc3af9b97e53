"""A group's provider keys in plaintext, for one execution or one generation call.

Keys are encrypted at rest; this decrypts the group's keys when a run or a
generation needs them and hands them over in memory, to be passed to the
model client per call, never through ``os.environ`` (which every tenant's
calls would share).
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import anyio.to_thread

from application.api_keys import ApiKeyService


class ApiKeyIds(Protocol):
    """Which keys a group has (adapter: ``projections.api_keys.ApiKeyView``)."""

    async def key_ids(self, group_id: str) -> list[UUID]:
        """The group's key ids, least recently updated first (so the newest wins a shared service)."""
        ...


class GroupCredentials:
    """The ``CredentialSource`` over the encrypted key store."""

    def __init__(self, keys: ApiKeyService, index: ApiKeyIds) -> None:
        self.keys = keys
        self.index = index

    async def credentials(self, group_id: str) -> dict[str, str]:
        """Each key's name (``OPENAI_API_KEY``) and service (``openai``) → its plaintext.

        A name always wins over another key's service; of two keys for one
        service the most recently updated wins; keys with no value are left
        out. Raises ``ApiKeyDecryptionError`` naming a key that cannot be
        decrypted; it never returns an empty secret.
        """
        ids = await self.index.key_ids(group_id)
        return await anyio.to_thread.run_sync(self.keys.credentials, group_id, ids)
