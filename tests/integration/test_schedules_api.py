"""Schedules through HTTP on PostgreSQL: the contract's body, Kasal's aliases, checks and tenancy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

AGENTS = {"writer": {"role": "Report Writer", "goal": "Write the {report_date} report", "backstory": "Diligent.",
                     "llm": "offline/echo"}}
TASKS = {"report": {"description": "Report for {report_date}", "expected_output": "A report", "agent": "writer"}}
CONTRACT_BODY = {"name": "Daily Reports", "cron_expression": "0 9 * * *", "crew_id": "crew-uuid",
                 "inputs": {"report_date": "today"}, "enabled": True}
BASE = "/api/v1/scheduler/schedules"
ALIAS = "/api/v1/schedules"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at(2025, 5, 1, 8, 0))


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    app = create_app(wire(settings, clock=clock))
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def crew_id(client: Any, group: str = "local", name: str = "Reporting") -> str:
    response = await client.post("/api/v1/crews", json={"name": name, "agents_yaml": AGENTS, "tasks_yaml": TASKS},
                                 headers={"X-Group-Id": group})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def create(client: Any, path: str = BASE, group: str = "local", **body: Any) -> dict[str, Any]:
    if "crew_id" not in body and "agents_yaml" not in body:
        body["crew_id"] = await crew_id(client, group)
    response = await client.post(path, json={**CONTRACT_BODY, **body}, headers={"X-Group-Id": group})
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_contracts_body_creates_a_schedule_with_its_next_run(client: Any) -> None:
    schedule = await create(client)
    assert schedule["name"] == "Daily Reports" and schedule["cron_expression"] == "0 9 * * *"
    assert schedule["enabled"] is True and schedule["is_active"] is True and schedule["timezone"] == "UTC"
    assert schedule["inputs"] == {"report_date": "today"}
    assert schedule["next_run_at"] == "2025-05-01T09:00:00Z"
    assert schedule["last_run_at"] is None and schedule["last_execution_id"] is None
    assert schedule["group_id"] == "local" and schedule["version"] == 1 and schedule["created_at"]
    uuid.UUID(schedule["id"])


async def test_a_create_answers_201_with_its_location(client: Any) -> None:
    crew = await crew_id(client)
    response = await client.post(BASE, json={**CONTRACT_BODY, "crew_id": crew})
    assert response.status_code == 201
    assert response.headers["Location"] == f"{BASE}/{response.json()['id']}"
    assert response.headers["ETag"] == '"1"'


async def test_the_contracts_literal_crew_uuid_is_a_clean_422(client: Any) -> None:
    response = await client.post(BASE, json=CONTRACT_BODY)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Unknown crew")
    assert response.json()["errors"][0]["field"] == "crew_id"


@pytest.mark.parametrize("cron", ["0 9 * * * *", "@daily", "61 * * * *", "not a cron", "0 0 31 2 *"])
async def test_an_invalid_cron_expression_is_422(client: Any, cron: str) -> None:
    response = await client.post(BASE, json={**CONTRACT_BODY, "crew_id": await crew_id(client),
                                              "cron_expression": cron})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Invalid cron expression: ")


async def test_an_unknown_time_zone_is_422(client: Any) -> None:
    response = await client.post(BASE, json={**CONTRACT_BODY, "crew_id": await crew_id(client),
                                              "timezone": "Mars/Olympus"})
    assert response.status_code == 422 and response.json()["detail"].startswith("Invalid time zone")


async def test_an_unknown_crew_id_is_422(client: Any) -> None:
    response = await client.post(BASE, json={**CONTRACT_BODY, "crew_id": str(uuid.uuid4())})
    assert response.status_code == 422 and response.json()["detail"].startswith("Unknown crew")


async def test_another_groups_crew_is_as_unknown_as_none(client: Any) -> None:
    theirs = await crew_id(client, group="other")
    response = await client.post(BASE, json={**CONTRACT_BODY, "crew_id": theirs})
    assert response.status_code == 422 and response.json()["detail"].startswith("Unknown crew")


async def test_a_schedule_needs_a_crew_or_an_inline_config(client: Any) -> None:
    body = {k: v for k, v in CONTRACT_BODY.items() if k != "crew_id"}
    response = await client.post(BASE, json=body)
    assert response.status_code == 422


async def test_an_inline_config_whose_placeholders_lack_inputs_is_422(client: Any) -> None:
    body = {**CONTRACT_BODY, "agents_yaml": AGENTS, "tasks_yaml": TASKS, "inputs": {}}
    del body["crew_id"]
    response = await client.post(BASE, json=body)
    assert response.status_code == 422 and "report_date" in response.json()["detail"]


async def test_an_inline_config_with_a_zone_and_model_is_kept(client: Any) -> None:
    body = {**CONTRACT_BODY, "agents_yaml": AGENTS, "tasks_yaml": TASKS, "timezone": "Europe/Berlin",
            "model": "offline/echo"}
    del body["crew_id"]
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    schedule = response.json()
    assert schedule["agents_yaml"] == AGENTS and schedule["crew_id"] is None and schedule["model"] == "offline/echo"
    assert schedule["next_run_at"] == "2025-05-02T07:00:00Z"  # 09:00 CEST


async def test_is_active_is_kasals_name_for_enabled(client: Any) -> None:
    schedule = await create(client, is_active=False, enabled=False)
    assert schedule["enabled"] is False and schedule["is_active"] is False and schedule["next_run_at"] is None
    conflicting = await client.post(BASE, json={**CONTRACT_BODY, "crew_id": await crew_id(client, name="x"),
                                                "is_active": False, "enabled": True})
    assert conflicting.status_code == 422


async def test_list_shows_the_groups_schedules_newest_first(client: Any) -> None:
    first = await create(client, name="First")
    second = await create(client, path=ALIAS, name="Second", crew_id=first["crew_id"])
    page = (await client.get(BASE)).json()
    assert [s["id"] for s in page["items"]] == [second["id"], first["id"]]
    assert page["total"] == 2 and page["has_more"] is False
    assert (await client.get(ALIAS + "?limit=1")).json()["has_more"] is True


async def test_get_update_and_delete_work_on_both_paths(client: Any) -> None:
    schedule = await create(client)
    for path in (BASE, ALIAS):
        assert (await client.get(f"{path}/{schedule['id']}")).json()["name"] == "Daily Reports"
    updated = await client.put(f"{ALIAS}/{schedule['id']}", json={"name": "Morning Reports"})
    assert updated.status_code == 200 and updated.json()["name"] == "Morning Reports"
    assert updated.json()["cron_expression"] == "0 9 * * *" and updated.json()["version"] == 2
    assert (await client.delete(f"{BASE}/{schedule['id']}")).status_code == 204
    assert (await client.get(f"{ALIAS}/{schedule['id']}")).status_code == 404
    assert (await client.get(BASE)).json()["total"] == 0


async def test_changing_the_cron_expression_moves_the_next_run(client: Any, clock: FakeClock) -> None:
    schedule = await create(client)
    clock.set(at(2025, 5, 1, 12))
    updated = (await client.put(f"{BASE}/{schedule['id']}", json={"cron_expression": "30 18 * * 1-5"})).json()
    assert updated["next_run_at"] == "2025-05-01T18:30:00Z"
    bad = await client.put(f"{BASE}/{schedule['id']}", json={"cron_expression": "* * *"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("Invalid cron expression: ")


async def test_switching_to_an_unknown_crew_is_422(client: Any) -> None:
    schedule = await create(client)
    response = await client.put(f"{BASE}/{schedule['id']}", json={"crew_id": "crew-uuid"})
    assert response.status_code == 422


async def test_an_update_with_a_stale_if_match_is_412(client: Any) -> None:
    schedule = await create(client)
    response = await client.put(f"{BASE}/{schedule['id']}", json={"name": "x"}, headers={"If-Match": '"7"'})
    assert response.status_code == 412


async def test_toggle_disables_and_enables_on_both_paths(client: Any, clock: FakeClock) -> None:
    schedule = await create(client)
    off = await client.patch(f"{BASE}/{schedule['id']}/toggle")
    assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["next_run_at"] is None
    clock.set(at(2025, 5, 3, 10))
    on = await client.post(f"{ALIAS}/{schedule['id']}/toggle")
    assert on.status_code == 200 and on.json()["is_active"] is True
    assert on.json()["next_run_at"] == "2025-05-04T09:00:00Z"


async def test_another_groups_schedules_are_404_and_unlisted(client: Any) -> None:
    schedule = await create(client)
    other = {"X-Group-Id": "other"}
    assert (await client.get(f"{BASE}/{schedule['id']}", headers=other)).status_code == 404
    assert (await client.put(f"{BASE}/{schedule['id']}", json={"name": "x"}, headers=other)).status_code == 404
    assert (await client.patch(f"{BASE}/{schedule['id']}/toggle", headers=other)).status_code == 404
    assert (await client.delete(f"{ALIAS}/{schedule['id']}", headers=other)).status_code == 404
    assert (await client.get(BASE, headers=other)).json()["total"] == 0


async def test_the_routes_are_documented(client: Any) -> None:
    paths = (await client.get("/api-openapi.json")).json()["paths"]
    assert {"get", "post"} <= paths[BASE].keys() and {"get", "post"} <= paths[ALIAS].keys()
    assert "patch" in paths[BASE + "/{schedule_id}/toggle"] and "post" in paths[ALIAS + "/{schedule_id}/toggle"]
    assert {"get", "put", "delete"} <= paths[BASE + "/{schedule_id}"].keys()
