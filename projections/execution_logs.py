"""Read model of execution log lines, numbered by the aggregate's ``seq``.

The ``seq`` is assigned when a line is recorded, so "everything after 41"
means the same thing to the list endpoint, to a live stream resuming after a
reconnect, and after a rebuild of this table from the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.execution import Execution
from projections.base import Projection

TABLE = "rm_execution_logs"
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    group_id text NOT NULL,
    execution_id uuid NOT NULL,
    seq integer NOT NULL,
    at timestamptz NOT NULL,
    level text NOT NULL,
    source text NOT NULL,
    message text NOT NULL,
    size integer NOT NULL,
    sha256 text,
    position bigint NOT NULL,
    PRIMARY KEY (group_id, execution_id, seq)
);
"""


def from_unix(at: float) -> datetime:
    """A recorded unix time; one no timestamp can hold folds to the epoch rather than halt the projector."""
    try:
        return datetime.fromtimestamp(at, UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, UTC)


class ExecutionLogsProjection(Projection):
    name = TABLE
    tables = (TABLE,)
    ddl = DDL

    def topics(self) -> frozenset[str]:
        return frozenset({Execution.ProgressRecorded.TOPIC})

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        if not event.logs:
            return
        cur.executemany(
            f"INSERT INTO {TABLE} (group_id, execution_id, seq, at, level, source, message, size, sha256, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (event.group_id, event.originator_id, line["seq"], from_unix(line["at"]), line["level"],
                 line["source"], line["message"], line["size"], line["sha256"], position)
                for line in event.logs
            ],
        )


_SELECT = (
    f"SELECT l.seq, l.at AS timestamp, l.level, l.source,"
    f" coalesce(convert_from(c.bytes, 'UTF8'), l.message) AS message FROM {TABLE} l"
    " LEFT JOIN content c ON l.sha256 IS NOT NULL AND c.group_id = l.group_id AND c.sha256 = l.sha256"
    " WHERE l.group_id = %s AND l.execution_id = %s"
)


class ExecutionLogView:
    """Log lines of one execution of one group, whole texts joined back in."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def after(self, group_id: str, execution_id: UUID, after: int, limit: int) -> list[dict[str, Any]]:
        """Lines with ``seq > after``, in order."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"{_SELECT} AND l.seq > %s ORDER BY l.seq LIMIT %s",
                              (group_id, execution_id, after, limit))
            return await cur.fetchall()

    async def newest(self, group_id: str, execution_id: UUID, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"{_SELECT} ORDER BY l.seq DESC LIMIT %s OFFSET %s",
                              (group_id, execution_id, limit, offset))
            return await cur.fetchall()

    async def count(self, group_id: str, execution_id: UUID) -> int:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(f"SELECT count(*) FROM {TABLE} WHERE group_id = %s AND execution_id = %s",
                              (group_id, execution_id))
            row = await cur.fetchone()
        return int(row[0]) if row else 0
