"""``KASAL_WEB_CONCURRENCY=2``: ``kasal serve`` answers from two API processes on one address.

Each request here goes over a connection of its own, as independent clients' do, so the
kernel hands it to either process; which one took it is read from the process that holds
the server's end of that connection. A write answered by one process is read back through
the other without the client sending anything more, a crew runs once, a process that dies
is replaced while the other keeps answering, and SIGTERM stops every process (and the
embedded PostgreSQL, when there is one).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.contract import CONTRACT_AGENT
from tests.e2e.conftest import ServerProcess
from tests.e2e.test_embedded_shutdown import postgres_processes

pytestmark = pytest.mark.e2e

CALL = {
    "agents_yaml": {"caller": {"role": "Caller", "goal": "Call {service}", "backstory": "Terse",
                               "llm": "offline/echo"}},
    "tasks_yaml": {"call": {"description": "Call {service}", "expected_output": "A line", "agent": "caller"}},
    "inputs": {"service": "billing"},
}


def two_api_processes(server: ServerProcess) -> list[psutil.Process]:
    """Both API processes, once both hold the listening socket (a child receives it after it starts)."""
    found: list[psutil.Process] = wait_for(
        lambda: len(processes := api_processes(server)) == 2 and processes, 30, "no two API processes")
    return found


def api_processes(server: ServerProcess) -> list[psutil.Process]:
    """The children of ``kasal serve`` that listen on its port (uvicorn's supervisor also keeps a resource tracker)."""
    assert server.process is not None
    found = []
    for child in psutil.Process(server.process.pid).children():
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
                   for c in child.net_connections(kind="tcp")):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


class Calls:
    """Requests each on a fresh connection, noting which API process answered."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.processes = two_api_processes(server)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any, int]:
        """``(status, decoded body, pid of the process that answered)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            answer = conn.getresponse()
            data = answer.read()
            assert conn.sock is not None
            pid = self.holder(conn.sock.getsockname()[1])
            return answer.status, json.loads(data) if data else None, pid
        finally:
            conn.close()

    def holder(self, client_port: int) -> int:
        """The API process holding the server's end of the connection from ``client_port``."""
        for process in self.processes:
            try:
                connections = process.net_connections(kind="tcp")
            except psutil.NoSuchProcess:  # a process this test killed: it holds nothing
                continue
            if any(c.status != psutil.CONN_LISTEN and c.raddr.port == client_port for c in connections):
                return process.pid
        raise AssertionError(f"no API process holds the connection from port {client_port}")


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_all(server: ServerProcess) -> None:
    """SIGKILL the service and whatever it started (a test that failed half-way leaves them running)."""
    if server.process is None or server.process.poll() is not None:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        started = psutil.Process(server.process.pid).children(recursive=True)
        server.kill()
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(database_url, tmp_path / "home", env={"KASAL_WEB_CONCURRENCY": "2",
                                                                  "KASAL_POOL_SIZE": "6"})
    try:
        process.start()
        yield process
    finally:
        kill_all(process)


def test_two_api_processes_share_the_load_read_each_others_writes_and_stop_together(server: ServerProcess) -> None:
    calls = Calls(server)

    # A process that dies is replaced, and the other answers meanwhile.
    killed, survivor = calls.processes
    killed.kill()
    assert Counter(calls.request("GET", "/health")[2] for _ in range(5)) == Counter({survivor.pid: 5})
    calls = Calls(server)
    [replacement] = [p for p in calls.processes if p.pid != survivor.pid]
    assert replacement.pid != killed.pid
    wait_for(lambda: calls.request("GET", "/health")[2] == replacement.pid, 45, "the replacement never answers")

    # While its crew starts (the crew runtime imports CrewAI once per process), the rest goes on.
    status, started, _ = calls.request("POST", "/api/v1/executions", CALL)
    assert status in (200, 201, 202), started
    execution_id = started["execution_id"]

    answered = Counter(calls.request("GET", "/health")[2] for _ in range(40))
    assert set(answered) == {survivor.pid, replacement.pid}, answered

    crossed = 0
    for n in range(50):
        status, created, writer = calls.request("POST", "/api/v1/agents", {**CONTRACT_AGENT, "name": f"Agent {n}"})
        assert status == 201, created
        status, read, reader = calls.request("GET", f"/api/v1/agents/{created['id']}")
        assert status == 200 and read["name"] == f"Agent {n}", (n, read)
        status, page, lister = calls.request("GET", "/api/v1/agents?limit=100")
        assert created["id"] in [a["id"] for a in page["items"]], (n, writer, lister)
        crossed += writer != reader or writer != lister
    assert crossed >= 10, f"only {crossed} of 50 reads went to another process than the write"

    done = wait_for(lambda: (body := calls.request("GET", f"/api/v1/executions/{execution_id}")[1])["status"]
                    in {"COMPLETED", "FAILED", "CANCELLED"} and body, 45, "the execution did not finish")
    assert done["status"] == "COMPLETED", done
    _, events, _ = calls.request("GET", f"/api/v1/events?aggregate_id={execution_id}&limit=100")
    kinds = Counter(e["type"] for e in events["items"])
    assert kinds["execution.started.v1"] == 1 and kinds["execution.completed.v1"] == 1, kinds

    assert server.process is not None
    everything = [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0
    # The API processes are gone now; a crew runtime (forkserver) that was still importing CrewAI
    # leaves when that is done. Zombies count as gone: reaping orphans is the init process's job.
    wait_for(lambda: not [p for p in everything if alive(p)], 30, "processes outlive the service")
    assert "Traceback" not in server.log.read_text(), server.log.read_text()[-3000:]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[ServerProcess]:
    """Two API processes over an embedded PostgreSQL (mkdtemp: the server's account needs o+x on the parent)."""
    base = Path(tempfile.mkdtemp(prefix="kasal-concurrency-")).resolve()
    process = ServerProcess("", base / "home", env={"KASAL_WEB_CONCURRENCY": "2", "KASAL_RUN_WORKERS": "false"})
    del process.env["KASAL_DATABASE_URL"]
    try:
        yield process
    finally:
        kill_all(process)
        for leftover in postgres_processes(base / "home" / "pgdata"):
            leftover.kill()
        shutil.rmtree(base, ignore_errors=True)


def test_two_processes_on_the_embedded_database_stop_it_on_sigterm(embedded: ServerProcess) -> None:
    embedded.start(timeout=120)
    two_api_processes(embedded)
    data_dir = embedded.home / "pgdata"
    assert postgres_processes(data_dir)

    assert embedded.process is not None
    everything = psutil.Process(embedded.process.pid).children(recursive=True)
    embedded.process.send_signal(signal.SIGTERM)
    assert embedded.process.wait(60) == 0

    assert postgres_processes(data_dir) == [] and not (data_dir / "postmaster.pid").exists()
    wait_for(lambda: not [p for p in everything if alive(p)], 30, "processes outlive the service")
    assert "Traceback" not in embedded.log.read_text(), embedded.log.read_text()[-3000:]
