"""Read model of executions: one row per execution with its status and history.

``rm_executions`` answers the executions list and status, the history
endpoints (timeline, config snapshot, inputs, task outputs, usage), and the
runner's queue (PENDING rows ordered by the log position of their request).
Only ``ExecutionsProjection`` writes it; the views below own the SQL that
reads it. Large texts stay in the ``content`` table and are joined in on read.

What the user wrote (``inputs``, and the ``config`` snapshot whose tasks run in
the order written) is ``json``, which keeps object keys in order; ``jsonb``
would sort them by length. Columns the projection appends to with ``||``
(``timeline``, ``task_outputs``) stay ``jsonb``: their order is the list's.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from domain.base import topics_of
from domain.execution import TERMINAL, UNFINISHED, Execution, ExecutionStatus, timeline_entry
from domain.execution_progress import empty_usage
from projections.base import Projection
from projections.documents import Page

TABLE = "rm_executions"
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    group_id text NOT NULL,
    id uuid NOT NULL,
    run_name text NOT NULL,
    status text NOT NULL,
    crew_id text,
    crew_version integer,
    model text NOT NULL,
    execution_type text NOT NULL,
    schedule_id text,
    inputs json NOT NULL,
    redacted_inputs jsonb NOT NULL,
    config json,
    config_ref jsonb,
    origin jsonb,
    timeline jsonb NOT NULL,
    result_ref jsonb,
    error text,
    task_outputs jsonb NOT NULL DEFAULT '[]',
    usage jsonb NOT NULL,
    cancel_requested jsonb,
    claimed_by text,
    lease_until double precision NOT NULL DEFAULT 0,
    log_seq integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    version integer NOT NULL,
    requested_position bigint NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (group_id, id)
);
CREATE INDEX IF NOT EXISTS {TABLE}_newest ON {TABLE} (group_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS {TABLE}_repeats ON {TABLE} (group_id, (coalesce(origin->>'replay_of',
    origin->>'rerun_of'))) WHERE origin IS NOT NULL;
CREATE INDEX IF NOT EXISTS {TABLE}_queue ON {TABLE} (requested_position) WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS {TABLE}_unfinished ON {TABLE} (requested_position)
    WHERE status IN ('PENDING', 'PREPARING', 'RUNNING');
"""


def execution_topics() -> frozenset[str]:
    return topics_of(Execution)


class ExecutionsProjection(Projection):
    name = TABLE
    # 2: ``inputs`` and ``config`` became ``json``; rows of version 1 lost their key
    # order in ``jsonb``, so a database still holding them is rebuilt from the log.
    # 3: ``origin`` (what a replay or rerun repeats).
    version = 3
    tables = (TABLE,)
    ddl = DDL

    def topics(self) -> frozenset[str]:
        return execution_topics()

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        if isinstance(event, Execution.Requested):
            row = {**requested_row(event), "requested_position": position, "position": position}
            cur.execute(
                f"INSERT INTO {TABLE} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})"
                " ON CONFLICT (group_id, id) DO NOTHING",
                [_sql_value(column, value) for column, value in row.items()],
            )
            return
        change = row_change(event)
        clauses = [f"{column} = %s" for column in change.sets] + [f"{column} = {column} || %s"
                                                                  for column in change.appends]
        values = [_sql_value(column, value) for column, value in change.sets.items()]
        values += [Jsonb(items) for items in change.appends.values()]
        cur.execute(
            f"UPDATE {TABLE} SET {', '.join(clauses)}, position = %s WHERE group_id = %s AND id = %s",
            [*values, position, event.group_id, event.originator_id],
        )

    def row_of(self, events: list[Any]) -> dict[str, Any] | None:
        """The row ``apply`` leaves for one execution's events (``position`` columns 0): its past, too."""
        row: dict[str, Any] | None = None
        for event in events:
            row = _folded(row, event)
        return row


JSON_COLUMNS = frozenset({"inputs", "config"})
JSONB_COLUMNS = frozenset({"redacted_inputs", "config_ref", "origin", "timeline", "result_ref", "task_outputs", "usage",
                           "cancel_requested"})
UNSET: dict[str, Any] = {"result_ref": None, "error": None, "task_outputs": [], "cancel_requested": None,
                         "claimed_by": None, "lease_until": 0.0, "log_seq": 0, "started_at": None,
                         "completed_at": None}
"""The columns a request leaves to their defaults (the DDL's)."""


class RowChange(NamedTuple):
    """What one event after the request does to its execution's row: ``sets`` gives columns new
    values, ``appends`` adds items to the end of JSON list columns."""

    sets: dict[str, Any]
    appends: dict[str, list[Any]]


def requested_row(event: Any) -> dict[str, Any]:
    """The row an ``Execution.Requested`` starts, but for its log positions (JSON columns as plain data)."""
    return {
        "group_id": event.group_id, "id": event.originator_id, "run_name": event.run_name, "status": event.status,
        "crew_id": event.crew_id, "crew_version": event.crew_version, "model": event.model,
        "execution_type": event.execution_type, "schedule_id": event.schedule_id, "inputs": event.inputs,
        "redacted_inputs": event.redacted, "config": event.snapshot, "config_ref": event.snapshot_ref,
        "origin": getattr(event, "origin", None), "timeline": [timeline_entry(event)], "usage": empty_usage(),
        "created_at": event.timestamp,
        "updated_at": event.timestamp, "updated_by": event.actor, "version": event.originator_version,
    }


def row_change(event: Any) -> RowChange:
    """Each execution event's effect on its row, the one description the SQL fold and ``row_of`` apply."""
    sets: dict[str, Any] = {}
    appends: dict[str, list[Any]] = {}
    if hasattr(event, "status"):
        sets["status"] = event.status
        appends["timeline"] = [timeline_entry(event)]
        if isinstance(event, Execution.Started):
            sets["started_at"] = event.timestamp
        if ExecutionStatus(event.status) in TERMINAL:
            sets["completed_at"] = event.timestamp
        if isinstance(event, Execution.Completed):
            sets["result_ref"] = event.result
        if isinstance(event, Execution.Failed):
            sets["error"] = event.error
    elif isinstance(event, Execution.Claimed):
        sets.update(claimed_by=event.runner_id, lease_until=event.lease_until)
    elif isinstance(event, Execution.ProgressRecorded):
        sets.update(usage=event.usage, log_seq=event.log_seq)
        if event.task_outputs:
            appends["task_outputs"] = list(event.task_outputs)
    elif isinstance(event, Execution.CancelRequested):
        sets["cancel_requested"] = {"at": event.timestamp.isoformat(), "actor": event.actor, "reason": event.reason}
    elif isinstance(event, Execution.Renamed):
        sets["run_name"] = event.run_name
    sets.update(version=event.originator_version, updated_at=event.timestamp, updated_by=event.actor)
    return RowChange(sets, appends)


def _sql_value(column: str, value: Any) -> Any:
    """A column's value as a query parameter: JSON columns wrapped for their type, SQL NULL for None."""
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return Json(value)
    return Jsonb(value) if column in JSONB_COLUMNS else value


def _row_value(column: str, value: Any) -> Any:
    """A column's value as it reads back from the table."""
    return _json(value) if column in JSON_COLUMNS | JSONB_COLUMNS else value


def _json(value: Any) -> Any:
    """A value as it reads back from a JSON column."""
    return None if value is None else msgspec.json.decode(msgspec.json.encode(value, enc_hook=str))


def _folded(row: dict[str, Any] | None, event: Any) -> dict[str, Any] | None:
    """One event applied to an execution's row, exactly as ``ExecutionsProjection.apply`` does in SQL."""
    if isinstance(event, Execution.Requested):
        started = {**requested_row(event), **UNSET, "requested_position": 0, "position": 0}
        return {column: _row_value(column, value) for column, value in started.items()}
    if row is None:
        return None
    change = row_change(event)
    row = {**row, **{column: _row_value(column, value) for column, value in change.sets.items()}}
    for column, items in change.appends.items():
        row[column] = [*row[column], *_json(items)]
    return row


_WITH_RESULT = (
    f"SELECT e.*, convert_from(r.bytes, 'UTF8') AS result_text, convert_from(s.bytes, 'UTF8') AS config_text"
    f" FROM {TABLE} e"
    " LEFT JOIN content r ON r.group_id = e.group_id AND r.sha256 = e.result_ref->>'sha256'"
    " LEFT JOIN content s ON s.group_id = e.group_id AND s.sha256 = e.config_ref->>'sha256'"
)


class ExecutionView:
    """Queries over ``rm_executions``, always within one group."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def get(self, group_id: str, execution_id: UUID) -> dict[str, Any] | None:
        """The row, with ``result_text`` and ``config_text`` (whole texts kept by reference)."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"{_WITH_RESULT} WHERE e.group_id = %s AND e.id = %s", (group_id, execution_id))
            row = await cur.fetchone()
        return _with_result_text(row) if row else None

    async def repeats(self, group_id: str, execution_id: UUID) -> list[dict[str, Any]]:
        """The replays and reruns of one execution, oldest first: id, status, origin, created_at, actor."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT id, status, origin, created_at, timeline->0->>'actor' AS requested_by FROM {TABLE}"
                " WHERE group_id = %s AND origin IS NOT NULL"
                " AND coalesce(origin->>'replay_of', origin->>'rerun_of') = %s ORDER BY created_at, id",
                (group_id, str(execution_id)),
            )
            return list(await cur.fetchall())

    async def state(self, group_id: str, execution_id: UUID) -> tuple[str, int, int] | None:
        """(status, last log seq, version), cheaply, for live streams."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                f"SELECT status, log_seq, version FROM {TABLE} WHERE group_id = %s AND id = %s",
                (group_id, execution_id),
            )
            row = await cur.fetchone()
        return (row[0], row[1], row[2]) if row else None

    async def list(
        self, group_id: str, *, limit: int, offset: int, status: str | None = None, crew_id: str | None = None,
    ) -> Page:
        where = ["e.group_id = %s"]
        params: list[Any] = [group_id]
        if status is not None:
            where.append("e.status = %s")
            params.append(status)
        if crew_id is not None:
            where.append("e.crew_id = %s")
            params.append(crew_id)
        condition = " AND ".join(where)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"{_WITH_RESULT} WHERE {condition} ORDER BY e.created_at DESC, e.id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = await cur.fetchall()
            await cur.execute(f"SELECT count(*) AS total FROM {TABLE} e WHERE {condition}", params)
            total = (await cur.fetchone() or {"total": 0})["total"]
        items = [_with_result_text(r) for r in rows]
        return Page(items=items, total=total, limit=limit, offset=offset, has_more=offset + len(items) < total)


def with_result_text(row: dict[str, Any], text: str | None) -> dict[str, Any]:
    """A folded row as ``ExecutionView.get`` returns it, given the text its ``result_ref`` names (if kept apart)."""
    return _with_result_text({**row, "result_text": text, "config_text": None})


def _with_result_text(row: dict[str, Any]) -> dict[str, Any]:
    """``result_text`` whole however it was kept; ``config_text`` for a snapshot kept by reference."""
    row = dict(row)
    ref = row.get("result_ref")
    if row.get("result_text") is None and ref:
        row["result_text"] = ref.get("preview") if ref.get("sha256") is None else None
    return row


class ExecutionIndexQueries:
    """The runner's queue and the recovery list (sync: commands run in worker threads)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def pending(self, limit: int, now: float) -> list[UUID]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT id FROM {TABLE} WHERE status = 'PENDING' AND (claimed_by IS NULL OR lease_until < %s)"
                " ORDER BY requested_position LIMIT %s",
                (now, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def unfinished(self) -> list[UUID]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT id FROM {TABLE} WHERE status = ANY(%s) ORDER BY requested_position",
                ([s.value for s in UNFINISHED],),
            ).fetchall()
        return [row[0] for row in rows]
