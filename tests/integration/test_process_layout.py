"""The compose layout in one test process: an API that runs no crews and a worker, two ``Kasal``
objects with nothing in memory in common, on one database.

Secret inputs reach the worker's crew through the sealed side table and are gone once the run
ends; cancel, stop and force-stop sent to the API stop a crew the worker runs, within a second,
recorded as the caller.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.sealed_inputs_store import ORPHAN_AFTER_S, TABLE, PostgresSealedRows
from interface.secret_box import SecretBox
from interface.settings import Settings
from interface.wiring import Kasal, wire
from tests.fakes_runtime import FakeCrewRuntime
from tests.integration.execution_runs import HISTORY, TERMINAL, wait_status
from tests.integration.test_secrets_never_recorded import mentions

pytestmark = pytest.mark.anyio

SECRET = "sk-proj-Zürich-42-\u00e9\u4e2d-0123456789"
CREW = {
    "agents_yaml": {"caller": {"role": "Caller", "goal": "Call {service}", "backstory": "Terse",
                               "llm": "offline/echo"}},
    "tasks_yaml": {"call": {"description": "Call {service} with {api_key}", "expected_output": "A line",
                            "agent": "caller"}},
    "model": "offline/echo",
}


def run_with(api_key: Any) -> dict[str, Any]:
    return {**CREW, "inputs": {"service": "billing", "api_key": api_key}}


@pytest.fixture
async def layout(settings: Settings) -> AsyncIterator[tuple[Any, Kasal, FakeCrewRuntime]]:
    """An API (no runner) answering HTTP, and a worker running scripted crews that only end when stopped."""
    runtime = FakeCrewRuntime(lines=2, delay=3600)
    worker = wire(settings.with_(run_workers=True), crew_runtime=runtime)
    async with AsyncTestClient(app=create_app(wire(settings))) as api, worker.running():
        yield api, worker, runtime


def sealed_rows(url: str) -> list[uuid.UUID]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(f"SELECT execution_id FROM {TABLE}")]


async def started_on_worker(api: Any, runtime: FakeCrewRuntime, body: dict[str, Any]) -> str:
    answer = await api.post("/api/v1/executions", json=body)
    assert answer.status_code == 201, answer.text
    execution_id: str = answer.json()["execution_id"]
    await wait_status(api, execution_id, "RUNNING")
    deadline = time.monotonic() + 10
    while not any(job.execution_id == execution_id for job in runtime.jobs):
        assert time.monotonic() < deadline, "the worker never started the crew"
        await anyio.sleep(0.01)
    return execution_id


def process_of(runtime: FakeCrewRuntime, execution_id: str) -> Any:
    return next(p for job, p in zip(runtime.jobs, runtime.processes, strict=True) if job.execution_id == execution_id)


async def test_secret_inputs_reach_a_crew_run_by_another_process_and_are_destroyed_with_the_run(
    layout: tuple[Any, Kasal, FakeCrewRuntime], settings: Settings,
) -> None:
    api, _, runtime = layout
    execution_id = await started_on_worker(api, runtime, run_with(SECRET))
    job = runtime.jobs[-1]
    assert job.inputs == {"service": "billing", "api_key": SECRET}
    assert sealed_rows(str(settings.database_url)) == [uuid.UUID(execution_id)]
    assert (await api.post(f"/api/v1/executions/{execution_id}/cancel")).status_code == 200
    await wait_status(api, execution_id, TERMINAL)
    assert sealed_rows(str(settings.database_url)) == []
    assert mentions(str(settings.database_url), SECRET) == []


async def test_a_run_whose_sealed_inputs_do_not_open_fails_saying_why_instead_of_running_redacted(
    settings: Settings,
) -> None:
    runtime = FakeCrewRuntime(lines=1)
    other_key = SecretBox(os.urandom(32))
    worker = wire(settings.with_(run_workers=True), crew_runtime=runtime, secret_box=other_key)
    async with AsyncTestClient(app=create_app(wire(settings))) as api, worker.running():
        execution_id = (await api.post("/api/v1/executions", json=run_with(SECRET))).json()["execution_id"]
        done = await wait_status(api, execution_id, TERMINAL)
    assert done["status"] == "FAILED"
    assert "KASAL_SECRET_KEY" in done["error"]
    assert runtime.jobs == []  # no crew ran with "[REDACTED]" in place of the key
    assert sealed_rows(str(settings.database_url)) == []


@pytest.mark.parametrize("verb", ["cancel", "stop", "force-stop"])
async def test_a_stop_sent_to_the_api_stops_the_crew_on_the_worker_within_a_second_as_the_caller(
    layout: tuple[Any, Kasal, FakeCrewRuntime], settings: Settings, verb: str,
) -> None:
    api, worker, runtime = layout
    execution_id = await started_on_worker(api, runtime, run_with(SECRET))
    process = process_of(runtime, execution_id)
    sent = time.monotonic()
    answer = await api.post(f"/api/v1/executions/{execution_id}/{verb}")
    assert answer.status_code == 200, answer.text
    while not process.cancelled.is_set():
        assert time.monotonic() - sent < 1.0, f"{verb}: the crew on the worker still runs after a second"
        await anyio.sleep(0.01)
    history = await wait_status(api, execution_id, "CANCELLED", path=HISTORY)
    assert [(step["status"], step["actor"]) for step in history["timeline"]][-1] == ("CANCELLED", "local-admin")
    deadline = time.monotonic() + 5
    while execution_id in {str(i) for i in worker.runner.runs}:
        assert time.monotonic() < deadline, "the worker still holds the stopped run"
        await anyio.sleep(0.01)
    events = [type(e).__name__ for e in worker.store.history(uuid.UUID(execution_id))]
    # Nothing of the crew's after the end (a better run name, found in the background, may still come).
    assert events.count("Cancelled") == 1 and set(events[events.index("Cancelled") + 1:]) <= {"Renamed"}
    assert sealed_rows(str(settings.database_url)) == []


async def test_the_sweep_destroys_rows_of_ended_and_never_saved_runs_and_keeps_the_others(
    layout: tuple[Any, Kasal, FakeCrewRuntime], settings: Settings,
) -> None:
    api, worker, runtime = layout
    url = str(settings.database_url)
    running = await started_on_worker(api, runtime, run_with(SECRET))
    ended = (await api.post("/api/v1/executions", json=run_with(SECRET + "-2"))).json()["execution_id"]
    never_saved, fresh = uuid.uuid4(), uuid.uuid4()
    rows = PostgresSealedRows(worker.sync_pool)
    with psycopg.connect(url) as conn:
        # The row of a run that ended while its delete failed, an old row whose request was never saved,
        # and the row of a request being saved right now.
        conn.execute(f"INSERT INTO {TABLE} (execution_id, group_id, sealed) VALUES (%s, 'local', 'v1:x')"
                     " ON CONFLICT DO NOTHING", (uuid.UUID(ended),))
        conn.execute(f"INSERT INTO {TABLE} (execution_id, group_id, sealed, created_at)"
                     " VALUES (%s, 'local', 'v1:x', now() - make_interval(secs => %s))",
                     (never_saved, ORPHAN_AFTER_S + 1))
        conn.execute(f"INSERT INTO {TABLE} (execution_id, group_id, sealed) VALUES (%s, 'local', 'v1:x')", (fresh,))
    await wait_status(api, ended, {"RUNNING", "PREPARING"})
    with psycopg.connect(url) as conn:  # as if the end were recorded by a process that died before its delete
        conn.execute("UPDATE rm_executions SET status = 'FAILED' WHERE id = %s", (uuid.UUID(ended),))
    assert rows.sweep() == 2
    assert set(sealed_rows(url)) == {uuid.UUID(running), fresh}
