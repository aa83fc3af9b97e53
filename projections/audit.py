"""Read model of the log itself, for audit queries: one row per event a user's change caused.

The event table (``kasal_events``) is keyed by aggregate and by position
only, so "who changed what in my group, of which kind, in which request,
last Tuesday" would read every group's events. ``rm_audit_log`` keeps each
event's envelope (group, kind, topic, aggregate, version, time, actor,
request id) with one index per filter, each led by the group and ending in
the position: a page of any filter is a range scan of one index, in log
order, never a scan of the log.

The event's own fields are not copied here. A page's rows are read back
from the event table by position (its unique index) and decoded when a
query is answered, then stripped of secrets (``record_data``). So the index
stays small (a chatty execution's progress events run to 16 KB each), a
rebuild writes only envelopes, and a stricter redaction rule applies to
every past event at once, without a rebuild.

Every topic is folded except bookkeeping that is not a user's change
(``BOOKKEEPING``), so an aggregate added later is covered without a change
here. Positions are committed in order (the store locks the table to
append), so a cursor over positions pages through the log exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent
from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from application.store import APPLICATION_NAME
from domain.api_key import SECRET_FIELD
from domain.redaction import REDACTED, SECRET_NAME
from domain.schedule import SEALED_INPUTS
from projections.base import Projection, insert_rows

TABLE = "rm_audit_log"
EVENTS_TABLE = f"{APPLICATION_NAME.lower()}_events"
"""The event store's own table (eventsourcing names it after the application)."""
MAX_POSITION = 2**63 - 1

BOOKKEEPING = ("name_index.", "execution_quota.", "idempotency_key.")
"""Topic prefixes that are not a user's change, only how one is enforced: unique-name
reservations, places in the single-job quota, and idempotency records. The
change they accompany is in the log (and here) under its own topic."""

KINDS = {
    "agent": "agent", "task": "task", "crew": "crew", "tool": "tool", "tool_setting": "tool",
    "model_config": "model", "model_setting": "model", "api_key": "api_key", "template": "template",
    "execution": "execution", "schedule": "schedule", "access_token": "token",
}
"""Topic prefix (the aggregate's) → the kind a client filters by; an unknown prefix is its own kind."""

SEALED = frozenset({SECRET_FIELD, SEALED_INPUTS, "token_hash"})
"""Fields holding a ciphertext or a hash of a secret, hidden at any depth whatever the kind."""
SEALED_BY_KIND = {"api_key": frozenset({"hint"})}
"""Fields hidden for one kind only: an API key's hint is the tail of the key itself."""
NAMES_NOT_SECRETS = {"model": frozenset({"key", "api_key_name"})}
"""A kind's own fields that are named like secrets but name something (a model's key is its
id; ``api_key_name`` names the stored key to use): kept at the top of ``fields``/``changes``."""

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    position bigint PRIMARY KEY,
    group_id text NOT NULL,
    kind text NOT NULL,
    type text COLLATE "C" NOT NULL,
    aggregate_id uuid NOT NULL,
    version bigint NOT NULL,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    correlation_id text NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_group ON {TABLE} (group_id, position);
CREATE INDEX IF NOT EXISTS {TABLE}_aggregate ON {TABLE} (group_id, aggregate_id, position);
CREATE INDEX IF NOT EXISTS {TABLE}_kind ON {TABLE} (group_id, kind, position);
CREATE INDEX IF NOT EXISTS {TABLE}_type ON {TABLE} (group_id, type, position);
CREATE INDEX IF NOT EXISTS {TABLE}_actor ON {TABLE} (group_id, actor, position);
CREATE INDEX IF NOT EXISTS {TABLE}_correlation ON {TABLE} (group_id, correlation_id, position);
CREATE INDEX IF NOT EXISTS {TABLE}_at ON {TABLE} (group_id, at, position);
"""
COLUMNS = ("position", "group_id", "kind", "type", "aggregate_id", "version", "at", "actor", "correlation_id")
ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "group_id", "actor", "correlation_id",
                      "originator_topic"})
"""What every event carries (``originator_topic``: every creation, naming the aggregate's class),
shown as the record's own fields rather than in ``data``."""


def audited(topic: str) -> bool:
    """Whether events of ``topic`` are in the audit log (everything but ``BOOKKEEPING``)."""
    return not topic.startswith(BOOKKEEPING)


def kind_of(topic: str) -> str:
    prefix = topic.split(".", 1)[0]
    return KINDS.get(prefix, prefix)


class AuditProjection(Projection):
    """One row per audited event, written with COPY a page at a time."""

    name = TABLE
    tables = (TABLE,)
    ddl = DDL

    def folds(self) -> Callable[[str], bool]:
        return audited

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        self.apply_page(cur, [(event, position)])

    def apply_page(self, cur: Cursor[Any], items: list[tuple[Any, int]]) -> None:
        rows = []
        for event, position in items:
            topic = type(event).TOPIC
            rows.append((position, event.group_id, kind_of(topic), topic, event.originator_id,
                         event.originator_version, event.timestamp, event.actor, event.correlation_id))
        insert_rows(cur, TABLE, COLUMNS, rows)


# -- what a record shows --------------------------------------------------------


def record_data(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """An event's own fields (JSON builtins) as a record shows them, with every secret hidden.

    Hidden (``[REDACTED]``; an absent value stays ``null`` or empty, so a record
    still says whether there was one): ciphertexts and hashes (``SEALED``), a
    kind's own secret fields (``SEALED_BY_KIND``), and at any depth the text or
    contents under a name ``domain.redaction.SECRET_NAME`` finds (``api_key``,
    ``password``, …). Numbers and flags under such names stay (token counts,
    ``max_output_tokens``), as do the names in ``NAMES_NOT_SECRETS``.
    """
    sealed = SEALED | SEALED_BY_KIND.get(kind, frozenset())
    plain_names = NAMES_NOT_SECRETS.get(kind, frozenset())
    shown: dict[str, Any] = {}
    # (source, target, names kept as is): explicit stacks, as every walk over user input here.
    pending: list[tuple[Any, Any, frozenset[str]]] = [(fields, shown, plain_names)]
    while pending:
        source, target, kept = pending.pop()
        entries = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in entries:
            name = str(key)
            document = isinstance(source, dict) and source is fields and name in ("fields", "changes")
            if isinstance(source, dict) and _hidden(name, value, sealed, kept):
                item: Any = REDACTED
            elif isinstance(value, (dict, list)):
                item = {} if isinstance(value, dict) else []
                pending.append((value, item, plain_names if document else frozenset()))
            else:
                item = value
            if isinstance(target, dict):
                target[name] = item
            else:
                target.append(item)
    return shown


def _hidden(name: str, value: Any, sealed: frozenset[str], kept: frozenset[str]) -> bool:
    if value in (None, "", [], {}) or isinstance(value, (bool, int, float)):
        return False
    return name in sealed or (name not in kept and SECRET_NAME.search(name) is not None)


def event_fields(event: Any) -> dict[str, Any]:
    """An event's own fields, without the envelope every event carries, as JSON builtins."""
    own = {k: v for k, v in vars(event).items() if k not in ENVELOPE}
    fields: dict[str, Any] = msgspec.to_builtins(own, enc_hook=str, str_keys=True)
    return fields


# -- queries --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records: one group's (``None``: every group, for the export), after a position."""

    group_id: str | None
    after: int = 0
    aggregate_id: UUID | None = None
    kind: str | None = None
    type: str | None = None
    actor: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def after_position(self, position: int) -> AuditQuery:
        return AuditQuery(self.group_id, position, self.aggregate_id, self.kind, self.type, self.actor,
                          self.correlation_id, self.since, self.until)

    @property
    def type_prefix(self) -> str | None:
        """``agent.`` for a type ending in a dot (a family of topics), else None (an exact topic)."""
        return self.type if self.type is not None and self.type.endswith(".") else None


def _conditions(query: AuditQuery, alias: str) -> tuple[list[str], list[Any]]:
    """The filters other than the group and a type prefix, as SQL over ``alias``."""
    where: list[str] = [f"{alias}.position > %s"]
    params: list[Any] = [query.after]
    for column, value in (("aggregate_id", query.aggregate_id), ("kind", query.kind),
                          ("actor", query.actor), ("correlation_id", query.correlation_id)):
        if value is not None:
            where.append(f"{alias}.{column} = %s")
            params.append(value)
    if query.type is not None and query.type_prefix is None:
        where.append(f"{alias}.type = %s")
        params.append(query.type)
    if query.since is not None:
        where.append(f"{alias}.at >= %s")
        params.append(query.since)
    if query.until is not None:
        where.append(f"{alias}.at < %s")
        params.append(query.until)
    return where, params


def _prefix_bounds(prefix: str) -> tuple[str, str]:
    """``[low, high)`` in byte order holding exactly the types that start with ``prefix``
    (the column is ``COLLATE "C"``, and ``prefix`` ends in a dot, whose successor is ``/``)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


TYPES_UNDER = (
    f"WITH RECURSIVE types(type) AS ("
    f" SELECT min(type) FROM {TABLE} WHERE group_id = %(group)s AND type >= %(low)s AND type < %(high)s"
    f" UNION ALL SELECT (SELECT min(n.type) FROM {TABLE} n WHERE n.group_id = %(group)s AND n.type > t.type"
    f" AND n.type < %(high)s) FROM types t WHERE t.type IS NOT NULL)"
    f" SELECT type FROM types WHERE type IS NOT NULL"
)
"""The distinct types a group has under a prefix: a skip scan of the type index, one probe per type."""


def select_envelopes(query: AuditQuery, limit: int, types: list[str] | None = None) -> tuple[str, list[Any]]:
    """SQL for up to ``limit`` rows matching ``query``, in log order.

    With ``types`` (the group's types under ``query``'s prefix, ``TYPES_UNDER``)
    it takes at most ``limit`` rows of each type from the type index and merges
    them, so a prefix reads a few index pages per type however long the group's
    history is. Without them a prefix is a range of the ``COLLATE "C"`` column.
    """
    columns = ", ".join(f"a.{c}" for c in COLUMNS)
    where, params = _conditions(query, "a")
    if query.group_id is not None:
        where.insert(0, "a.group_id = %s")
        params.insert(0, query.group_id)
    prefix = query.type_prefix
    if prefix is not None and types is not None:
        one = (f"(SELECT {columns} FROM {TABLE} a WHERE {' AND '.join(where)} AND a.type = %s"
               " ORDER BY a.position LIMIT %s)")
        union = " UNION ALL ".join([one] * len(types))
        return f"SELECT * FROM ({union}) a ORDER BY a.position LIMIT %s", [
            *[value for type_ in types for value in (*params, type_, limit)], limit]
    if prefix is not None:
        low, high = _prefix_bounds(prefix)
        where += ["a.type >= %s", "a.type < %s"]
        params += [low, high]
    return f"SELECT {columns} FROM {TABLE} a WHERE {' AND '.join(where)} ORDER BY a.position LIMIT %s", [
        *params, limit]


class AuditView:
    """Audit records (``record``'s shape) for a query, read from the index and the event table."""

    def __init__(self, pool: AsyncConnectionPool, mapper: Mapper[UUID]) -> None:
        self.pool = pool
        self.mapper = mapper

    async def page(self, query: AuditQuery, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` records after ``query.after`` in log order, and whether more match."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            types = None
            if query.type_prefix is not None and query.group_id is not None:
                low, high = _prefix_bounds(query.type_prefix)
                await cur.execute(TYPES_UNDER, {"group": query.group_id, "low": low, "high": high})
                types = [row["type"] for row in await cur.fetchall()]
                if not types:
                    return [], False
            sql, params = select_envelopes(query, limit + 1, types)
            await cur.execute(sql, params)
            rows = await cur.fetchall()
            rows, more = rows[:limit], len(rows) > limit
            stored: dict[int, StoredEvent] = {}
            if rows:
                await cur.execute(
                    f"SELECT notification_id, originator_id, originator_version, topic, state"
                    f" FROM {EVENTS_TABLE} WHERE notification_id = ANY(%s)", ([r["position"] for r in rows],))
                stored = {r["notification_id"]: StoredEvent(r["originator_id"], r["originator_version"],
                                                            r["topic"], bytes(r["state"]))
                          for r in await cur.fetchall()}
        return [self._record(row, stored[row["position"]]) for row in rows], more

    def _record(self, row: dict[str, Any], stored: StoredEvent) -> dict[str, Any]:
        data = record_data(row["kind"], event_fields(self.mapper.to_domain_event(stored)))
        return {
            "position": row["position"], "type": row["type"], "kind": row["kind"],
            "aggregate_id": str(row["aggregate_id"]), "version": row["version"], "at": row["at"],
            "actor": row["actor"], "group_id": row["group_id"], "correlation_id": row["correlation_id"],
            "data": data,
        }
