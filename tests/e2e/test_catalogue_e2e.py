"""The catalogue over real HTTP: durability across a hard kill, and reads that wait for writes."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from projections.engine import ADVISORY_LOCK_KEY
from tests.contract import CONTRACT_AGENT
from tests.e2e.conftest import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(database_url, tmp_path):
    """A server that runs no crews: these tests only need the catalogue."""
    process = ServerProcess(database_url, tmp_path / "home", env={"KASAL_RUN_WORKERS": "false"})
    process.start()
    yield process
    process.stop()


@pytest.fixture
def projector_lock(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The projector's advisory lock, held by the test: a server started now follows and cannot project."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        yield conn


@pytest.fixture
def lagging_server(database_url, tmp_path, projector_lock) -> Iterator[ServerProcess]:
    """A server whose read models stay behind the log until ``projector_lock`` is released."""
    process = ServerProcess(database_url, tmp_path / "home", env={
        "KASAL_RUN_WORKERS": "false", "KASAL_RUN_SCHEDULER": "false", "KASAL_READ_YOUR_WRITES_TIMEOUT": "2"})
    process.start()
    yield process
    process.stop()


def test_every_acknowledged_write_survives_a_hard_kill(server) -> None:
    with server.client() as http:
        acknowledged = []
        for i in range(10):
            response = http.post("/api/v1/agents", json={**CONTRACT_AGENT, "name": f"Agent {i}"})
            assert response.status_code == 201
            acknowledged.append(response.json()["id"])
        changed = http.put(f"/api/v1/agents/{acknowledged[0]}", json={"goal": "Enhanced research capabilities"})
        assert changed.status_code == 200
        assert http.delete(f"/api/v1/agents/{acknowledged[1]}").status_code == 204

    server.kill()
    server.start()

    with server.client() as http:
        listing = http.get("/api/v1/agents", params={"limit": 100}).json()
        assert sorted(a["id"] for a in listing["items"]) == sorted(acknowledged[:1] + acknowledged[2:])
        assert http.get(f"/api/v1/agents/{acknowledged[0]}").json()["goal"] == "Enhanced research capabilities"


def test_request_id_is_echoed(server) -> None:
    with server.client() as http:
        response = http.post("/api/v1/agents", json=CONTRACT_AGENT, headers={"X-Request-ID": "req-42"})
        assert response.headers["x-request-id"] == "req-42"


CREW = {
    "agents_yaml": {"a": {"role": "Researcher", "goal": "Find {topic}", "backstory": "Curious"}},
    "tasks_yaml": {"t": {"description": "Research {topic}", "expected_output": "Facts", "agent": "a"}},
    "inputs": {"topic": "lag"},
}


def queue_execution(http: httpx.Client) -> tuple[str, str]:
    """Queue a run (no runner here: it stays PENDING); its id and the position it landed at."""
    response = http.post("/api/v1/executions", json=CREW)
    assert response.status_code == 201, response.text
    return response.json()["execution_id"], response.headers["x-kasal-position"]


def test_a_write_that_outwaits_its_projection_is_answered_and_marked_stale(lagging_server) -> None:
    with lagging_server.client() as http:
        response = http.post("/api/v1/executions", json=CREW)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "PENDING"
    assert response.headers.get("x-kasal-stale") == "true"


def test_a_created_agent_is_answered_even_when_its_projection_lags(lagging_server) -> None:
    with lagging_server.client() as http:
        response = http.post("/api/v1/agents", json=CONTRACT_AGENT)
    assert response.status_code == 201, response.text
    assert response.headers.get("x-kasal-stale") == "true"


def test_a_read_whose_min_position_is_not_reached_in_time_is_answered_and_marked_stale(lagging_server) -> None:
    with lagging_server.client() as http:
        _, position = queue_execution(http)
        read = http.get("/api/v1/executions", headers={"X-Kasal-Min-Position": position})
    assert read.status_code == 200
    assert read.headers.get("x-kasal-stale") == "true"
    assert read.json()["total"] == 0


def test_a_read_waits_for_a_position_not_yet_reached_and_includes_it(lagging_server, projector_lock) -> None:
    with lagging_server.client() as http:
        execution_id, position = queue_execution(http)

        def read() -> httpx.Response:
            return http.get("/api/v1/executions", headers={"X-Kasal-Min-Position": position})

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(read)
            projector_lock.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
            answered = waiting.result(timeout=30)
    assert answered.status_code == 200
    assert "x-kasal-stale" not in answered.headers
    assert [run["execution_id"] for run in answered.json()["items"]] == [execution_id]


def test_ctrl_c_stops_the_server_cleanly(server) -> None:
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()
