"""Agents through HTTP on PostgreSQL: the contract's bodies and Kasal's defaults."""

from __future__ import annotations

import pytest

from tests.contract import CONTRACT_AGENT

pytestmark = pytest.mark.anyio



async def test_creating_an_agent_answers_201_with_location_and_defaults(client) -> None:
    response = await client.post("/api/v1/agents", json=CONTRACT_AGENT)
    assert response.status_code == 201, response.text
    agent = response.json()
    assert response.headers["location"] == f"/api/v1/agents/{agent['id']}"
    assert agent["name"] == "Research Agent"
    assert agent["max_iter"] == 25 and agent["memory"] is True and agent["allow_code_execution"] is False
    assert agent["version"] == 1 and agent["group_id"] == "local"
    assert response.headers["etag"] == '"1"'
    assert int(response.headers["x-kasal-position"]) >= 1


async def test_a_new_agent_is_in_the_list_immediately(client) -> None:
    created = (await client.post("/api/v1/agents", json=CONTRACT_AGENT)).json()
    listing = (await client.get("/api/v1/agents")).json()
    assert [a["id"] for a in listing["items"]] == [created["id"]]
    assert listing["total"] == 1 and listing["has_more"] is False and listing["limit"] == 20


async def test_update_changes_only_the_fields_sent(client) -> None:
    created = (await client.post("/api/v1/agents", json=CONTRACT_AGENT)).json()
    response = await client.put(
        f"/api/v1/agents/{created['id']}",
        json={"name": "Updated Research Agent", "goal": "Enhanced research capabilities"},
    )
    assert response.status_code == 200, response.text
    agent = response.json()
    assert agent["name"] == "Updated Research Agent"
    assert agent["goal"] == "Enhanced research capabilities"
    assert agent["backstory"] == CONTRACT_AGENT["backstory"] and agent["version"] == 2


async def test_missing_required_fields_answer_422_in_pydantic_shape(client) -> None:
    response = await client.post("/api/v1/agents", json={"name": "x"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {"type": "missing", "loc": ["body", "role"], "msg": "Field required", "input": {"name": "x"}} in detail


async def test_malformed_json_is_422_not_500(client) -> None:
    response = await client.post(
        "/api/v1/agents", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_deleted_agent_is_gone(client) -> None:
    created = (await client.post("/api/v1/agents", json=CONTRACT_AGENT)).json()
    assert (await client.delete(f"/api/v1/agents/{created['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/agents/{created['id']}")).status_code == 404
    assert (await client.get("/api/v1/agents")).json()["total"] == 0


async def test_another_groups_agent_is_404(client) -> None:
    created = (await client.post("/api/v1/agents", json=CONTRACT_AGENT, headers={"X-Group-Id": "a"})).json()
    response = await client.get(f"/api/v1/agents/{created['id']}", headers={"X-Group-Id": "b"})
    assert response.status_code == 404
    renamed = await client.put(f"/api/v1/agents/{created['id']}", json={"name": "n"}, headers={"X-Group-Id": "b"})
    assert renamed.status_code == 404
