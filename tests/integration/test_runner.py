"""The runner inside the service: claims, runs, records, limits, cancels, recovers.

A scripted crew runtime stands in for CrewAI here (the real child processes
are covered by ``test_crew_runtime.py`` and the e2e quick start).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from tests.fakes_runtime import FakeCrewRuntime

pytestmark = pytest.mark.anyio

CREW = {
    "agents_yaml": {"researcher": {"role": "Researcher", "goal": "Find facts about {topic}", "backstory": "Curious"}},
    "tasks_yaml": {"research": {"description": "Research {topic}", "expected_output": "A report", "agent": "researcher"}},
    "inputs": {"topic": "event sourcing"},
    "model": "offline/echo",
}
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def runner_app(settings: Any, runtime: FakeCrewRuntime, **changes: Any) -> Any:
    def install(core: Any) -> None:
        core.services["crew_runtime"] = runtime

    return create_app(settings.with_(run_workers=True, **changes), overrides={"core_hook": install})


async def wait_status(client: Any, execution_id: str, wanted: set[str], timeout: float = 15) -> dict[str, Any]:
    """Poll until a background runner has moved the execution into ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/api/v1/executions/{execution_id}")).json()
        if body["status"] in wanted or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_a_requested_execution_runs_to_completed_with_its_log(settings) -> None:
    runtime = FakeCrewRuntime(lines=5)
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        done = await wait_status(client, started["execution_id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        assert done["result"] == {"value": f"result of {started['execution_id']}"}
        logs = (await client.get(f"/api/v1/execution-logs/{started['execution_id']}")).json()["items"]
        assert [line["message"] for line in logs if line["message"].startswith("line ")] == [f"line {i}" for i in range(5)]
        assert [line["seq"] for line in logs] == sorted(line["seq"] for line in logs)
        history = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()
        assert [step["status"] for step in history["timeline"]][-3:] == ["PREPARING", "RUNNING", "COMPLETED"]
    assert runtime.jobs[0].inputs == {"topic": "event sourcing"}


async def test_with_limit_one_three_executions_run_one_after_another_in_order(settings) -> None:
    runtime = FakeCrewRuntime(lines=2, delay=0.05)
    async with AsyncTestClient(app=runner_app(settings, runtime, max_concurrent_executions=1)) as client:
        ids = [(await client.post("/api/v1/executions", json=CREW)).json()["execution_id"] for _ in range(3)]
        finished = [await wait_status(client, i, TERMINAL) for i in ids]
    assert [f["status"] for f in finished] == ["COMPLETED"] * 3
    assert [job.execution_id for job in runtime.jobs] == ids
    spans = [(f["started_at"], f["completed_at"]) for f in finished]
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans


async def test_cancelling_a_running_execution_ends_it_cancelled_by_the_caller(settings) -> None:
    runtime = FakeCrewRuntime(lines=200, delay=0.05)
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        await wait_status(client, started["execution_id"], {"RUNNING"})
        answer = await client.post(f"/api/v1/executions/{started['execution_id']}/cancel")
        assert answer.status_code == 200
        done = await wait_status(client, started["execution_id"], TERMINAL, timeout=5)
        assert done["status"] == "CANCELLED"
        history = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()
        assert history["timeline"][-1]["actor"] == "local-admin"


async def test_the_single_job_rule_answers_409_with_kasals_message(settings) -> None:
    runtime = FakeCrewRuntime(lines=500, delay=0.05)
    app = runner_app(settings, runtime, max_concurrent_executions=1, reject_when_busy=True)
    async with AsyncTestClient(app=app) as client:
        first = (await client.post("/api/v1/executions", json=CREW)).json()
        await wait_status(client, first["execution_id"], {"RUNNING"})
        second = await client.post("/api/v1/executions", json=CREW)
        assert second.status_code == 409
        running = (await client.get(f"/api/v1/executions/{first['execution_id']}")).json()
        # The placeholder name may be improved by the model meanwhile: either name is the run's.
        assert second.json()["detail"] in {
            f"Cannot start new job. Another job is currently running: '{name}' (Status: RUNNING)."
            for name in (first["run_name"], running["run_name"])
        }
        await client.post(f"/api/v1/executions/{first['execution_id']}/cancel")


async def test_a_placeholder_run_name_is_improved_by_the_model_as_an_event(settings) -> None:
    runtime = FakeCrewRuntime(lines=50, delay=0.02)
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        assert started["run_name"] == "research"  # the instant placeholder: the first task
        await wait_status(client, started["execution_id"], TERMINAL)
        deadline = time.monotonic() + 30  # the name is improved in the background, maybe after the run
        while (body := (await client.get(f"/api/v1/executions/{started['execution_id']}")).json())[
                "run_name"] == "research" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        history = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()
    assert body["run_name"].endswith("Run") and body["run_name"] != "research"
    assert history["run_name"] == body["run_name"]
