"""Read model of live access tokens, found by hash on every authenticated request.

One row per unrevoked token. ``token_hash`` is unique and indexed so checking
a bearer token is one index probe, never a scan; a revoked token's row is
deleted, so revocation needs no filter on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import Connection, Cursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.access_token import AccessToken
from domain.base import topics_of
from projections.base import LogRows, Projection
from projections.documents import Page

TABLE = "rm_access_tokens"
COLUMNS = "id, group_id, name, role, hint, created_at, created_by"


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """Who a token speaks for: what authentication needs and nothing secret."""

    id: str
    group_id: str
    role: str


class AccessTokenProjection(Projection):
    name = TABLE
    tables = (TABLE,)
    ddl = f"""
    CREATE TABLE IF NOT EXISTS {TABLE} (
        group_id text NOT NULL,
        id uuid NOT NULL,
        name text NOT NULL,
        role text NOT NULL,
        token_hash text NOT NULL UNIQUE,
        hint text NOT NULL,
        created_at timestamptz NOT NULL,
        created_by text NOT NULL,
        position bigint NOT NULL,
        PRIMARY KEY (group_id, id)
    );
    CREATE INDEX IF NOT EXISTS {TABLE}_newest ON {TABLE} (group_id, created_at DESC, id DESC);
    """

    def topics(self) -> frozenset[str]:
        return topics_of(AccessToken)

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, AccessToken.Created):
            cur.execute(
                f"INSERT INTO {TABLE} (group_id, id, name, role, token_hash, hint, created_at,"
                " created_by, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (event.group_id, event.originator_id, event.name, event.role, event.token_hash,
                 event.hint, event.timestamp, event.actor, position),
            )
        else:
            cur.execute(
                f"DELETE FROM {TABLE} WHERE group_id = %s AND id = %s", (event.group_id, event.originator_id)
            )

    def row_of(self, events: list[Any]) -> dict[str, Any] | None:
        """Any event after ``Created`` revokes the token, and a revoked token has no row."""
        if len(events) != 1 or not isinstance(events[0], AccessToken.Created):
            return None
        event = events[0]
        return {"group_id": event.group_id, "id": event.originator_id, "name": event.name, "role": event.role,
                "token_hash": event.token_hash, "hint": event.hint, "created_at": event.timestamp,
                "created_by": event.actor}


class AccessTokenView:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def by_hash(self, token_hash: str) -> TokenIdentity | None:
        """The live token with this hash, whatever its group: the one cross-group read,
        because the hash is what tells us the group."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(f"SELECT id, group_id, role FROM {TABLE} WHERE token_hash = %s", (token_hash,))
            row = await cur.fetchone()
        return TokenIdentity(id=str(row[0]), group_id=row[1], role=row[2]) if row else None

    async def get(self, group_id: str, token_id: UUID) -> dict[str, Any] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE group_id = %s AND id = %s", (group_id, token_id))
            row = await cur.fetchone()
        return {**row, "id": str(row["id"])} if row else None

    def projected(self, group_id: str, token_id: UUID, version: int) -> dict[str, Any] | None:
        """Always None: no row of it is kept from the projector, so a write is read back with ``get``."""
        return None

    def from_log(self, rows: LogRows, group_id: str, token_id: UUID) -> dict[str, Any] | None:
        """What ``get`` will answer once the table has caught up with the log."""
        row = rows(TABLE, token_id)
        if row is None or row["group_id"] != group_id:
            return None
        return {**{column: row[column] for column in COLUMNS.split(", ")}, "id": str(row["id"])}

    async def list(self, group_id: str, *, limit: int, offset: int) -> Page:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {COLUMNS}, count(*) OVER () AS total"
                f" FROM {TABLE} WHERE group_id = %s ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
                (group_id, limit, offset),
            )
            rows = await cur.fetchall()
            if rows:
                total = rows[0]["total"]
            else:
                await cur.execute(f"SELECT count(*) AS total FROM {TABLE} WHERE group_id = %s", (group_id,))
                total = (await cur.fetchone() or {"total": 0})["total"]
        items = [{**{k: v for k, v in r.items() if k != "total"}, "id": str(r["id"])} for r in rows]
        return Page(items=items, total=total, limit=limit, offset=offset, has_more=offset + len(items) < total)


def live_tokens(conn: Connection[Any], group_id: str) -> list[dict[str, Any]]:
    """A group's live tokens, oldest first, for the CLI (empty before the first projection)."""
    exists = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
    if not exists or exists[0] is None:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE group_id = %s ORDER BY created_at, id", (group_id,))
        return cur.fetchall()
