"""The embedded server must keep data across restarts and survive owners that died badly."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from interface.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError

REPO = Path(__file__).resolve().parents[2]
OWNER_SCRIPT = """
import sys, time
from pathlib import Path
from interface.embedded_pg import EmbeddedPostgres
EmbeddedPostgres(Path(sys.argv[1])).start()
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """One cold start (initdb) per module; tests get copies, which keeps the suite fast.

    mkdtemp rather than tmp_path: as root the server account needs o+x on the
    parent, and we should not loosen pytest's private base directory for that.
    """
    base = Path(tempfile.mkdtemp(prefix="kasal-pg-template-"))
    try:
        cluster = base / "pgdata"
        with EmbeddedPostgres(cluster) as pg:
            assert pg.start().endswith("/kasal")
        yield cluster
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def data_dir(template: Path) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="kasal-pg-test-"))
    try:
        target = base / ".kasal" / "pgdata"
        target.parent.mkdir()
        subprocess.run(["cp", "-a", str(template), str(target)], check=True)
        yield target
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _write(url: str, value: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (value text)")
        conn.execute("INSERT INTO notes VALUES (%s)", (value,))


def _read(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT value FROM notes ORDER BY value")]


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def _start_owner_process(data_dir: Path) -> subprocess.Popen[str]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(data_dir)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
    return owner


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(10)


def test_data_survives_restart(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        _write(pg.start(), "first")
    assert not (data_dir / "postmaster.pid").exists()
    with EmbeddedPostgres(data_dir) as pg:
        assert _read(pg.start()) == ["first"]


def test_second_owner_is_refused_without_harm(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        url = pg.start()
        with pytest.raises(EmbeddedPostgresError, match="already in use"):
            EmbeddedPostgres(data_dir).start()
        _write(url, "still fine")
        assert _read(url) == ["still fine"]


@pytest.mark.parametrize("kill_postmaster", [True, False], ids=["stale-pid", "orphaned-postmaster"])
def test_recovers_after_owner_is_killed(data_dir: Path, kill_postmaster: bool) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        _write(pg.start(), "before crash")
    owner = _start_owner_process(data_dir)
    postmaster = _postmaster_pid(data_dir)
    _kill(owner.pid)
    owner.wait()
    assert owner.stdout is not None
    owner.stdout.close()
    if kill_postmaster:
        _kill(postmaster)
    assert (data_dir / "postmaster.pid").exists()
    with EmbeddedPostgres(data_dir) as pg:
        url = pg.start()
        assert not psutil.pid_exists(postmaster) or _postmaster_pid(data_dir) != postmaster
        assert _read(url) == ["before crash"]


def test_stale_pid_of_unrelated_live_process(data_dir: Path) -> None:
    """A recycled pid in postmaster.pid would make PostgreSQL itself refuse to start."""
    with EmbeddedPostgres(data_dir) as pg:
        _write(pg.start(), "kept")
    pidfile = data_dir / "postmaster.pid"
    pidfile.write_text(f"{os.getpid()}\n{data_dir}\n{int(time.time())}\n5432\n\n127.0.0.1\n0 0\nready\n")
    with EmbeddedPostgres(data_dir) as pg:
        assert _read(pg.start()) == ["kept"]
