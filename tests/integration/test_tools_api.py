"""Tools through HTTP on PostgreSQL: the shared catalogue, per-group choices, and custom tools."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from application.catalogue_seed import BuiltinTool, seed_catalogue, tool_catalogue
from domain.tool import Tool, builtin_tool_id
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire

pytestmark = pytest.mark.anyio

CONTRACT_TOOL = {
    "name": "Custom Search Tool",
    "description": "A tool for searching specific databases",
    "tool_type": "custom",
    "configuration": {"api_endpoint": "https://api.example.com", "parameters": {}},
    "enabled": True,
}
A = {"X-Group-Id": "group-a"}
B = {"X-Group-Id": "group-b"}


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Any]:
    """A started app on the settings' database; a second one on the same settings is a restart."""
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        yield client


async def tools_by_name(
    client: Any, headers: dict[str, str] | None = None, path: str = "/api/v1/tools"
) -> dict[str, Any]:
    response = await client.get(path, headers=headers or {})
    assert response.status_code == 200, response.text
    return {tool["name"]: tool for tool in response.json()["items"]}


async def serper_id(client: Any) -> str:
    return (await tools_by_name(client))["SerperDevTool"]["id"]


async def test_every_group_sees_the_built_in_catalogue(client) -> None:
    for headers in ({}, A, B):
        tools = await tools_by_name(client, headers)
        assert {"calculator", "current_datetime", "SerperDevTool", "ScrapeWebsiteTool", "DallETool",
                "PerplexityTool", "GenieTool", "MCPTool"} <= set(tools)
        assert 15 <= len(tools) <= 30
        assert all(t["group_id"] is None and t["builtin"] for t in tools.values())
        assert all("result_as_answer" in t["config"] for t in tools.values())
        assert all(t["title"] == t["name"] and t["configuration"] == t["config"] for t in tools.values())


async def test_toggling_a_built_in_changes_only_the_callers_group(client) -> None:
    tool_id = await serper_id(client)
    response = await client.patch(f"/api/v1/tools/{tool_id}/toggle-enabled", headers=A)
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False and "disabled" in response.json()["message"]
    assert (await tools_by_name(client, A))["SerperDevTool"]["enabled"] is False
    assert (await tools_by_name(client, B))["SerperDevTool"]["enabled"] is True
    assert (await client.get(f"/api/v1/tools/{tool_id}", headers=B)).json()["enabled"] is True


async def test_enabled_list_follows_the_toggle(client) -> None:
    tool_id = await serper_id(client)
    await client.patch(f"/api/v1/tools/{tool_id}/toggle-enabled", headers=A)
    assert "SerperDevTool" not in await tools_by_name(client, A, "/api/v1/tools/enabled")
    assert "SerperDevTool" in await tools_by_name(client, B, "/api/v1/tools/enabled")
    await client.patch(f"/api/v1/tools/{tool_id}/toggle-enabled", headers=A)
    assert "SerperDevTool" in await tools_by_name(client, A, "/api/v1/tools/enabled")


async def test_a_restart_neither_duplicates_the_catalogue_nor_resets_a_groups_choices(settings) -> None:
    async with running(settings) as first:
        tool_id = await serper_id(first)
        await first.patch(f"/api/v1/tools/{tool_id}/toggle-enabled", headers=A)
        await first.post("/api/v1/tools", json=CONTRACT_TOOL, headers=A)
        before = await tools_by_name(first, A)
        position = first.app.state.kasal.store.max_position()
    async with running(settings) as second:
        after = await tools_by_name(second, A)
        assert second.app.state.kasal.store.max_position() == position  # nothing re-recorded
    assert after == before
    assert after["SerperDevTool"]["enabled"] is False and "Custom Search Tool" in after


async def test_an_upgrades_new_and_changed_built_ins_appear_without_undoing_a_groups_choices(client) -> None:
    tool_id = await serper_id(client)
    await client.put(f"/api/v1/tools/{tool_id}", json={"enabled": False, "config": {"n_results": 3}}, headers=A)
    core = client.app.state.kasal
    upgraded = tool_catalogue()
    serper = builtin_tool_id("SerperDevTool")
    upgraded[serper] = {**upgraded[serper], "config": {**upgraded[serper]["config"], "gl": "uk"}}
    added = BuiltinTool("UpgradeTool", "Arrived with an upgrade.", "utility")
    upgraded[builtin_tool_id(added.name)] = added.fields()
    position = await core.run(seed_catalogue, core.store, Tool, upgraded)
    assert position is not None
    tools = await tools_by_name(client, {**A, "X-Kasal-Min-Position": str(position)})
    assert "UpgradeTool" in tools
    assert tools["SerperDevTool"]["enabled"] is False
    assert tools["SerperDevTool"]["config"]["n_results"] == 3 and tools["SerperDevTool"]["config"]["gl"] == "uk"


async def test_the_contract_body_creates_a_custom_tool_answering_both_spellings(client) -> None:
    response = await client.post("/api/v1/tools", json=CONTRACT_TOOL)
    assert response.status_code == 201, response.text
    tool = response.json()
    assert response.headers["location"] == f"/api/v1/tools/{tool['id']}"
    assert tool["name"] == tool["title"] == "Custom Search Tool"
    assert tool["config"] == tool["configuration"] == CONTRACT_TOOL["configuration"]
    assert tool["tool_type"] == "custom" and tool["enabled"] is True
    assert tool["group_id"] == "local" and tool["builtin"] is False and tool["version"] == 1


async def test_kasals_slash_form_and_title_are_accepted(client) -> None:
    response = await client.post("/api/v1/tools/", json={"title": "Ledger Tool", "config": {"depth": 2}})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Ledger Tool" and response.json()["config"] == {"depth": 2}


async def test_a_duplicate_custom_tool_title_is_409(client) -> None:
    assert (await client.post("/api/v1/tools", json=CONTRACT_TOOL)).status_code == 201
    again = await client.post("/api/v1/tools", json={**CONTRACT_TOOL, "name": "custom search TOOL"})
    assert again.status_code == 409
    assert again.json()["type"] == "conflict"


async def test_a_custom_tool_cannot_take_a_built_in_name(client) -> None:
    response = await client.post("/api/v1/tools", json={"name": "serperdevtool"})
    assert response.status_code == 409


async def test_the_same_title_is_free_in_another_group(client) -> None:
    assert (await client.post("/api/v1/tools", json=CONTRACT_TOOL, headers=A)).status_code == 201
    assert (await client.post("/api/v1/tools", json=CONTRACT_TOOL, headers=B)).status_code == 201


async def test_another_groups_custom_tool_is_invisible(client) -> None:
    created = (await client.post("/api/v1/tools", json=CONTRACT_TOOL, headers=A)).json()
    assert (await client.get(f"/api/v1/tools/{created['id']}", headers=B)).status_code == 404
    assert (await client.patch(f"/api/v1/tools/{created['id']}/toggle-enabled", headers=B)).status_code == 404
    assert (await client.delete(f"/api/v1/tools/{created['id']}", headers=B)).status_code == 404
    assert "Custom Search Tool" not in await tools_by_name(client, B)


async def test_updating_a_custom_tool_changes_only_the_fields_sent(client) -> None:
    created = (await client.post("/api/v1/tools", json=CONTRACT_TOOL)).json()
    response = await client.put(f"/api/v1/tools/{created['id']}", json={"description": "Searches ledgers"})
    assert response.status_code == 200, response.text
    tool = response.json()
    assert tool["description"] == "Searches ledgers" and tool["config"] == CONTRACT_TOOL["configuration"]
    assert tool["version"] == 2 and response.headers["etag"] == '"2"'


async def test_a_built_ins_config_is_set_per_group_over_its_defaults(client) -> None:
    tool_id = await serper_id(client)
    response = await client.put(f"/api/v1/tools/{tool_id}", json={"config": {"n_results": 5}}, headers=A)
    assert response.status_code == 200, response.text
    config = response.json()["config"]
    assert config["n_results"] == 5 and config["country"] == "us" and config["result_as_answer"] is False
    assert (await tools_by_name(client, B))["SerperDevTool"]["config"]["n_results"] == 10


async def test_a_built_ins_shared_fields_cannot_be_changed(client) -> None:
    tool_id = await serper_id(client)
    response = await client.put(f"/api/v1/tools/{tool_id}", json={"name": "My Serper"})
    assert response.status_code == 409
    assert (await tools_by_name(client))["SerperDevTool"]["name"] == "SerperDevTool"


async def test_a_built_in_cannot_be_deleted(client) -> None:
    tool_id = await serper_id(client)
    response = await client.delete(f"/api/v1/tools/{tool_id}")
    assert response.status_code == 409
    assert "disable" in response.json()["detail"]


async def test_a_deleted_custom_tool_is_gone_and_its_title_free_again(client) -> None:
    created = (await client.post("/api/v1/tools", json=CONTRACT_TOOL)).json()
    assert (await client.delete(f"/api/v1/tools/{created['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/tools/{created['id']}")).status_code == 404
    assert (await client.post("/api/v1/tools", json=CONTRACT_TOOL)).status_code == 201


async def test_if_match_guards_a_toggle(client) -> None:
    tool_id = await serper_id(client)
    stale = await client.patch(f"/api/v1/tools/{tool_id}/toggle-enabled", headers={**A, "If-Match": '"7"'})
    assert stale.status_code == 412
    fresh = await client.patch(f"/api/v1/tools/{tool_id}/toggle-enabled", headers={**A, "If-Match": '"1"'})
    assert fresh.status_code == 200 and fresh.json()["version"] == 2


async def test_the_schema_of_a_built_ins_configuration_is_a_json_schema(client) -> None:
    response = await client.get("/api/v1/tools/configurations/SerperDevTool/schema")
    assert response.status_code == 200, response.text
    schema = response.json()
    assert schema["type"] == "object" and "$schema" in schema
    assert schema["properties"]["n_results"]["type"] == "integer"
    assert schema["properties"]["result_as_answer"] == {
        "type": "boolean", "default": False, "description": schema["properties"]["result_as_answer"]["description"],
    }


async def test_the_schema_of_a_custom_tool_reflects_its_config(client) -> None:
    await client.post("/api/v1/tools", json=CONTRACT_TOOL)
    response = await client.get("/api/v1/tools/configurations/Custom Search Tool/schema")
    assert response.status_code == 200, response.text
    assert set(response.json()["properties"]) == {"api_endpoint", "parameters"}


async def test_the_schema_of_an_unknown_tool_is_404(client) -> None:
    response = await client.get("/api/v1/tools/configurations/NoSuchTool/schema")
    assert response.status_code == 404


async def test_other_features_can_ask_which_tools_a_group_may_use(client) -> None:
    tool_id = await serper_id(client)
    await client.patch(f"/api/v1/tools/{tool_id}/toggle-enabled", headers=A)
    await client.post("/api/v1/tools", json=CONTRACT_TOOL, headers=A)
    tools = client.app.state.kasal.views.tools
    enabled, disabled = await tools.tool_names("group-a")
    assert "SerperDevTool" in disabled and "calculator" in enabled and "Custom Search Tool" in enabled
    assert not enabled & disabled
    assert "Custom Search Tool" not in (await tools.tool_names("group-b"))[0]
    assert (await tools.find_tool("group-a", "serperdevtool"))["id"] == tool_id
    assert (await tools.find_tool("group-a", tool_id))["name"] == "SerperDevTool"
