"""Kasal's single-job rule under concurrent requests: the event store decides, not a read model.

With ``KASAL_REJECT_WHEN_BUSY`` and a limit of 1, requests that arrive at the
same moment all see an idle group in any read model; only the place each
takes in the group's quota, saved with its ``Requested`` event, tells them
apart.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire
from tests.fakes_runtime import FakeCrewRuntime
from tests.integration.execution_runs import wait_status

pytestmark = pytest.mark.anyio

CREW = {
    "agents_yaml": {"writer": {"role": "Writer", "goal": "Write", "backstory": "Writes"}},
    "tasks_yaml": {"draft": {"description": "Draft a note", "expected_output": "A note", "agent": "writer"}},
    "model": "offline/echo",
}
BUSY = "Cannot start new job. Another job is currently running: 'draft' (Status: "
BUSY_ANY_NAME = re.compile(
    r"Cannot start new job\. Another job is currently running: '.+' \(Status: (PENDING|PREPARING|RUNNING)\)\.")


def single_job(settings: Settings, **changes: Any) -> Settings:
    return settings.with_(max_concurrent_executions=1, reject_when_busy=True, **changes)


async def test_of_eight_concurrent_starts_exactly_one_is_accepted_and_a_finished_run_makes_room(settings) -> None:
    # The accepted run lasts a few seconds, so it still holds its place while slow requests are refused.
    runtime = FakeCrewRuntime(lines=10, delay=0.3)
    app = create_app(wire(single_job(settings, run_workers=True), crew_runtime=runtime))
    async with AsyncTestClient(app=app) as client:
        answers = await asyncio.gather(*(client.post("/api/v1/executions", json=CREW) for _ in range(8)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201] + [409] * 7, [answer.text for answer in answers]
        # The runner may already have renamed the accepted run (its name is improved in the background).
        refused = [a.json()["detail"] for a in answers if a.status_code == 409]
        assert all(BUSY_ANY_NAME.fullmatch(detail) for detail in refused), refused
        [accepted] = [answer.json()["execution_id"] for answer in answers if answer.status_code == 201]

        await wait_status(client, accepted, "COMPLETED")
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
