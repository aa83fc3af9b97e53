"""PostgreSQL table of runs' sealed secret inputs: ``execution_secrets``.

Not the event log and not a read model: a row is written before the request
that refers to it is saved and is deleted when the run ends, so nothing of it
outlives the run (see ``application.sealed_inputs``). Rebuilding read models
never touches it. Rows hold only ciphertext bound to their run.
"""

from __future__ import annotations

from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from application.store import APPLICATION_NAME
from domain.execution import TERMINAL
from projections.executions import TABLE as EXECUTIONS_TABLE

TABLE = "execution_secrets"
EVENTS_TABLE = f"{APPLICATION_NAME}_events"
# A row whose run has no event at all this long after it was written belongs to a request whose
# save failed (a request saves its event milliseconds after the row).
ORPHAN_AFTER_S = 600

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    execution_id uuid PRIMARY KEY,
    group_id text NOT NULL,
    sealed text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""

SWEEP = f"""
DELETE FROM {TABLE} s
WHERE EXISTS (SELECT 1 FROM {EXECUTIONS_TABLE} e WHERE e.id = s.execution_id AND e.status = ANY(%(ended)s))
   OR (s.created_at < now() - make_interval(secs => %(orphan_after)s)
       AND NOT EXISTS (SELECT 1 FROM {EVENTS_TABLE} ev WHERE ev.originator_id = s.execution_id))
"""


class PostgresSealedRows:
    """``SealedRows`` in PostgreSQL, one row per run that has secret inputs and has not ended."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def create_table(self) -> None:
        with self.pool.connection() as conn:
            conn.execute(DDL)

    def put(self, execution_id: UUID, group_id: str, token: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                f"INSERT INTO {TABLE} (execution_id, group_id, sealed) VALUES (%s, %s, %s)"
                " ON CONFLICT (execution_id) DO NOTHING",
                (execution_id, group_id, token),
            )

    def get(self, execution_id: UUID) -> tuple[str, str] | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                f"SELECT group_id, sealed FROM {TABLE} WHERE execution_id = %s", (execution_id,)
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def delete(self, execution_id: UUID) -> None:
        with self.pool.connection() as conn:
            conn.execute(f"DELETE FROM {TABLE} WHERE execution_id = %s", (execution_id,))

    def sweep(self) -> int:
        """Delete the rows of runs the read model shows ended, and of requests never saved."""
        try:
            with self.pool.connection() as conn:
                cursor = conn.execute(SWEEP, {"ended": sorted(s.value for s in TERMINAL),
                                              "orphan_after": ORPHAN_AFTER_S})
                return cursor.rowcount
        except psycopg.errors.UndefinedTable:  # read models not created yet (a first start): nothing ended
            return 0
