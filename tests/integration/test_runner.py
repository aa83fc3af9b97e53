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
from tests.integration.execution_runs import HISTORY, TERMINAL, wait_status, wait_until

pytestmark = pytest.mark.anyio

CREW = {
    "agents_yaml": {"researcher": {"role": "Researcher", "goal": "Find facts about {topic}",
                                   "backstory": "Curious"}},
    "tasks_yaml": {"research": {"description": "Research {topic}", "expected_output": "A report",
                                "agent": "researcher"}},
    "inputs": {"topic": "event sourcing"},
    "model": "offline/echo",
}


def runner_app(settings: Any, runtime: FakeCrewRuntime, **changes: Any) -> Any:
    return create_app(wire(settings.with_(run_workers=True, **changes), crew_runtime=runtime))


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


async def test_a_chatty_crews_lines_are_numbered_in_the_order_it_said_them(settings) -> None:
    runtime = FakeCrewRuntime(lines=3000)  # many full batches, saved while the periodic flush saves too
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        execution_id = started["execution_id"]
        assert (await wait_status(client, execution_id, TERMINAL, timeout=60))["status"] == "COMPLETED"
        said: list[str] = []
        after = 0
        while True:
            page = (await client.get(f"/api/v1/execution-logs/{execution_id}?after={after}&limit=1000")).json()
            said += [line["message"] for line in page["items"] if line["message"].startswith("line ")]
            if not page["items"]:
                break
            after = page["items"][-1]["seq"]
        assert said == [f"line {i}" for i in range(3000)]


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
    runtime = FakeCrewRuntime(lines=3, delay=3600)  # a crew that only ends by being cancelled
    async with AsyncTestClient(app=runner_app(settings, runtime)) as client:
        started = (await client.post("/api/v1/executions", json=CREW)).json()
        await wait_status(client, started["execution_id"], "RUNNING")
        answer = await client.post(f"/api/v1/executions/{started['execution_id']}/cancel")
        assert answer.status_code == 200
        history = await wait_status(client, started["execution_id"], TERMINAL, path=HISTORY)
    assert [process.cancelled.is_set() for process in runtime.processes] == [True]
    assert [step["status"] for step in history["timeline"]][-2:] == ["RUNNING", "CANCELLED"]
    assert history["timeline"][-1]["actor"] == "local-admin"
    assert history["result"] is None


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


async def run_one_over(kasal: Any, executions: Any) -> Execution:
    """Start ``kasal`` with a runner over ``executions``, run one crew and return it once it has ended."""
    async with kasal.running():
        runner = runner_over(kasal, executions)
        await runner.start()
        try:
            execution_id = await request_run(kasal)
            return await logged_status(kasal, execution_id, lambda e: e.status.value in TERMINAL)
        finally:
            await runner.stop()


async def test_a_run_whose_end_cannot_be_recorded_at_first_still_ends_once_the_database_answers(settings) -> None:
    kasal = wire(settings)  # runs no runner of its own: this test starts one over a flaky database
    executions = FlakyDatabaseExecutions(kasal.services.executions, failures=3)
    done = await run_one_over(kasal, executions)
    assert done.status.value == "COMPLETED"
    assert executions.failures == 0


def runner_over(kasal: Any, executions: Any, *, poll_interval_s: float = 1.0) -> ExecutionRunner:
    """A runner of the test's own over ``executions``, woken by the projector as the service's runner is."""
    runner = ExecutionRunner(
        executions, kasal.store, FakeCrewRuntime(), cancellations=kasal.cancellations,
        registry=kasal.registry, max_concurrent=1, timeout_s=60,
        credentials=kasal.services.credentials.credentials, models=kasal.views.models.resolve_model,
        namer=kasal.services.run_names.for_job, poll_interval_s=poll_interval_s,
    )
    kasal.projector.on_advanced(runner.wake)
    return runner


async def request_run(kasal: Any) -> Any:
    with acting_as(Actor("local", "someone")):
        requested = await kasal.run(lambda: kasal.services.executions.request_execution(
            agents=CREW["agents_yaml"], tasks=CREW["tasks_yaml"], model="offline/echo"))
    return requested.execution_id


async def logged_status(kasal: Any, execution_id: Any, wanted: Any, timeout: float = 20) -> Execution:
    """The execution, read from the log, once ``wanted(execution)``; fails the test at the deadline."""
    def load() -> Execution:
        with acting_as(Actor("local", "someone")):
            return kasal.store.load(Execution, execution_id)

    deadline = time.monotonic() + timeout
    while not wanted(execution := await kasal.run(load)):
        if time.monotonic() > deadline:
            pytest.fail(f"execution {execution_id} is still {execution.status.value} after {timeout} s")
        await asyncio.sleep(0.05)
    return execution


async def test_a_requested_run_is_claimed_when_the_projector_lists_it_not_at_the_next_poll(settings) -> None:
    kasal = wire(settings)  # runs no runner of its own: this test starts one that all but never polls
    async with kasal.running():
        runner = runner_over(kasal, kasal.services.executions, poll_interval_s=3600)
        await runner.start()
        try:
            execution_id = await request_run(kasal)  # nobody wakes the runner but the projector
            done = await logged_status(kasal, execution_id, lambda e: e.status.value in TERMINAL)
        finally:
            await runner.stop()
    assert done.status.value == "COMPLETED"


class BrokenResultExecutions:
    """The execution service, but recording a result fails as a bug fails: the same way every time."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self.completions = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def complete(self, *args: Any) -> Any:
        self.completions += 1
        raise TypeError("Object of type Widget is not JSON serializable")


async def test_a_result_that_cannot_be_recorded_ends_the_run_failed_after_one_try(settings) -> None:
    kasal = wire(settings)  # runs no runner of its own: this test starts one whose results break
    executions = BrokenResultExecutions(kasal.services.executions)
    done = await run_one_over(kasal, executions)
    assert done.status.value == "FAILED"
    assert "TypeError: Object of type Widget is not JSON serializable" in str(done.error)
    assert executions.completions == 1


async def test_stopping_the_runner_ends_its_retries_against_a_database_that_does_not_answer(settings) -> None:
    kasal = wire(settings)  # runs no runner of its own: this test starts one over a database that is gone
    executions = FlakyDatabaseExecutions(kasal.services.executions, failures=10**6)
    async with kasal.running():
        runner = runner_over(kasal, executions)
        await runner.start()
        try:
            await request_run(kasal)
            deadline = time.monotonic() + 20
            while executions.failures > 10**6 - 2:  # tried, and tried again
                if time.monotonic() > deadline:
                    pytest.fail("the runner did not retry recording the run's end within 20 s")
                await asyncio.sleep(0.05)
        finally:
            await runner.stop()
        assert runner.runs == {}  # no run left retrying against pools that are about to close
