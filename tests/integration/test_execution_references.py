"""What an execution names must be the caller's group's own: another group's id is unknown.

Group A has a crew and a schedule. Group B starts executions naming them: the
answer is exactly the one an id that exists nowhere gets (the ids aside), and
nothing is recorded, so B learns nothing about A.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

pytestmark = pytest.mark.anyio

A, B = {"X-Group-Id": "group-a"}, {"X-Group-Id": "group-b"}
AGENTS = {"writer": {"role": "Writer", "goal": "Write the {day} report", "backstory": "Diligent."}}
TASKS = {"report": {"description": "Report for {day}", "expected_output": "A report", "agent": "writer"}}
INLINE = {"agents_yaml": AGENTS, "tasks_yaml": TASKS, "inputs": {"day": "today"}}


async def created(client: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    response = await client.post(f"/api/v1/{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def crew_and_schedule(client: Any, headers: dict[str, str]) -> tuple[str, str]:
    crew = await created(client, "crews", {"name": "Reporting", "agents_yaml": AGENTS, "tasks_yaml": TASKS}, headers)
    schedule = await created(client, "scheduler/schedules", {"name": "Daily", "cron_expression": "0 9 * * *",
                                                             "crew_id": crew, "inputs": {"day": "today"}}, headers)
    return crew, schedule


async def executions_of(client: Any, headers: dict[str, str]) -> int:
    return int((await client.get("/api/v1/executions", headers=headers)).json()["total"])


async def test_another_groups_schedule_id_is_422_like_one_that_exists_nowhere(client: Any) -> None:
    _, theirs = await crew_and_schedule(client, A)
    nowhere = str(uuid4())

    crossing = await client.post("/api/v1/executions", json={**INLINE, "schedule_id": theirs}, headers=B)
    dangling = await client.post("/api/v1/executions", json={**INLINE, "schedule_id": nowhere}, headers=B)

    assert crossing.status_code == 422, crossing.text
    assert crossing.json()["errors"] == [{"field": "schedule_id", "message": "no such schedule in this group"}]
    assert crossing.text.replace(theirs, "<id>") == dangling.text.replace(nowhere, "<id>")
    assert await executions_of(client, B) == 0


async def test_the_groups_own_schedule_id_is_recorded_with_the_run(client: Any) -> None:
    _, mine = await crew_and_schedule(client, B)
    started = await client.post("/api/v1/executions", json={**INLINE, "schedule_id": mine}, headers=B)
    assert started.status_code == 201, started.text
    history = (await client.get(f"/api/v1/execution-history/{started.json()['execution_id']}", headers=B)).json()
    assert history["schedule_id"] == mine


async def test_another_groups_crew_is_answered_like_a_crew_that_exists_nowhere(client: Any) -> None:
    theirs, _ = await crew_and_schedule(client, A)
    nowhere = str(uuid4())
    for body in ({"crew_id": theirs, "inputs": {"day": "today"}}, {**INLINE, "crew_id": theirs}):
        crossing = await client.post("/api/v1/executions", json=body, headers=B)
        dangling = await client.post("/api/v1/executions", json={**body, "crew_id": nowhere}, headers=B)
        assert crossing.status_code == dangling.status_code == 404, crossing.text
        assert crossing.text.replace(theirs, "<id>") == dangling.text.replace(nowhere, "<id>")
    assert await executions_of(client, B) == 0
