"""What a read model is to the projector.

A projection owns its tables: it creates them, drops them, and folds events
into them. Its ``apply`` runs inside the projector's transaction for a page of
notifications, so a page and the tracking position commit together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID

from psycopg import Cursor
from psycopg.errors import UniqueViolation

LogRows = Callable[[str, UUID], dict[str, Any] | None]
"""``(table, aggregate id)`` → the row that table will hold for the aggregate once the
projector has caught up with every event recorded so far (None: no row)."""


class Projection:
    """Base for read models; subclasses set ``name``, ``tables``, ``ddl`` and ``topics``."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]]
    ddl: ClassVar[str]

    def topics(self) -> frozenset[str]:
        """Stored-event topics this projection folds; others are never decoded for it."""
        raise NotImplementedError

    def folds(self) -> Callable[[str], bool]:
        """The test the projector puts each stored event's topic to: membership in ``topics()``.

        A read model of the whole log (the audit index) overrides it with a rule,
        so topics added later reach it without anyone listing them.
        """
        return self.topics().__contains__

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        raise NotImplementedError

    def apply_page(self, cur: Cursor[Any], items: list[tuple[Any, int]]) -> None:
        """Fold a page of ``(event, position)`` in log order; override to write set-wise."""
        for event, position in items:
            self.apply(cur, event, position)

    def page_started(self) -> None:
        """Hook: a page is about to be applied (what an earlier, failed page left may be dropped)."""

    def page_committed(self) -> None:
        """Hook: the page just applied has committed (what it computed may now be shown)."""

    def row_of(self, events: list[Any]) -> dict[str, Any] | None:
        """The row (of ``tables[0]``) one aggregate's events fold to, oldest first; None if none.

        The fold ``apply`` does, without a database: a write is answered from the
        log with exactly what the table will say, while the table still lags.
        """
        raise NotImplementedError

    def create_tables(self, cur: Cursor[Any], *, secondary_indexes: bool = True) -> None:
        """Run ``ddl``; without ``secondary_indexes``, leave out its plain ``CREATE INDEX``
        statements (a rebuild builds them once the rows are in: see ``create_indexes``)."""
        if secondary_indexes:
            cur.execute(self.ddl)
            return
        for statement in _statements(self.ddl):
            if not _SECONDARY_INDEX.match(statement):
                cur.execute(statement)

    def create_indexes(self, cur: Cursor[Any]) -> None:
        """The plain (not unique) indexes ``ddl`` declares.

        Building an index over rows already loaded is several times cheaper than
        keeping it up to date row by row, so a rebuild loads first and indexes last;
        unique indexes and keys stay, since the fold may rely on them while loading.
        """
        for statement in _statements(self.ddl):
            if _SECONDARY_INDEX.match(statement):
                cur.execute(statement)

    def drop_tables(self, cur: Cursor[Any]) -> None:
        for table in self.tables:
            cur.execute(f"DROP TABLE IF EXISTS {table} CASCADE")


COPY_FROM_ROWS = 64
"""From this many rows a page's inserts go by ``COPY``; fewer go as one pipelined
``INSERT`` each. ``COPY`` streams a rebuild's thousands of rows far faster, but
its start and end cost more round trips than a live page's one or two rows."""


def insert_rows(cur: Cursor[Any], table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]],
                *, skip_existing: bool = False) -> None:
    """Insert ``rows`` into ``table``; with ``skip_existing``, a row whose key is there already is left alone.

    Rows are never expected to exist: the skip is for a page applied again after
    its commit was lost, and on the ``COPY`` path costs a savepoint and a retry.
    """
    if not rows:
        return
    if len(rows) < COPY_FROM_ROWS:
        _insert_each(cur, table, columns, rows, skip_existing=skip_existing)
        return
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    if not skip_existing:
        with cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    try:
        with cur.connection.transaction(), cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except UniqueViolation:
        _insert_each(cur, table, columns, rows, skip_existing=True)


def _insert_each(cur: Cursor[Any], table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]],
                 *, skip_existing: bool) -> None:
    marks = ", ".join(["%s"] * len(columns))
    conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){conflict}", rows)


_SECONDARY_INDEX = re.compile(r"CREATE\s+INDEX\b", re.IGNORECASE)


def _statements(ddl: str) -> list[str]:
    """The statements of a DDL script (ours never hold a ``;`` inside a statement)."""
    return [statement.strip() for statement in ddl.split(";") if statement.strip()]
