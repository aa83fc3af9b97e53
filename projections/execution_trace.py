"""Read model of execution traces: a tree of timed spans per execution.

The root span (``execution``) lasts from the request to the end; each status
the execution passes through is a ``state`` span under it; the crew, its
tasks, agents, LLM calls and tool uses come from progress events with the
ids and parents the aggregate gave them. When an execution ends, spans still
open end with it, so a cancelled run never shows spans running forever.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.execution import TERMINAL, Execution, ExecutionStatus
from domain.execution_progress import ROOT_SPAN
from projections.base import Projection
from projections.execution_logs import from_unix
from projections.executions import execution_topics

TABLE = "rm_execution_spans"
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    group_id text NOT NULL,
    execution_id uuid NOT NULL,
    span_id text NOT NULL,
    parent_span_id text,
    type text NOT NULL,
    name text NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at timestamptz,
    status text NOT NULL,
    attributes jsonb NOT NULL,
    position bigint NOT NULL,
    idx integer NOT NULL,
    PRIMARY KEY (group_id, execution_id, span_id)
);
"""
_INSERT = (
    f"INSERT INTO {TABLE} (group_id, execution_id, span_id, parent_span_id, type, name, started_at, ended_at,"
    " status, attributes, position, idx) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING"
)


class ExecutionTraceProjection(Projection):
    name = TABLE
    tables = (TABLE,)
    ddl = DDL

    def topics(self) -> frozenset[str]:
        return execution_topics()

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        key = (event.group_id, event.originator_id)
        if isinstance(event, Execution.Requested):
            cur.execute(_INSERT, (*key, ROOT_SPAN, None, "execution", event.run_name, event.timestamp, None,
                                  "running", Jsonb({"crew_id": event.crew_id, "model": event.model}), position, 0))
            self._state(cur, event, position, 1)
        elif isinstance(event, Execution.ProgressRecorded):
            for idx, span in enumerate(event.spans):
                self._span(cur, key, span, position, idx)
        elif isinstance(event, Execution.Renamed):
            cur.execute(f"UPDATE {TABLE} SET name = %s WHERE group_id = %s AND execution_id = %s AND span_id = %s",
                        (event.run_name, *key, ROOT_SPAN))
        elif hasattr(event, "status"):
            cur.execute(
                f"UPDATE {TABLE} SET ended_at = %s, status = 'completed' WHERE group_id = %s AND execution_id = %s"
                " AND type = 'state' AND ended_at IS NULL",
                (event.timestamp, *key),
            )
            self._state(cur, event, position, 0)
            if ExecutionStatus(event.status) in TERMINAL:
                cur.execute(
                    f"UPDATE {TABLE} SET ended_at = %s, status = %s WHERE group_id = %s AND execution_id = %s"
                    " AND ended_at IS NULL",
                    (event.timestamp, event.status.lower(), *key),
                )

    def _state(self, cur: Cursor[Any], event: Any, position: int, idx: int) -> None:
        terminal = ExecutionStatus(event.status) in TERMINAL
        cur.execute(_INSERT, (
            event.group_id, event.originator_id, f"state-{event.originator_version}", ROOT_SPAN, "state",
            event.status, event.timestamp, event.timestamp if terminal else None,
            event.status.lower() if terminal else "running",
            Jsonb({"actor": event.actor, "message": event.message}), position, idx,
        ))

    def _span(self, cur: Cursor[Any], key: tuple[str, UUID], span: dict[str, Any], position: int, idx: int) -> None:
        op = span["op"]
        if op == "close":
            cur.execute(
                f"UPDATE {TABLE} SET ended_at = %s, status = %s, attributes = attributes || %s"
                " WHERE group_id = %s AND execution_id = %s AND span_id = %s",
                (from_unix(span["at"]), span["status"], Jsonb(span["attributes"]), *key, span["span_id"]),
            )
            return
        started = from_unix(span["started_at"] if op == "point" else span["at"])
        ended = from_unix(span["at"]) if op == "point" else None
        cur.execute(_INSERT, (*key, span["span_id"], span["parent_span_id"], span["type"], span["name"], started,
                              ended, span["status"], Jsonb(span["attributes"]), position, idx))


class ExecutionTraceView:
    """Spans of one execution of one group, in time order."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def spans(self, group_id: str, execution_id: UUID) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT span_id, parent_span_id, type, name, started_at, ended_at, status, attributes,"
                f" (extract(epoch FROM ended_at - started_at) * 1000)::float8 AS duration_ms FROM {TABLE}"
                " WHERE group_id = %s AND execution_id = %s ORDER BY started_at, position, idx",
                (group_id, execution_id),
            )
            return await cur.fetchall()


class ContentView:
    """Whole texts behind the references in events (prompts, responses, outputs)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def text(self, group_id: str, sha256: str) -> str | None:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT convert_from(bytes, 'UTF8') FROM content WHERE group_id = %s AND sha256 = %s",
                              (group_id, sha256))
            row = await cur.fetchone()
        return row[0] if row else None
