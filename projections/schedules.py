"""Read model of schedules: the generic document rows, plus ``next_run_at`` as an indexed column.

The API reads rows like any document table (``DocumentView``). The scheduler
asks two questions of it, across all groups: which schedules are due now,
and when the next one is. Both are answered from the ``next_run_at``
column, which is NULL for disabled schedules so they never come up. The
scheduler re-checks each answer against the aggregate, so a lagging row can
delay a fire by one tick, never cause a second one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from domain.redaction import redact
from domain.schedule import SEALED_INPUTS, Schedule
from projections.documents import SCHEMA_VERSION, DocumentProjection, document_table_ddl

TABLE = "rm_schedules"


class SchedulesProjection(DocumentProjection):
    aggregate = Schedule
    name = TABLE
    tables = (TABLE,)
    version = SCHEMA_VERSION
    ddl = document_table_ddl(TABLE) + f"""
    ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS next_run_at timestamptz;
    CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (next_run_at) WHERE next_run_at IS NOT NULL;
    """

    def shown_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """Rows never hold the sealed inputs, nor a secret input of a schedule written before
        secrets were sealed (a rebuild redacts those)."""
        if SEALED_INPUTS not in data and not isinstance(data.get("inputs"), dict):
            return data
        shown = {k: v for k, v in data.items() if k != SEALED_INPUTS}
        if isinstance(shown.get("inputs"), dict):
            shown["inputs"] = redact(shown["inputs"])[0]
        return shown

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        super().apply(cur, event, position)
        self._copy_next_run(cur, [event])

    def apply_page(self, cur: Cursor[Any], items: list[tuple[Any, int]]) -> None:
        super().apply_page(cur, items)
        self._copy_next_run(cur, [event for event, _ in items])

    def _copy_next_run(self, cur: Cursor[Any], events: list[Any]) -> None:
        """Mirror ``doc.next_run_at`` into its indexed column for rows whose events set it."""
        keys = {
            (event.group_id, event.originator_id) for event in events
            if "next_run_at" in (getattr(event, "changes", None) or getattr(event, "fields", None) or {})
        }
        if keys:
            cur.executemany(
                f"UPDATE {TABLE} SET next_run_at = (doc->>'next_run_at')::timestamptz"
                " WHERE group_id = %s AND id = %s", sorted(keys, key=str),
            )


class ScheduleIndexQueries:
    """The scheduler's queries (sync: the scheduler fires from worker threads)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def due(self, now: datetime, limit: int) -> list[UUID]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT id FROM {TABLE} WHERE next_run_at <= %s ORDER BY next_run_at, id LIMIT %s", (now, limit)
            ).fetchall()
        return [row[0] for row in rows]


class NextRunQuery:
    """When the scheduler loop should wake next."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def earliest(self) -> datetime | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT min(next_run_at) FROM {TABLE}")
            row = await cur.fetchone()
        return None if row is None else row[0]
