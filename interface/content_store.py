"""PostgreSQL adapter of the content store: ``content(group_id, sha256, bytes)``.

Not a projection: commands write it directly, before the events that refer
to it, so rebuilding read models never drops it. Reads that only need the
text (results, long log lines) join it in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import ConnectionPool

CONTENT_DDL = """
CREATE TABLE IF NOT EXISTS content (
    group_id text NOT NULL,
    sha256 text NOT NULL,
    size integer NOT NULL,
    bytes bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, sha256)
)
"""


class PostgresContentStore:
    """Content-addressed blobs per group; writing a known blob again is a no-op."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def create_table(self) -> None:
        with self.pool.connection() as conn:
            conn.execute(CONTENT_DDL)

    def put_many(self, group_id: str, blobs: Mapping[str, bytes]) -> None:
        if not blobs:
            return
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO content (group_id, sha256, size, bytes) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (group_id, sha256) DO NOTHING",
                [(group_id, sha, len(data), data) for sha, data in blobs.items()],
            )

    def get(self, group_id: str, sha256: str) -> bytes | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT bytes FROM content WHERE group_id = %s AND sha256 = %s", (group_id, sha256)
            ).fetchone()
        return bytes(row[0]) if row else None
