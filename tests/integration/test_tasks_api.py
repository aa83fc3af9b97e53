"""Tasks through HTTP on PostgreSQL: the contract's bodies, agent references, full vs partial updates."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.anyio

CONTRACT_TASK = {
    "name": "Research Task",
    "description": "Research the latest developments in AI",
    "expected_output": "A comprehensive report on AI developments",
    "agent": "research_agent",
    "tools": ["search_tool"],
}
AGENT = {
    "name": "Research Agent",
    "role": "Senior Researcher",
    "goal": "Conduct thorough research on given topics",
    "backstory": "An experienced researcher",
}


async def _agent(client, **overrides) -> dict:
    response = await client.post("/api/v1/agents", json={**AGENT, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


async def _task(client, **overrides) -> dict:
    response = await client.post("/api/v1/tasks", json={**CONTRACT_TASK, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_contract_task_is_created_with_kasal_defaults(client) -> None:
    response = await client.post("/api/v1/tasks", json=CONTRACT_TASK)
    assert response.status_code == 201, response.text
    task = response.json()
    assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"
    assert task["name"] == "Research Task" and task["tools"] == ["search_tool"]
    assert task["context"] == [] and task["config"] == {}
    assert task["async_execution"] is False and task["human_input"] is False and task["markdown"] is False
    assert task["output_json"] is None and task["output_file"] is None
    assert task["version"] == 1 and task["group_id"] == "local"


async def test_an_agent_that_does_not_exist_yet_is_kept_as_written(client) -> None:
    task = await _task(client)
    assert task["agent"] == "research_agent" and task["agent_id"] is None
    fetched = (await client.get(f"/api/v1/tasks/{task['id']}")).json()
    assert fetched["agent"] == "research_agent" and fetched["agent_id"] is None


async def test_agent_by_name_ignores_case_spaces_hyphens_and_underscores(client) -> None:
    agent = await _agent(client)
    for reference in ("research_agent", "RESEARCH-AGENT", "Research Agent", "researchagent"):
        task = await _task(client, agent=reference)
        assert task["agent_id"] == agent["id"], reference
        assert task["agent"] == reference


async def test_agent_by_id_resolves_to_that_agent(client) -> None:
    agent = await _agent(client, name="Writer")
    task = await _task(client, agent=agent["id"])
    assert task["agent_id"] == agent["id"]


async def test_an_agent_of_another_group_is_not_resolved(client) -> None:
    await client.post("/api/v1/agents", json=AGENT, headers={"X-Group-Id": "other"})
    task = await _task(client)
    assert task["agent_id"] is None


async def test_explicit_agent_id_is_stored(client) -> None:
    agent = await _agent(client)
    task = await _task(client, agent=None, agent_id=agent["id"])
    assert task["agent_id"] == agent["id"] and task["agent"] is None


async def test_missing_required_fields_answer_422(client) -> None:
    response = await client.post("/api/v1/tasks", json={"name": "Only a name"})
    assert response.status_code == 422
    missing = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert ("body", "description") in missing or ("body", "expected_output") in missing


async def test_partial_update_changes_only_the_name(client) -> None:
    task = await _task(client)
    response = await client.put(f"/api/v1/tasks/{task['id']}", json={"name": "Updated Task Name"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Updated Task Name"
    assert updated["description"] == CONTRACT_TASK["description"]
    assert updated["tools"] == ["search_tool"] and updated["agent"] == "research_agent"
    assert updated["version"] == 2 and response.headers["etag"] == '"2"'


async def test_full_update_replaces_the_definition_and_resets_the_rest(client) -> None:
    task = await _task(client, markdown=True)
    body = {
        "name": "Updated Research Task",
        "description": "Enhanced research requirements",
        "expected_output": "Detailed research report",
    }
    response = await client.put(f"/api/v1/tasks/{task['id']}/full", json=body)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert {k: replaced[k] for k in body} == body
    assert replaced["tools"] == [] and replaced["agent"] is None and replaced["markdown"] is False


async def test_full_update_without_required_fields_is_422_and_changes_nothing(client) -> None:
    task = await _task(client)
    response = await client.put(f"/api/v1/tasks/{task['id']}/full", json={"name": "Just a name"})
    assert response.status_code == 422
    assert (await client.get(f"/api/v1/tasks/{task['id']}")).json()["version"] == 1


async def test_a_partial_update_can_assign_an_agent_created_later(client) -> None:
    task = await _task(client)
    agent = await _agent(client)
    response = await client.put(f"/api/v1/tasks/{task['id']}", json={"agent": "research_agent"})
    assert response.json()["agent_id"] == agent["id"]


async def test_deleting_an_agent_unassigns_its_tasks_with_an_event_each(client, database_url) -> None:
    agent = await _agent(client)
    first, second = await _task(client), await _task(client, name="Second")
    other = await _task(client, agent="someone_else")
    assert first["agent_id"] == second["agent_id"] == agent["id"]

    assert (await client.delete(f"/api/v1/agents/{agent['id']}")).status_code == 204

    for task in (first, second):
        after = (await client.get(f"/api/v1/tasks/{task['id']}")).json()
        assert after["agent_id"] is None and after["version"] == 2
    assert (await client.get(f"/api/v1/tasks/{other['id']}")).json()["version"] == 1
    with psycopg.connect(database_url) as conn:
        topics = [r[0] for r in conn.execute("SELECT topic FROM kasal_events ORDER BY notification_id")]
    assert topics.count("task.agent_unassigned.v1") == 2
    assert topics[-3:].count("task.agent_unassigned.v1") == 2 and "agent.deleted.v1" in topics[-3:]


async def test_tasks_list_newest_first_with_envelope(client) -> None:
    names = ["first", "second", "third"]
    for name in names:
        await _task(client, name=name)
    page = (await client.get("/api/v1/tasks", params={"limit": 2})).json()
    assert [t["name"] for t in page["items"]] == ["third", "second"]
    assert page["total"] == 3 and page["has_more"] is True and page["limit"] == 2 and page["offset"] == 0


async def test_deleted_task_is_gone(client) -> None:
    task = await _task(client)
    assert (await client.delete(f"/api/v1/tasks/{task['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/tasks/{task['id']}")).status_code == 404
    assert (await client.delete(f"/api/v1/tasks/{task['id']}")).status_code == 404


async def test_another_groups_task_is_404(client) -> None:
    task = await _task(client)
    other = {"X-Group-Id": "other"}
    assert (await client.get(f"/api/v1/tasks/{task['id']}", headers=other)).status_code == 404
    assert (await client.put(f"/api/v1/tasks/{task['id']}", json={"name": "x"}, headers=other)).status_code == 404
    assert (await client.delete(f"/api/v1/tasks/{task['id']}", headers=other)).status_code == 404
    assert (await client.get("/api/v1/tasks", headers=other)).json()["total"] == 0


async def test_stale_if_match_is_412(client) -> None:
    task = await _task(client)
    await client.put(f"/api/v1/tasks/{task['id']}", json={"name": "v2"})
    response = await client.put(f"/api/v1/tasks/{task['id']}", json={"name": "v3"}, headers={"If-Match": '"1"'})
    assert response.status_code == 412
