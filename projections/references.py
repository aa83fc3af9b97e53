"""Synchronous look-ups of references between documents, for commands.

Commands run in a worker thread (``Kasal.run``), so these queries borrow a
connection from the service's synchronous pool rather than the async one.
They read the agents' and tasks' read models; a table that does not exist
(its feature not installed) simply holds nothing.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

_SEPARATORS = re.compile(r"[\s_-]+")


def agent_key(name: str) -> str:
    """How agent names compare: ignoring case, spaces, hyphens and underscores."""
    return _SEPARATORS.sub("", name).lower()


def _as_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


class ReferenceQueries:
    """``AgentDirectory`` and ``TaskDirectory`` over the read models."""

    def __init__(self, pool: ConnectionPool, *, agents_table: str = "rm_agents", tasks_table: str = "rm_tasks") -> None:
        self.pool = pool
        self.agents_table = agents_table
        self.tasks_table = tasks_table

    def agent_id_for(self, group_id: str, reference: str) -> UUID | None:
        as_id = _as_uuid(reference)
        table = sql.Identifier(self.agents_table)
        if as_id is not None:
            row = self._one(sql.SQL("SELECT id FROM {} WHERE group_id = %s AND id = %s").format(table),
                            (group_id, as_id))
            if row is not None:
                return UUID(str(row[0]))
        row = self._one(
            sql.SQL(
                "SELECT id FROM {} WHERE group_id = %s"
                " AND regexp_replace(lower(name), '[[:space:]_-]+', '', 'g') = %s"
                " ORDER BY created_at, id LIMIT 1"
            ).format(table),
            (group_id, agent_key(reference)),
        )
        return None if row is None else UUID(str(row[0]))

    def tasks_assigned_to(self, group_id: str, agent_id: UUID) -> list[UUID]:
        query = sql.SQL("SELECT id FROM {} WHERE group_id = %s AND doc->>'agent_id' = %s ORDER BY created_at, id")
        return [UUID(str(row[0])) for row in self._all(query.format(sql.Identifier(self.tasks_table)),
                                                       (group_id, str(agent_id)))]

    def _one(self, query: sql.Composed, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        rows = self._all(query, params)
        return rows[0] if rows else None

    def _all(self, query: sql.Composed, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with self.pool.connection() as conn:
                return conn.execute(query, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
