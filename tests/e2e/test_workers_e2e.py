"""The docker-compose shape: an API that runs no crews, and two `kasal worker` processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import ROOT, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CREW = {
    "agents_yaml": {
        "w": {"role": "Writer", "goal": "Write about {topic}", "backstory": "Terse", "llm": "offline/echo"},
    },
    "tasks_yaml": {"t": {"description": "One line on {topic}", "expected_output": "A line", "agent": "w"}},
    "inputs": {"topic": "workers"},
}


def test_two_workers_share_the_queue_and_run_each_execution_once(database_url, tmp_path) -> None:
    api = ServerProcess(database_url, tmp_path / "api", env={"KASAL_RUN_WORKERS": "false"})
    api.start()
    workers = [
        subprocess.Popen([sys.executable, "-m", "interface.cli", "worker"], cwd=ROOT, env=api.env,
                         stdout=(tmp_path / f"worker{n}.log").open("wb"), stderr=subprocess.STDOUT)
        for n in range(2)
    ]
    try:
        with api.client() as http:
            ids = [http.post("/api/v1/executions", json=CREW).json()["execution_id"] for _ in range(6)]
            deadline = time.monotonic() + 180
            statuses: dict[str, str] = {}
            while time.monotonic() < deadline:
                statuses = {i: http.get(f"/api/v1/executions/{i}/status").json()["status"] for i in ids}
                if all(s in {"COMPLETED", "FAILED", "CANCELLED"} for s in statuses.values()):
                    break
                time.sleep(0.2)
            assert set(statuses.values()) == {"COMPLETED"}, statuses
            for execution_id in ids:
                timeline = http.get(f"/api/v1/execution-history/{execution_id}").json()["timeline"]
                assert [step["status"] for step in timeline] == ["PENDING", "PREPARING", "RUNNING", "COMPLETED"]
    finally:
        for worker in workers:
            worker.terminate()
        codes = []
        for worker in workers:
            try:
                codes.append(worker.wait(30))
            except subprocess.TimeoutExpired:
                worker.kill()
                codes.append(worker.wait(5))
        api.stop()
    assert codes == [0, 0], "workers stop cleanly on SIGTERM"
