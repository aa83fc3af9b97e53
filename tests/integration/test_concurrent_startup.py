"""Processes starting together on a new database all come up: creating the tables at once is not fatal."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from application.store import KasalStore, postgres_env


def test_stores_created_at_once_on_an_empty_database_all_start(empty_database_url: str) -> None:
    def start(_: int) -> int:
        store = KasalStore(postgres_env(empty_database_url, pool_size=1))
        try:
            return store.max_position()
        finally:
            store.close()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(start, range(8))) == [0] * 8
