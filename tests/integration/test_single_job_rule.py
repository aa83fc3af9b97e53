"""Kasal's single-job rule under concurrent requests: the event store decides, not a read model.

With ``KASAL_REJECT_WHEN_BUSY`` and a limit of 1, requests that arrive at the
same moment all see an idle group in any read model; only the place each
takes in the group's quota, saved with its ``Requested`` event, tells them
apart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire
from tests.fakes_runtime import FakeCrewRuntime

pytestmark = pytest.mark.anyio

CREW = {
    "agents_yaml": {"writer": {"role": "Writer", "goal": "Write", "backstory": "Writes"}},
    "tasks_yaml": {"draft": {"description": "Draft a note", "expected_output": "A note", "agent": "writer"}},
    "model": "offline/echo",
}
BUSY = "Cannot start new job. Another job is currently running: 'draft' (Status: "


def single_job(settings: Settings, **changes: Any) -> Settings:
    return settings.with_(max_concurrent_executions=1, reject_when_busy=True, **changes)


async def wait_for_status(client: Any, execution_id: str, wanted: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (status := (await client.get(f"/api/v1/executions/{execution_id}")).json()["status"]) != wanted:
        if time.monotonic() > deadline:
            pytest.fail(f"execution {execution_id} is {status}, not {wanted}, after {timeout} s")
        await asyncio.sleep(0.05)


async def test_of_eight_concurrent_starts_exactly_one_is_accepted_and_a_finished_run_makes_room(settings) -> None:
    runtime = FakeCrewRuntime(lines=10, delay=0.05)
    app = create_app(wire(single_job(settings, run_workers=True), crew_runtime=runtime))
    async with AsyncTestClient(app=app) as client:
        answers = await asyncio.gather(*(client.post("/api/v1/executions", json=CREW) for _ in range(8)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201] + [409] * 7, [answer.text for answer in answers]
        assert all(a.json()["detail"].startswith(BUSY) for a in answers if a.status_code == 409)
        [accepted] = [answer.json()["execution_id"] for answer in answers if answer.status_code == 201]

        await wait_for_status(client, accepted, "COMPLETED")
        after = await client.post("/api/v1/executions", json=CREW)
        assert after.status_code == 201, after.text
        listed = (await client.get("/api/v1/executions")).json()  # a refused request records nothing
        assert {e["execution_id"] for e in listed["items"]} == {accepted, after.json()["execution_id"]}


async def test_a_cancelled_pending_run_gives_its_place_back(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(single_job(settings)))) as client:
        first = (await client.post("/api/v1/executions", json=CREW)).json()
        refused = await client.post("/api/v1/executions", json=CREW)
        assert (refused.status_code, refused.json()["detail"]) == (409, BUSY + "PENDING).")
        assert (await client.post(f"/api/v1/executions/{first['execution_id']}/cancel")).status_code == 200
        assert (await client.post("/api/v1/executions", json=CREW)).status_code == 201


async def test_one_groups_run_does_not_keep_another_group_waiting(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(single_job(settings)))) as client:
        assert (await client.post("/api/v1/executions", json=CREW)).status_code == 201
        other = await client.post("/api/v1/executions", json=CREW, headers={"X-Group-Id": "other"})
        assert other.status_code == 201, other.text
