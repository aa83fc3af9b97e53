"""Which runners are alive, without heartbeats.

Each runner holds a PostgreSQL session advisory lock keyed by its id for as
long as its process lives; the database releases it the moment the process
dies, however it dies. A runner is alive exactly when its lock is held, so
recovery after a crash never cancels work another live process still owns.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

DDL = """
CREATE TABLE IF NOT EXISTS kasal_runners (
    runner_id text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now()
)
"""


def lock_key(runner_id: str) -> int:
    digest = hashlib.sha256(f"kasal-runner:{runner_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class RunnerRegistry:
    def __init__(self, database_url: str, runner_id: str) -> None:
        self.database_url = database_url
        self.runner_id = runner_id
        self._conn: psycopg.Connection[Any] | None = None

    def register(self) -> None:
        """Hold this runner's liveness lock until ``close`` (or process death)."""
        conn = psycopg.connect(self.database_url, autocommit=True)
        conn.execute(DDL)
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(self.runner_id),))
        conn.execute("INSERT INTO kasal_runners (runner_id) VALUES (%s) ON CONFLICT DO NOTHING", (self.runner_id,))
        self._conn = conn

    def others_alive(self) -> set[str]:
        """Ids of other runners whose process still holds its lock; forgets dead ones."""
        alive: set[str] = set()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(DDL)
            for (runner_id,) in conn.execute("SELECT runner_id FROM kasal_runners").fetchall():
                if runner_id == self.runner_id:
                    continue
                if self._alive(conn, runner_id):
                    alive.add(runner_id)
                else:
                    conn.execute("DELETE FROM kasal_runners WHERE runner_id = %s", (runner_id,))
        return alive

    def is_alive(self, runner_id: str) -> bool:
        if runner_id == self.runner_id:
            return True
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return self._alive(conn, runner_id)

    @staticmethod
    def _alive(conn: psycopg.Connection[Any], runner_id: str) -> bool:
        key = lock_key(runner_id)
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if row and row[0]:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            return False
        return True

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute("DELETE FROM kasal_runners WHERE runner_id = %s", (self.runner_id,))
            finally:
                self._conn.close()
                self._conn = None
