"""``kasal serve`` on its embedded PostgreSQL: the signals that stop the service stop the database too.

SIGTERM is what systemd, Docker and CI send; SIGINT is Ctrl-C. Each test starts on a
fresh ``KASAL_HOME`` with no ``KASAL_DATABASE_URL``, so the service initialises and
owns a server under ``home/pgdata``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.contract import CONTRACT_AGENT
from tests.e2e.conftest import ROOT, ServerProcess

pytestmark = pytest.mark.e2e


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes of the server on ``data_dir``: the postmaster and its backends run there."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()) == data_dir:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            continue
    return found


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0])


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh home; mkdtemp because as root the server's account needs o+x on the parent,
    and pytest's private base directory should not be loosened for that."""
    base = Path(tempfile.mkdtemp(prefix="kasal-shutdown-")).resolve()
    try:
        yield base / "home"
    finally:
        for leftover in postgres_processes(base / "home" / "pgdata"):
            leftover.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def server(home: Path) -> Iterator[ServerProcess]:
    """``kasal serve`` with no database URL; killed (after the test's own stops) if still running."""
    process = ServerProcess("", home, env={"KASAL_RUN_WORKERS": "false", "KASAL_RUN_SCHEDULER": "false"})
    del process.env["KASAL_DATABASE_URL"]
    yield process
    process.kill()


def stop_with(process: ServerProcess, signum: int) -> int:
    assert process.process is not None
    process.process.send_signal(signum)
    try:
        return process.process.wait(90)
    except subprocess.TimeoutExpired:
        process.process.kill()
        raise


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_embedded_database_and_a_restart_keeps_the_data(
    server: ServerProcess, signum: int
) -> None:
    data_dir = server.home / "pgdata"
    server.start(timeout=120)
    with server.client() as http:
        created = http.post("/api/v1/agents", json=CONTRACT_AGENT)
        assert created.status_code == 201, created.text
    postmaster = postmaster_pid(data_dir)
    assert psutil.pid_exists(postmaster) and postgres_processes(data_dir)

    exit_code = stop_with(server, signum)

    assert postgres_processes(data_dir) == [], server.log.read_text()[-3000:]
    assert not (data_dir / "postmaster.pid").exists()
    assert exit_code == 0 and "Traceback" not in server.log.read_text(), server.log.read_text()[-3000:]

    server.start(timeout=120)
    with server.client() as http:
        assert http.get(f"/api/v1/agents/{created.json()['id']}").status_code == 200
    assert stop_with(server, signal.SIGTERM) == 0
    assert postgres_processes(data_dir) == []


def test_a_worker_never_starts_an_embedded_database(home: Path) -> None:
    """Workers share the API's database; one of their own would run crews nobody can see."""
    env = {key: value for key, value in os.environ.items() if key != "KASAL_DATABASE_URL"}
    worker = subprocess.run(
        [sys.executable, "-m", "interface.cli", "worker"], cwd=ROOT, env={**env, "KASAL_HOME": str(home)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert worker.returncode == 2
    assert "KASAL_DATABASE_URL" in worker.stderr
    assert not (home / "pgdata").exists()
