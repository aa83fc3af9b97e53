"""The catalogue over real HTTP, and durability across a hard kill."""

from __future__ import annotations

import pytest

from tests.contract import CONTRACT_AGENT

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(database_url, tmp_path):
    """A server that runs no crews: these tests only need the catalogue."""
    from tests.e2e.conftest import ServerProcess

    process = ServerProcess(database_url, tmp_path / "home", env={"KASAL_RUN_WORKERS": "false"})
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


def test_request_id_is_echoed_and_positions_are_reported(server) -> None:
    with server.client() as http:
        response = http.post("/api/v1/agents", json=CONTRACT_AGENT, headers={"X-Request-ID": "req-42"})
        assert response.headers["x-request-id"] == "req-42"
        position = int(response.headers["x-kasal-position"])
        read = http.get("/api/v1/agents", headers={"X-Kasal-Min-Position": str(position)})
        assert read.json()["total"] == 1


def test_ctrl_c_stops_the_server_cleanly(server) -> None:
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()
