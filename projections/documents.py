"""Read models of documents (agents, tasks, crews, …): one row per live document.

Rows keep the document's fields as JSON plus the columns every list needs.
The table is written only here; ``DocumentView`` owns the SQL that reads it.

``doc`` is ``json``, not ``jsonb``: ``jsonb`` stores object keys sorted by
length, and the order of a mapping is meaning here (a crew's tasks run in the
order they are written). ``json`` keeps the text as written, is returned
without conversion, and still answers ``->>``; a partial change is merged in
Python (``{**doc, **changes}``), because ``||`` exists only for ``jsonb``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

from domain.base import Document, topics_of
from projections.base import COPY_FROM_ROWS, LogRows, Projection, insert_rows


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value)


_ENCODER = msgspec.json.Encoder(enc_hook=str)
# 2: ``doc`` became ``json`` (rows of version 1 lost their key order in ``jsonb``,
# so a database still holding them is rebuilt from the log at start-up).
SCHEMA_VERSION = 2
INSERT_COLUMNS = ("group_id", "id", "name", "doc", "version", "created_at", "updated_at", "created_by", "updated_by",
                  "position")
_INSERT_COLUMNS = f"({', '.join(INSERT_COLUMNS)})"


class RecentRows:
    """The rows the projector of this process committed last, so a write is answered without reading its row back.

    Rows are staged while a page is applied and kept only once its transaction
    has committed (``publish``); a page that fails leaves nothing behind. Only
    live pages stage rows (a rebuild's thousands would just push each other
    out), and the newest ``size`` rows are kept.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._rows: OrderedDict[UUID, dict[str, Any]] = OrderedDict()
        self._staged: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def stage(self, row: dict[str, Any]) -> None:
        self._staged.append(row)

    def publish(self) -> None:
        staged, self._staged = self._staged, []
        with self._lock:
            for row in staged:
                self._rows[row["id"]] = row
                self._rows.move_to_end(row["id"])
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def discard(self) -> None:
        self._staged = []

    def get(self, document_id: UUID, version: int) -> dict[str, Any] | None:
        """The committed row of ``document_id`` at exactly ``version``, if this process projected it."""
        with self._lock:
            row = self._rows.get(document_id)
        return row if row is not None and row["version"] == version else None


class DocumentProjection(Projection):
    """Folds Created/Updated/Replaced/Deleted (and any event carrying ``changes``)."""

    aggregate: ClassVar[type[Document]]

    def __init__(self) -> None:
        table = self.tables[0]
        self.table = table
        self.recent = RecentRows()

    def page_started(self) -> None:
        self.recent.discard()

    def page_committed(self) -> None:
        self.recent.publish()

    @classmethod
    def for_aggregate(
        cls, aggregate: type[Document], table: str, *, version: int = SCHEMA_VERSION
    ) -> DocumentProjection:
        attrs = {
            "aggregate": aggregate,
            "name": table,
            "tables": (table,),
            "version": version,
            "ddl": document_table_ddl(table),
        }
        projection: DocumentProjection = type(f"{aggregate.__name__}Projection", (cls,), attrs)()
        return projection

    def topics(self) -> frozenset[str]:
        return topics_of(self.aggregate)

    def prepare_event(self, event: Any) -> Any:
        """The event as this read model should see it: its ``fields``/``changes`` as ``shown_fields`` has them."""
        for attr in ("fields", "changes"):
            data = getattr(event, attr, None)
            if isinstance(data, dict):
                shown = self.shown_fields(data)
                if shown is not data:
                    event = dataclasses.replace(event, **{attr: shown})
        return event

    def shown_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """Hook: the fields a row may hold (e.g. with secrets removed); ``data`` itself when unchanged."""
        return data

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        self.apply_page(cur, [(event, position)])

    def row_of(self, events: list[Any]) -> dict[str, Any] | None:
        return document_row((self.prepare_event(event) for event in events), self.aggregate)

    def rows_of(self, events: Iterable[Any]) -> Iterator[dict[str, Any] | None]:
        """``row_of`` of each prefix of ``events``, in one pass (a document's version history)."""
        return document_rows((self.prepare_event(event) for event in events), self.aggregate)

    def apply_page(self, cur: Cursor[Any], items: list[tuple[Any, int]]) -> None:
        """Fold the page per document in memory, then write each touched row once.

        Applying events one statement at a time caps rebuilds near a thousand
        events a second; folding first gives the same rows with a handful of
        batched statements per page.
        """
        folded: dict[tuple[str, Any], _Fold] = {}
        for raw, position in items:
            event = self.prepare_event(raw)
            key = (event.group_id, event.originator_id)
            fold = folded.setdefault(key, _Fold())
            fold.add(event, position, self.aggregate)
        inserts, upserts, replaces, touches, deletes = [], [], [], [], []
        patched: list[tuple[str, Any, _Fold]] = []
        for (group_id, doc_id), fold in folded.items():
            if fold.deleted:
                if not fold.created:
                    deletes.append((group_id, doc_id))
                continue
            if fold.created:
                inserts.append((group_id, doc_id, fold.doc.get("name"), _json(fold.doc), fold.version,
                                fold.created_at, fold.updated_at, fold.created_by, fold.updated_by, fold.position))
            elif fold.restored:
                upserts.append((group_id, doc_id, fold.doc.get("name"), _json(fold.doc), fold.version,
                                fold.created_at, fold.updated_at, fold.created_by, fold.updated_by, fold.position))
            elif fold.replaced:
                replaces.append(_replacement(fold.doc, fold, group_id, doc_id))
            elif fold.patch:
                patched.append((group_id, doc_id, fold))
            else:
                touches.append((fold.version, fold.updated_at, fold.updated_by, fold.position, group_id, doc_id))
        if patched:
            current = self._docs(cur, [(group_id, doc_id) for group_id, doc_id, _ in patched])
            for group_id, doc_id, fold in patched:
                doc = current.get((group_id, doc_id))
                if doc is not None:
                    replaces.append(_replacement({**doc, **fold.patch}, fold, group_id, doc_id))
        live = len(items) < COPY_FROM_ROWS
        if live:
            for row in (*inserts, *upserts):
                self._stage(row[3].obj, row[0], row[1], row[4], row[5], row[6], row[7], row[8])
        table = self.table
        if inserts:
            self._insert(cur, inserts)
        if replaces:
            cur.executemany(
                f"UPDATE {table} SET doc = %s, name = %s, version = %s, updated_at = %s, updated_by = %s,"
                " position = %s WHERE group_id = %s AND id = %s RETURNING created_at, created_by", replaces,
                returning=live)
            for replacement in replaces if live else ():
                created = cur.fetchone()
                if created is not None:  # None: the row was gone (never expected)
                    new, _, version, updated_at, updated_by, _, group, document = replacement
                    self._stage(new.obj, group, document, version, created[0], updated_at, created[1], updated_by)
                cur.nextset()
        if touches:
            cur.executemany(
                f"UPDATE {table} SET version = %s, updated_at = %s, updated_by = %s, position = %s"
                " WHERE group_id = %s AND id = %s", touches)
        if deletes:
            cur.executemany(f"DELETE FROM {table} WHERE group_id = %s AND id = %s", deletes)
        if upserts:
            # A restore brings a deleted document's row back, or rewrites a live one.
            cur.executemany(
                f"INSERT INTO {table} {_INSERT_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (group_id, id) DO UPDATE SET name = excluded.name, doc = excluded.doc,"
                " version = excluded.version, updated_at = excluded.updated_at,"
                " updated_by = excluded.updated_by, position = excluded.position", upserts)

    def _stage(self, doc: dict[str, Any], group_id: str, doc_id: UUID, version: int, created_at: Any,
               updated_at: Any, created_by: str, updated_by: str) -> None:
        """Keep the row as a query returns it (``doc`` through the JSON the column stores), for ``RecentRows``."""
        self.recent.stage({
            "group_id": group_id, "id": doc_id, "name": doc.get("name"), "doc": msgspec.json.decode(_dumps(doc)),
            "version": version, "created_at": created_at, "updated_at": updated_at, "created_by": created_by,
            "updated_by": updated_by,
        })

    def _docs(self, cur: Cursor[Any], keys: list[tuple[str, Any]]) -> dict[tuple[str, Any], dict[str, Any]]:
        """The stored documents of ``keys``, read in one statement."""
        cur.execute(
            f"SELECT group_id, id, doc FROM {self.table} WHERE (group_id, id) IN"
            " (SELECT * FROM unnest(%s::text[], %s::uuid[]))",
            ([group_id for group_id, _ in keys], [doc_id for _, doc_id in keys]),
        )
        return {(group_id, doc_id): doc for group_id, doc_id, doc in cur.fetchall()}

    def _insert(self, cur: Cursor[Any], rows: list[tuple[Any, ...]]) -> None:
        """New rows in; one that exists already (never expected) is skipped."""
        insert_rows(cur, self.table, INSERT_COLUMNS, rows, skip_existing=True)


def document_row(events: Iterable[Any], aggregate: type[Document]) -> dict[str, Any] | None:
    """The row a document's events fold to, oldest first, as the table returns it (but ``position``).

    The same fold as ``apply_page``; ``doc`` goes through the JSON the column
    stores, so ids and timestamps in it read back as the strings a query gives.
    """
    fold, first = _Fold(), None
    for event in events:
        first = event if first is None else first
        fold.add(event, 0, aggregate)
    return _folded_row(fold, first)


def document_rows(events: Iterable[Any], aggregate: type[Document]) -> Iterator[dict[str, Any] | None]:
    """The row after each event in turn: ``document_row`` of every prefix, in one pass."""
    fold, first = _Fold(), None
    for event in events:
        first = event if first is None else first
        fold.add(event, 0, aggregate)
        yield _folded_row(fold, first)


def _folded_row(fold: _Fold, first: Any) -> dict[str, Any] | None:
    if first is None or not fold.created or fold.deleted:
        return None
    doc = msgspec.json.decode(_dumps(fold.doc))
    return {"group_id": first.group_id, "id": first.originator_id, "name": doc.get("name"), "doc": doc,
            "version": fold.version, "created_at": fold.created_at, "updated_at": fold.updated_at,
            "created_by": fold.created_by, "updated_by": fold.updated_by}


def _json(value: dict[str, Any]) -> Json:
    return Json(value, dumps=_dumps)


def _replacement(doc: dict[str, Any], fold: _Fold, group_id: str, doc_id: Any) -> tuple[Any, ...]:
    """Parameters of the statement that rewrites a whole row."""
    return (_json(doc), doc.get("name"), fold.version, fold.updated_at, fold.updated_by, fold.position,
            group_id, doc_id)


class _Fold:
    """What a page of events does to one document row."""

    __slots__ = ("created", "replaced", "restored", "deleted", "doc", "patch", "version", "created_at", "updated_at",
                 "created_by", "updated_by", "position")

    def __init__(self) -> None:
        self.created = self.replaced = self.restored = self.deleted = False
        self.doc: dict[str, Any] = {}
        self.patch: dict[str, Any] = {}

    def add(self, event: Any, position: int, aggregate: type[Document]) -> None:
        self.version, self.updated_at, self.updated_by, self.position = (
            event.originator_version, event.timestamp, event.actor, position)
        if isinstance(event, aggregate.Created):
            self.created, self.deleted = True, False
            self.doc = dict(event.fields)
            self.created_at, self.created_by = event.timestamp, event.actor
        elif isinstance(event, aggregate.Restored):
            self.restored, self.replaced, self.deleted = not self.created, not self.created, False
            self.doc, self.patch = dict(event.fields), {}
            self.created_at, self.created_by = event.created_at, event.created_by
        elif isinstance(event, aggregate.Deleted):
            self.deleted = True
        elif hasattr(event, "changes"):
            if self.created or self.replaced:
                self.doc.update(event.changes)
            else:
                self.patch.update(event.changes)
        elif hasattr(event, "fields"):
            self.replaced = not self.created
            self.doc = dict(event.fields)
            self.patch = {}


def document_table_ddl(table: str) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {table} (
        group_id text NOT NULL,
        id uuid NOT NULL,
        name text,
        doc json NOT NULL,
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

    def __init__(self, pool: AsyncConnectionPool, table: str, recent: RecentRows | None = None) -> None:
        """``recent``: the rows this process's projector of ``table`` committed last (``projected``)."""
        self.pool = pool
        self.table = table
        self.recent = recent

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

    def projected(self, group_id: str, document_id: UUID, version: int) -> dict[str, Any] | None:
        """What ``get`` answers, if this process projected the row at ``version`` lately; else None (ask ``get``)."""
        row = self.recent.get(document_id, version) if self.recent is not None else None
        return self.to_resource(row) if row is not None and self.visible(row, group_id) else None

    def from_log(self, rows: LogRows, group_id: str, document_id: UUID) -> dict[str, Any] | None:
        """What ``get`` will answer once the table has caught up with the log."""
        row = rows(self.table, document_id)
        return self.to_resource(row) if row is not None and self.visible(row, group_id) else None

    def visible(self, row: dict[str, Any], group_id: str) -> bool:
        return bool(row["group_id"] == group_id)

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

    async def list(self, group_id: str, *, limit: int, offset: int) -> Page:
        where = "group_id = %s"
        params: list[Any] = [group_id]
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            # The page walks the (group_id, created_at, id) index and stops at
            # LIMIT; counting separately keeps a window count from sorting the group.
            await cur.execute(
                f"SELECT * FROM {self.table} WHERE {where}"
                " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = await cur.fetchall()
            if offset == 0 and len(rows) < limit:
                total = len(rows)
            else:
                await cur.execute(f"SELECT count(*) AS total FROM {self.table} WHERE {where}", params)
                total = (await cur.fetchone() or {"total": 0})["total"]
        items = [self.to_resource(r) for r in rows]
        return Page(items=items, total=total, limit=limit, offset=offset, has_more=offset + len(items) < total)
