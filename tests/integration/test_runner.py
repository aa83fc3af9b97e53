"""The runner inside the service: claims, runs, records, limits, cancels.

A scripted crew runtime stands in for CrewAI here (the real child processes
are covered by ``test_crew_runtime.py`` and ``test_runner_real_crews.py``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from domain.context import Actor, acting_as
from domain.execution import Execution
from interface.app import create_app
from interface.runner import ExecutionRunner
from interface.wiring import wire
from tests.fakes_runtime import FakeCrewRuntime

pytestmark = pytest.mark.anyio

CREW = {
    "agents_yaml": {"researcher": {"role": "Researcher", "goal": "Find facts about {topic}",
                                   "backstory": "Curious"}},
    "tasks_yaml": {"research": {"description": "Research {topic}", "expected_output": "A report",
                                "agent": "researcher"}},
    "inputs": {"topic": "event sourcing"},
    "model": "offline/echo",
}
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def runner_app(settings: Any, runtime: FakeCrewRuntime, **changes: Any) -> Any:
    return create_app(wire(settings.with_(run_workers=True, **changes), crew_runtime=runtime))


async def wait_until(client: Any, execution_id: str, done: Any, what: str, timeout: float = 15) -> dict[str, Any]:
    """Poll the execution until ``done(body)``; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get(f"/api/v1/executions/{execution_id}")).json()
        if done(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"execution {execution_id} did not {what} within {timeout} s; last seen: {body}")
        await asyncio.sleep(0.05)


async def wait_status(client: Any, execution_id: str, wanted: set[str], timeout: float = 15) -> dict[str, Any]:
    """Wait until a background runner has moved the execution into ``wanted``."""
    return await wait_until(client, execution_id, lambda body: body["status"] in wanted,
                            f"reach {sorted(wanted)}", timeout)


async def test_a_requested_execution_runs_to_completed_with_its_log(settings) -> None:
    runtime = FakeCrewRuntime(lines=5)
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        done = await wait_status(client, started["execution_id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        assert done["result"] == {"value": f"result of {started['execution_id']}"}
        logs = (await client.get(f"/api/v1/execution-logs/{started['execution_id']}")).json()["items"]
        lines = [line["message"] for line in logs if line["message"].startswith("line ")]
        assert lines == [f"line {i}" for i in range(5)]
        assert [line["seq"] for line in logs] == sorted(line["seq"] for line in logs)
        history = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()
        assert [step["status"] for step in history["timeline"]][-3:] == ["PREPARING", "RUNNING", "COMPLETED"]
    assert runtime.jobs[0].inputs == {"topic": "event sourcing"}


async def test_an_outcome_right_behind_the_last_log_line_still_ends_the_run(settings) -> None:
    """The last log line wakes the flusher and the outcome arrives one loop turn later: the
    flusher must stop all the same (a cancel lost there once left runs RUNNING for good)."""
    runtime = FakeCrewRuntime(lines=2, delay=0.3, outcome_after=0)
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        done = await wait_status(client, started["execution_id"], TERMINAL)
        assert done["status"] == "COMPLETED"
        logs = (await client.get(f"/api/v1/execution-logs/{started['execution_id']}")).json()["items"]
        assert logs[-1]["message"] == "crew finished"


async def test_with_limit_one_three_executions_run_one_after_another_in_order(settings) -> None:
    runtime = FakeCrewRuntime(lines=2, delay=0.05)
    async with AsyncTestClient(app=runner_app(settings, runtime, max_concurrent_executions=1)) as client:
        ids = [(await client.post("/api/v1/executions", json=CREW)).json()["execution_id"] for _ in range(3)]
        finished = [await wait_status(client, i, TERMINAL) for i in ids]
    assert [f["status"] for f in finished] == ["COMPLETED"] * 3
    assert [str(job.execution_id) for job in runtime.jobs] == ids
    spans = [(f["started_at"], f["completed_at"]) for f in finished]
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans


async def test_cancelling_a_running_execution_stops_its_crew_and_ends_it_cancelled_by_the_caller(settings) -> None:
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
        logs = (await client.get(f"/api/v1/execution-logs/{started['execution_id']}")).json()
    assert [process.cancelled.is_set() for process in runtime.processes] == [True]
    assert logs["total"] < 200


async def test_the_single_job_rule_answers_409_with_kasals_message(settings) -> None:
    runtime = FakeCrewRuntime(lines=500, delay=0.05)
    app = runner_app(settings, runtime, max_concurrent_executions=1, reject_when_busy=True)
    async with AsyncTestClient(app=app) as client:
        first = (await client.post("/api/v1/executions", json=CREW)).json()
        await wait_status(client, first["execution_id"], {"RUNNING"})
        second = await client.post("/api/v1/executions", json=CREW)
        assert second.status_code == 409
        # The placeholder name may be improved by the model meanwhile: either name is the run's.
        fresh = {"X-Kasal-Min-Position": str(client.app.state.kasal.store.max_position())}
        running = (await client.get(f"/api/v1/executions/{first['execution_id']}", headers=fresh)).json()
        assert second.json()["detail"] in {
            f"Cannot start new job. Another job is currently running: '{name}' (Status: RUNNING)."
            for name in (first["run_name"], running["run_name"])
        }
        await client.post(f"/api/v1/executions/{first['execution_id']}/cancel")
        await wait_status(client, first["execution_id"], TERMINAL)


async def test_a_placeholder_run_name_is_improved_by_the_model_as_an_event(settings) -> None:
    runtime = FakeCrewRuntime(lines=50, delay=0.02)
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        assert started["run_name"] == "research"  # the instant placeholder: the first task
        await wait_status(client, started["execution_id"], TERMINAL)
        # The name is improved in the background, maybe after the run.
        body = await wait_until(client, started["execution_id"], lambda body: body["run_name"] != "research",
                                "get a better name", timeout=30)
        history = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()
    assert body["run_name"].endswith("Run")
    assert history["run_name"] == body["run_name"]


class FlakyDatabaseExecutions:
    """The execution service, but its first ``failures`` attempts to record a run's end fail as a
    database that is gone (or out of connections) fails."""

    def __init__(self, service: Any, failures: int) -> None:
        self._service = service
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def _end(self, name: str, *args: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise psycopg.OperationalError("connection failed: sorry, too many clients already")
        return getattr(self._service, name)(*args)

    def complete(self, *args: Any) -> Any:
        return self._end("complete", *args)

    def fail(self, *args: Any) -> Any:
        return self._end("fail", *args)


async def test_a_run_whose_end_cannot_be_recorded_at_first_still_ends_once_the_database_answers(settings) -> None:
    kasal = wire(settings)  # runs no runner of its own: this test starts one over a flaky database
    executions = FlakyDatabaseExecutions(kasal.services.executions, failures=3)
    async with kasal.running():
        runner = ExecutionRunner(
            executions, kasal.store, FakeCrewRuntime(), cancellations=kasal.cancellations,
            registry=kasal.registry, max_concurrent=1, timeout_s=60,
            credentials=kasal.services.credentials.credentials, models=kasal.views.models.resolve_model,
            namer=kasal.services.run_names.for_job,
        )
        await runner.start()
        try:
            with acting_as(Actor("local", "someone")):
                requested = await kasal.run(lambda: kasal.services.executions.request_execution(
                    agents=CREW["agents_yaml"], tasks=CREW["tasks_yaml"], model="offline/echo"))
            runner.wake()

            def status() -> str:
                with acting_as(Actor("local", "someone")):
                    return kasal.store.load(Execution, requested.execution_id).status.value

            deadline = time.monotonic() + 20
            while (seen := await kasal.run(status)) not in TERMINAL:
                if time.monotonic() > deadline:
                    pytest.fail(f"the run is still {seen} after 20 s")
                await asyncio.sleep(0.05)
        finally:
            await runner.stop()
    assert seen == "COMPLETED"
    assert executions.failures == 0
