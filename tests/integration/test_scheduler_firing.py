"""The scheduler firing on PostgreSQL: one execution per slot, even with two schedulers racing;
daylight-saving nights; disabled, deleted and broken schedules; catch-up after a restart.

Time is a ``FakeClock``: tests call ``tick(now)`` at chosen instants instead of
waiting for real minutes, and wait for read models by log position.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import pytest
from litestar.testing import AsyncTestClient

from application.executions import ExecutionService
from application.schedules import FireOutcome, SchedulerService
from application.store import KasalStore, postgres_env
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import Kasal, wire
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

AGENTS = {"writer": {"role": "Report Writer", "goal": "Write the {report_date} report", "backstory": "Diligent.",
                     "llm": "offline/echo"}}
TASKS = {"report": {"description": "Report for {report_date}", "expected_output": "A report", "agent": "writer"}}
BASE = "/api/v1/scheduler/schedules"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def app_for(settings: Settings, clock: FakeClock) -> Any:
    return create_app(wire(settings, clock=clock))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at(2025, 5, 1, 8, 0))


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    async with AsyncTestClient(app=app_for(settings, clock)) as test_client:
        yield test_client


def core_of(client: Any) -> Kasal:
    return client.app.state.kasal


async def tick(client: Any, now: datetime) -> list[FireOutcome]:
    """One scheduler pass at ``now``; returns once the read models include what it did."""
    core = core_of(client)
    outcomes = await core.scheduler.tick(now)
    await settled(core, outcomes)
    return outcomes


async def settled(core: Kasal, outcomes: list[FireOutcome] | None = None) -> None:
    """Wait until the read models include ``outcomes`` (default: everything written so far).

    The app's event loop is not the test's, so this waits in a thread.
    """
    if outcomes is None:
        positions = [await core.run(core.store.max_position)]
    else:
        positions = [o.position for o in outcomes if o.position is not None]
    if positions:
        assert await anyio.to_thread.run_sync(core.projector.wait_sync, max(positions), 10)


async def create(client: Any, **body: Any) -> dict[str, Any]:
    if "crew_id" not in body:
        crew = await client.post("/api/v1/crews", json={"name": f"crew {body.get('name', '')}",
                                                        "agents_yaml": AGENTS, "tasks_yaml": TASKS})
        body["crew_id"] = crew.json()["id"]
    body = {"name": "Daily Reports", "cron_expression": "0 9 * * *", "inputs": {"report_date": "today"}, **body}
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def runs_of(client: Any, schedule_id: str) -> list[dict[str, Any]]:
    """Executions a schedule started, oldest first, with their history."""
    page = (await client.get("/api/v1/execution-history?limit=100")).json()
    return sorted((e for e in page["items"] if e["schedule_id"] == schedule_id), key=lambda e: e["created_at"])


async def test_a_due_schedule_starts_one_execution_linked_to_its_slot(client: Any) -> None:
    schedule = await create(client)
    assert await tick(client, at(2025, 5, 1, 8, 59)) == []
    await tick(client, at(2025, 5, 1, 9, 0, 2))
    [run] = await runs_of(client, schedule["id"])
    assert run["status"] == "PENDING" and run["run_name"] == "Daily Reports"
    assert run["inputs"] == {"report_date": "today"} and run["crew_id"] == schedule["crew_id"]
    assert run["config"]["options"]["schedule"] == {"id": schedule["id"], "slot": "2025-05-01T09:00:00+00:00",
                                                    "catch_up": False}
    assert run["timeline"][0]["actor"] == "system:scheduler"
    after = (await client.get(f"{BASE}/{schedule['id']}")).json()
    assert after["last_execution_id"] == run["execution_id"]
    assert after["last_run_at"] == "2025-05-01T09:00:02Z" and after["last_run_was_catch_up"] is False
    assert after["next_run_at"] == "2025-05-02T09:00:00Z"


async def test_the_same_slot_never_fires_twice(client: Any) -> None:
    schedule = await create(client)
    for second in (1, 2, 30, 59):
        await tick(client, at(2025, 5, 1, 9, 0, second))
    await tick(client, at(2025, 5, 2, 9, 0, 1))
    assert len(await runs_of(client, schedule["id"])) == 2


async def test_two_schedulers_racing_for_the_same_slots_start_one_execution_each(
    client: Any, database_url: str, clock: FakeClock,
) -> None:
    """Like two service processes: two event stores on one database, ticking at the same instants."""
    core = core_of(client)
    schedules = [await create(client, name=f"every 20 minutes {n}", cron_expression="*/20 * * * *")
                 for n in range(3)]
    scheduler, executions = core.services.scheduler, core.services.executions
    other_store = KasalStore(postgres_env(database_url))
    try:
        other_executions = ExecutionService(other_store, executions.content, executions.index)
        schedulers = [scheduler, SchedulerService(other_store, scheduler.index, scheduler.planner, other_executions,
                                                  clock, box=scheduler.box)]
        fired: list[FireOutcome] = []
        for step in range(1, 7):  # 08:20, 08:40, … 10:00
            now = at(2025, 5, 1, 8) + timedelta(minutes=20 * step, seconds=1)
            start = threading.Barrier(2)

            def race(scheduler: Any, now: datetime = now, start: threading.Barrier = start) -> list[FireOutcome]:
                start.wait()
                return scheduler.tick(now)

            async with anyio.create_task_group() as tasks:
                for scheduler in schedulers:
                    tasks.start_soon(lambda s=scheduler: _collect(fired, anyio.to_thread.run_sync(race, s)))
        await settled(core, fired)
    finally:
        other_store.close()
    assert len(fired) == 3 * 6
    for schedule in schedules:
        runs = await runs_of(client, schedule["id"])
        slots = [r["config"]["options"]["schedule"]["slot"] for r in runs]
        assert len(runs) == 6 and len(set(slots)) == 6


async def _collect(into: list[FireOutcome], outcomes: Any) -> None:
    into.extend(await outcomes)


async def test_an_october_night_in_berlin_runs_once(client: Any, clock: FakeClock) -> None:
    clock.set(at(2025, 10, 25, 12))
    schedule = await create(client, cron_expression="30 2 * * *", timezone="Europe/Berlin")
    for minutes in range(0, 6 * 60, 15):  # 22:00 UTC on the 25th to 04:00 UTC on the 26th
        await tick(client, at(2025, 10, 25, 22) + timedelta(minutes=minutes))
    [run] = await runs_of(client, schedule["id"])
    assert run["config"]["options"]["schedule"]["slot"] == "2025-10-26T00:30:00+00:00"  # 02:30 CEST, first pass


async def test_the_time_skipped_in_march_runs_once_when_clocks_jump(client: Any, clock: FakeClock) -> None:
    clock.set(at(2025, 3, 29, 12))
    schedule = await create(client, cron_expression="30 2 * * *", timezone="Europe/Berlin")
    for minutes in range(0, 6 * 60, 15):
        await tick(client, at(2025, 3, 29, 22) + timedelta(minutes=minutes))
    [run] = await runs_of(client, schedule["id"])
    assert run["config"]["options"]["schedule"]["slot"] == "2025-03-30T01:00:00+00:00"  # 03:00 CEST
    assert (await client.get(f"{BASE}/{schedule['id']}")).json()["next_run_at"] == "2025-03-31T00:30:00Z"


async def test_disabled_and_deleted_schedules_do_not_fire(client: Any) -> None:
    disabled = await create(client, name="disabled")
    deleted = await create(client, name="deleted")
    toggled_off = await create(client, name="toggled")
    await client.patch(f"{BASE}/{toggled_off['id']}/toggle")
    await client.put(f"{BASE}/{disabled['id']}", json={"enabled": False})
    await client.delete(f"{BASE}/{deleted['id']}")
    assert await tick(client, at(2025, 5, 1, 9, 0, 1)) == []
    for schedule in (disabled, deleted, toggled_off):
        assert await runs_of(client, schedule["id"]) == []


async def test_a_schedule_whose_crew_was_deleted_skips_the_slot_and_says_why(client: Any) -> None:
    schedule = await create(client)
    assert (await client.delete(f"/api/v1/crews/{schedule['crew_id']}")).status_code == 204
    [outcome] = await tick(client, at(2025, 5, 1, 9, 0, 1))
    assert outcome.execution_id is None
    after = (await client.get(f"{BASE}/{schedule['id']}")).json()
    assert "not found" in after["last_error"] and after["next_run_at"] == "2025-05-02T09:00:00Z"
    assert await runs_of(client, schedule["id"]) == []


async def test_runs_missed_while_down_give_one_catch_up_run_on_start_up(settings: Settings, clock: FakeClock) -> None:
    async with AsyncTestClient(app=app_for(settings, clock)) as first:
        schedule = await create(first, cron_expression="0 * * * *")  # hourly; next run 09:00
    clock.set(at(2025, 5, 4, 14, 25))  # down for three days: 78 slots missed
    running = settings.with_(run_scheduler=True)
    async with AsyncTestClient(app=app_for(running, clock)) as second:
        await settled(core_of(second))
        [run] = await runs_of(second, schedule["id"])
        assert run["config"]["options"]["schedule"] == {"id": schedule["id"], "slot": "2025-05-04T14:00:00+00:00",
                                                        "catch_up": True}
        after = (await second.get(f"{BASE}/{schedule['id']}")).json()
        assert after["last_run_was_catch_up"] is True and after["next_run_at"] == "2025-05-04T15:00:00Z"
    async with AsyncTestClient(app=app_for(running, clock)) as third:
        await settled(core_of(third))
        assert len(await runs_of(third, schedule["id"])) == 1


async def test_the_loop_fires_when_woken_by_a_schedule_change(settings: Settings, clock: FakeClock) -> None:
    async with AsyncTestClient(app=app_for(settings.with_(run_scheduler=True), clock)) as client:
        schedule = await create(client)
        clock.set(at(2025, 5, 1, 9, 0, 1))
        await client.put(f"{BASE}/{schedule['id']}", json={"name": "Morning Reports"})  # wakes the loop
        with anyio.fail_after(10):
            while not (await client.get(f"{BASE}/{schedule['id']}")).json()["last_execution_id"]:
                await anyio.sleep(0.02)  # the loop runs in the background; the read is what we wait on
        assert len(await runs_of(client, schedule["id"])) == 1
