"""Read-model inserts: a live page's few rows and a rebuild's many take different paths to one result."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.base import COPY_FROM_ROWS, insert_rows

COLUMNS = ("id", "label")
ids = st.lists(st.integers(0, 400), unique=True, max_size=3 * COPY_FROM_ROWS)


@pytest.fixture
def conn(empty_database_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(empty_database_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE t (id integer PRIMARY KEY, label text NOT NULL)")
        yield connection


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(present=ids, new=ids)
def test_rows_already_there_are_skipped_and_the_rest_inserted(
    conn: psycopg.Connection[tuple[Any, ...]], present: list[int], new: list[int],
) -> None:
    """Few rows or many, a page applied again after a lost commit leaves every row once, the first kept.

    (The table is emptied first: the connection is shared by the examples.)
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM t")
        insert_rows(cur, "t", COLUMNS, [(i, "first") for i in present])
        insert_rows(cur, "t", COLUMNS, [(i, "again") for i in new], skip_existing=True)
    rows: dict[int, str] = dict(conn.execute("SELECT id, label FROM t").fetchall())
    assert sorted(rows) == sorted(set(present) | set(new))
    assert all(rows[i] == "first" for i in present)
    assert all(rows[i] == "again" for i in set(new) - set(present))


@pytest.mark.parametrize("count", [1, COPY_FROM_ROWS - 1, COPY_FROM_ROWS, 5 * COPY_FROM_ROWS])
def test_a_duplicate_is_an_error_unless_skipping(conn: psycopg.Connection[tuple[Any, ...]], count: int) -> None:
    """Where rows are never expected to exist (the audit index), a duplicate is not silently dropped."""
    conn.execute("INSERT INTO t VALUES (0, 'there')")
    with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction(), conn.cursor() as cur:
        insert_rows(cur, "t", COLUMNS, [(i, "x") for i in range(count)])
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
