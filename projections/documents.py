"""Read models of documents (agents, tasks, crews, …): one row per live document.

Rows keep the document's fields as JSON plus the columns every list needs.
The table is written only here; ``DocumentView`` owns the SQL that reads it.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.base import Document, event_classes
from projections.base import Projection


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class DocumentProjection(Projection):
    """Folds Created/Updated/Replaced/Deleted (and any event carrying ``changes``)."""

    aggregate: ClassVar[type[Document]]

    def __init__(self) -> None:
        table = self.tables[0]
        self.table = table

    @classmethod
    def for_aggregate(cls, aggregate: type[Document], table: str, *, version: int = 1) -> DocumentProjection:
        attrs = {
            "aggregate": aggregate,
            "name": table,
            "tables": (table,),
            "version": version,
            "ddl": document_table_ddl(table),
        }
        return type(f"{aggregate.__name__}Projection", (cls,), attrs)()

    def topics(self) -> frozenset[str]:
        return frozenset(c.TOPIC for c in event_classes(self.aggregate).values() if "TOPIC" in c.__dict__)

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, self.aggregate.Created):
            cur.execute(
                f"INSERT INTO {self.table} (group_id, id, name, doc, version, created_at, updated_at,"
                " created_by, updated_by, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (group_id, id) DO NOTHING",
                (
                    event.group_id, event.originator_id, event.fields.get("name"),
                    Jsonb(event.fields, dumps=_dumps), event.originator_version, event.timestamp,
                    event.timestamp, event.actor, event.actor, position,
                ),
            )
        elif isinstance(event, self.aggregate.Deleted):
            cur.execute(
                f"DELETE FROM {self.table} WHERE group_id = %s AND id = %s",
                (event.group_id, event.originator_id),
            )
        elif hasattr(event, "fields") or hasattr(event, "changes"):
            replace = not hasattr(event, "changes")
            data = event.fields if replace else event.changes
            doc_sql = "%s" if replace else "doc || %s"
            name_sql = "name" if "name" not in data else "%s"
            params: list[Any] = [Jsonb(data, dumps=_dumps)]
            if "name" in data:
                params.append(data["name"])
            params += [event.originator_version, event.timestamp, event.actor, position,
                       event.group_id, event.originator_id]
            cur.execute(
                f"UPDATE {self.table} SET doc = {doc_sql}, name = {name_sql}, version = %s,"
                " updated_at = %s, updated_by = %s, position = %s WHERE group_id = %s AND id = %s",
                params,
            )
        else:
            cur.execute(
                f"UPDATE {self.table} SET version = %s, updated_at = %s, updated_by = %s, position = %s"
                " WHERE group_id = %s AND id = %s",
                (event.originator_version, event.timestamp, event.actor, position,
                 event.group_id, event.originator_id),
            )


def document_table_ddl(table: str) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        group_id text NOT NULL,
        id uuid NOT NULL,
        name text,
        doc jsonb NOT NULL,
        version integer NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        created_by text NOT NULL,
        updated_by text NOT NULL,
        position bigint NOT NULL,
        PRIMARY KEY (group_id, id)
    );
    CREATE INDEX IF NOT EXISTS {table}_newest ON {table} (group_id, created_at DESC, id DESC);
    CREATE INDEX IF NOT EXISTS {table}_name ON {table} (group_id, lower(name));
    """


class Page(dict[str, Any]):
    """``{items, total, limit, offset, has_more}``: the list envelope of the API."""


class DocumentView:
    """Queries over one document table, always within one group."""

    def __init__(self, pool: AsyncConnectionPool, table: str) -> None:
        self.pool = pool
        self.table = table

    @staticmethod
    def to_resource(row: dict[str, Any]) -> dict[str, Any]:
        doc = dict(row["doc"])
        doc.update(
            id=str(row["id"]), group_id=row["group_id"], version=row["version"],
            created_at=row["created_at"], updated_at=row["updated_at"],
            created_by=row["created_by"], updated_by=row["updated_by"],
        )
        return doc

    async def get(self, group_id: str, document_id: UUID) -> dict[str, Any] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM {self.table} WHERE group_id = %s AND id = %s", (group_id, document_id)
            )
            row = await cur.fetchone()
        return self.to_resource(row) if row else None

    async def find_by_name(self, group_id: str, name: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM {self.table} WHERE group_id = %s AND lower(name) = lower(%s)"
                " ORDER BY created_at LIMIT 1",
                (group_id, name),
            )
            row = await cur.fetchone()
        return self.to_resource(row) if row else None

    async def all(self, group_id: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM {self.table} WHERE group_id = %s ORDER BY created_at, id", (group_id,)
            )
            rows = await cur.fetchall()
        return [self.to_resource(r) for r in rows]

    async def list(
        self, group_id: str, *, limit: int, offset: int, contains: dict[str, Any] | None = None
    ) -> Page:
        where = "group_id = %s"
        params: list[Any] = [group_id]
        if contains:
            where += " AND doc @> %s"
            params.append(Jsonb(contains))
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT *, count(*) OVER () AS total FROM {self.table} WHERE {where}"
                " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = await cur.fetchall()
            if rows:
                total = rows[0]["total"]
            else:
                await cur.execute(f"SELECT count(*) AS total FROM {self.table} WHERE {where}", params)
                total = (await cur.fetchone() or {"total": 0})["total"]
        items = [self.to_resource(r) for r in rows]
        return Page(items=items, total=total, limit=limit, offset=offset, has_more=offset + len(items) < total)
