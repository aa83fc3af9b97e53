"""Shared fixtures: a PostgreSQL server, fresh databases, and apps built on them.

The server is ``KASAL_TEST_DATABASE_URL`` when set (CI points it at the
machine's PostgreSQL), else an embedded one started for the session. Every
database a test creates is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from interface.settings import Settings, quiet_libraries

quiet_libraries()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A libpq URL of a server we may create databases on."""
    url = os.environ.get("KASAL_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from interface.embedded_pg import EmbeddedPostgres

    # Not under pytest's base directory: as root the server runs as another account
    # that needs o+x on every parent, and each new pytest session takes that away again.
    base = Path(tempfile.mkdtemp(prefix="kasal-test-pg-"))
    server = EmbeddedPostgres(base / "data")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


class Databases:
    """Creates uniquely named databases on the server and drops them again.

    A test's own database is dropped in the background while the next test runs
    (hundreds of drops at the end of a session would take most of a minute).
    """

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []
        self._dropper = ThreadPoolExecutor(1, thread_name_prefix="kasal-drop-database")
        self._drops: list[Future[None]] = []

    def create(self, template: str | None = None) -> str:
        name = f"kasal_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return self.url_of(name)

    def url_of(self, name: str) -> str:
        params = conninfo_to_dict(self.server_url)
        params["dbname"] = name
        return make_conninfo(**params)

    def drop_soon(self, url: str) -> None:
        name = str(conninfo_to_dict(url)["dbname"])
        self.created.remove(name)
        self._drops.append(self._dropper.submit(self._drop, [name]))

    def drop_all(self) -> None:
        self._dropper.shutdown(wait=True)
        for drop in self._drops:
            drop.result()
        self._drop(self.created)
        self.created.clear()

    def _drop(self, names: list[str]) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def databases(pg_server: str) -> Iterator[Databases]:
    dbs = Databases(pg_server)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def started_template(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database on which the service has started once (tables made, built-ins seeded).

    Copying it (``CREATE DATABASE … TEMPLATE``) gives each test a started
    service's database in a fraction of the time a first start takes.
    """
    from litestar.testing import TestClient

    from interface.app import create_app
    from interface.wiring import wire

    url = databases.create()
    home = tmp_path_factory.mktemp("template-home")
    app = create_app(wire(Settings(database_url=url, home=home, secret_key="test-secret-key-for-kasal",
                                   run_workers=False, run_scheduler=False)))
    with TestClient(app=app):
        pass
    return str(conninfo_to_dict(url)["dbname"])


@pytest.fixture
def database_url(databases: Databases, started_template: str) -> Iterator[str]:
    """A database of its own for one test, as a started service leaves it."""
    url = databases.create(template=started_template)
    yield url
    databases.drop_soon(url)


@pytest.fixture
def empty_database_url(databases: Databases) -> Iterator[str]:
    """A fresh, empty database: no tables, no events."""
    url = databases.create()
    yield url
    databases.drop_soon(url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        home=tmp_path / "home",
        secret_key="test-secret-key-for-kasal",
        run_workers=False,
        run_scheduler=False,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[object]:
    """An HTTP client on a fully started app (lifespan run) over a fresh database."""
    from litestar.testing import AsyncTestClient

    from interface.app import create_app
    from interface.wiring import wire

    app = create_app(wire(settings))
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
