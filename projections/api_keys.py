"""Read model of API keys: the document rows minus the ciphertext.

Rows keep whether a key is set (``is_set``) and its hint, never the secret in
any form; the encrypted value stays in the event log, where only the key
store's service decrypts it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from domain.api_key import SECRET_FIELD
from projections.documents import DocumentProjection, DocumentView, RecentRows

TABLE = "rm_api_keys"


class ApiKeyProjection(DocumentProjection):
    """The document read model, with each ciphertext replaced by whether there is one.

    Built with ``ApiKeyProjection.for_aggregate(ApiKey, TABLE)`` like every document table.
    """

    def shown_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        if SECRET_FIELD not in data:
            return data
        redacted = {k: v for k, v in data.items() if k != SECRET_FIELD}
        redacted["is_set"] = bool(data[SECRET_FIELD])
        return redacted


class ApiKeyView(DocumentView):
    """The group's keys as the API lists them, and their ids for decrypting (``ApiKeyIds``)."""

    def __init__(self, pool: AsyncConnectionPool, recent: RecentRows | None = None) -> None:
        super().__init__(pool, TABLE, recent)

    async def key_ids(self, group_id: str) -> list[UUID]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT id FROM {TABLE} WHERE group_id = %s ORDER BY updated_at, id", (group_id,)
            )
            return [row[0] for row in await cur.fetchall()]

    async def key_names(self, group_id: str) -> set[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT doc->>'name', doc->>'service' FROM {TABLE} "
                "WHERE group_id = %s AND (doc->>'is_set')::boolean", (group_id,)
            )
            return {name for row in await cur.fetchall() for name in row if name}
