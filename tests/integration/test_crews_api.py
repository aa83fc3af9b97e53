"""Crews through HTTP on PostgreSQL: unique names, drafts that do not validate, and crews/debug."""

from __future__ import annotations

import threading

import pytest

from application.crews import CrewService
from application.store import KasalStore, postgres_env
from domain.context import Actor, acting_as
from domain.errors import ConflictError

pytestmark = pytest.mark.anyio

CONTRACT_CREW = {
    "name": "Research Team",
    "description": "Team specialized in research and analysis",
    "agents_yaml": "agent_configs_here",
    "tasks_yaml": "task_definitions_here",
    "model": "gpt-4",
    "process": "sequential",
    "verbose": True,
}
AGENTS_YAML = """\
researcher:
  role: Senior Researcher
  goal: Find facts about {topic}
  backstory: Knows where to look
  llm: offline/echo
writer:
  role: Writer
  goal: Write it up
  backstory: Clear prose
"""
TASKS_YAML = """\
research:
  description: Research {topic}
  expected_output: A short report
  agent: researcher
write:
  description: Write the article
  expected_output: An article
  agent: writer
  context: [research]
"""


async def _crew(client, **overrides) -> dict:
    response = await client.post("/api/v1/crews", json={**CONTRACT_CREW, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


async def _debug(client, body: dict) -> dict:
    response = await client.post("/api/v1/crews/debug", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_contract_crew_is_stored_as_sent_even_though_it_does_not_validate(client) -> None:
    response = await client.post("/api/v1/crews", json=CONTRACT_CREW)
    assert response.status_code == 201, response.text
    crew = response.json()
    assert response.headers["location"] == f"/api/v1/crews/{crew['id']}"
    assert crew["agents_yaml"] == "agent_configs_here" and crew["agents_config"] is None
    assert crew["process"] == "sequential" and crew["verbose"] is True and crew["model"] == "gpt-4"
    assert crew["agent_ids"] == [] and crew["nodes"] == [] and crew["planning"] is False

    report = await _debug(client, {"crew_id": crew["id"]})
    assert report["valid"] is False
    assert {e["path"] for e in report["errors"]} >= {"agents_yaml", "tasks_yaml"}


async def test_yaml_json_text_and_objects_are_all_decoded(client) -> None:
    as_yaml = await _crew(client, name="yaml", agents_yaml=AGENTS_YAML, tasks_yaml=TASKS_YAML)
    as_json = await _crew(client, name="json", agents_yaml='{"a": {"role": "r", "goal": "g", "backstory": "b"}}')
    as_object = await _crew(client, name="object", tasks_yaml={"t": {"description": "d", "expected_output": "o"}})
    assert [e["key"] for e in as_yaml["agents_config"]] == ["researcher", "writer"]
    assert as_yaml["tasks_config"][1] == {"key": "write", "config": {
        "description": "Write the article", "expected_output": "An article", "agent": "writer", "context": ["research"],
    }}
    assert as_yaml["agents_yaml"] == AGENTS_YAML
    assert as_json["agents_config"] == [{"key": "a", "config": {"role": "r", "goal": "g", "backstory": "b"}}]
    assert as_object["tasks_yaml"] == {"t": {"description": "d", "expected_output": "o"}}
    assert as_object["tasks_config"] == [{"key": "t", "config": as_object["tasks_yaml"]["t"]}]


async def test_decoded_configs_keep_the_written_order_even_for_objects(client) -> None:
    tasks = {
        "zeta": {"description": "first", "expected_output": "o"},
        "a": {"description": "second", "expected_output": "o"},
    }
    crew = await _crew(client, tasks_yaml=tasks)
    fetched = (await client.get(f"/api/v1/crews/{crew['id']}")).json()
    assert [e["key"] for e in fetched["tasks_config"]] == ["zeta", "a"]


async def test_a_duplicate_name_in_the_group_is_409(client) -> None:
    await _crew(client)
    response = await client.post("/api/v1/crews", json={**CONTRACT_CREW, "name": "research team"})
    assert response.status_code == 409
    assert response.json()["type"] == "conflict"


async def test_the_same_name_in_another_group_is_fine(client) -> None:
    await _crew(client)
    response = await client.post("/api/v1/crews", json=CONTRACT_CREW, headers={"X-Group-Id": "other"})
    assert response.status_code == 201


async def test_a_deleted_crews_name_can_be_used_again(client) -> None:
    crew = await _crew(client)
    assert (await client.delete(f"/api/v1/crews/{crew['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/crews/{crew['id']}")).status_code == 404
    await _crew(client)


async def test_renaming_onto_a_taken_name_is_409_and_frees_nothing(client) -> None:
    await _crew(client)
    other = await _crew(client, name="Other Team")
    response = await client.put(f"/api/v1/crews/{other['id']}", json={"name": "Research Team"})
    assert response.status_code == 409
    assert (await client.get(f"/api/v1/crews/{other['id']}")).json()["name"] == "Other Team"


def test_concurrent_creates_of_one_name_let_exactly_one_win(database_url) -> None:
    store = KasalStore(postgres_env(database_url))
    service = CrewService(store)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create() -> None:
        with acting_as(Actor(group_id="g", actor="test")):
            barrier.wait()
            try:
                service.create({"name": "Racing Crew"})
                outcomes.append("created")
            except ConflictError:
                outcomes.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert sorted(outcomes) == ["conflict", "created"]


async def test_update_changes_only_the_fields_sent(client) -> None:
    crew = await _crew(client, agents_yaml=AGENTS_YAML)
    response = await client.put(
        f"/api/v1/crews/{crew['id']}",
        json={"name": "Updated Research Team", "description": "Enhanced research capabilities"},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Updated Research Team"
    assert updated["description"] == "Enhanced research capabilities"
    assert updated["agents_yaml"] == AGENTS_YAML and updated["verbose"] is True and updated["version"] == 2


async def test_updating_the_yaml_updates_its_decoded_form(client) -> None:
    crew = await _crew(client)
    response = await client.put(f"/api/v1/crews/{crew['id']}", json={"agents_yaml": AGENTS_YAML})
    assert [e["key"] for e in response.json()["agents_config"]] == ["researcher", "writer"]


async def test_an_unknown_process_is_422(client) -> None:
    response = await client.post("/api/v1/crews", json={**CONTRACT_CREW, "process": "parallel"})
    assert response.status_code == 422
    assert ["body", "process"] in [e["loc"] for e in response.json()["detail"]]


async def test_canvas_fields_round_trip(client) -> None:
    nodes = [{"id": "n1", "type": "agentNode", "position": {"x": 1, "y": 2}}]
    edges = [{"id": "e1", "source": "n1", "target": "n2"}]
    crew = await _crew(client, nodes=nodes, edges=edges, max_rpm=5, manager_llm="gpt-4", process="hierarchical")
    fetched = (await client.get(f"/api/v1/crews/{crew['id']}")).json()
    assert fetched["nodes"] == nodes and fetched["edges"] == edges
    assert fetched["max_rpm"] == 5 and fetched["process"] == "hierarchical"


async def test_crews_list_newest_first_with_envelope(client) -> None:
    for name in ("a", "b", "c"):
        await _crew(client, name=name)
    page = (await client.get("/api/v1/crews", params={"limit": 2, "offset": 1})).json()
    assert [c["name"] for c in page["items"]] == ["b", "a"]
    assert page["total"] == 3 and page["has_more"] is False and page["offset"] == 1


async def test_another_groups_crew_is_404(client) -> None:
    crew = await _crew(client)
    other = {"X-Group-Id": "other"}
    assert (await client.get(f"/api/v1/crews/{crew['id']}", headers=other)).status_code == 404
    assert (await client.put(f"/api/v1/crews/{crew['id']}", json={"name": "x"}, headers=other)).status_code == 404
    assert (await client.delete(f"/api/v1/crews/{crew['id']}", headers=other)).status_code == 404
    assert (await client.post("/api/v1/crews/debug", json={"crew_id": crew["id"]}, headers=other)).status_code == 404


async def test_debug_accepts_a_valid_config(client) -> None:
    report = await _debug(client, {"agents_yaml": AGENTS_YAML, "tasks_yaml": TASKS_YAML})
    assert report["valid"] is True and report["errors"] == []
    assert report["agents"] == ["researcher", "writer"] and report["tasks"] == ["research", "write"]
    assert report["placeholders"] == ["topic"]


async def test_debug_catches_an_unknown_agent_reference(client) -> None:
    tasks = TASKS_YAML.replace("agent: writer", "agent: editor")
    report = await _debug(client, {"agents_yaml": AGENTS_YAML, "tasks_yaml": tasks})
    assert report["valid"] is False
    error = next(e for e in report["errors"] if e["path"] == "tasks_yaml.write.agent")
    assert "editor" in error["message"]


async def test_debug_catches_a_context_cycle(client) -> None:
    tasks = TASKS_YAML.replace("  agent: researcher\n", "  agent: researcher\n  context: [write]\n")
    report = await _debug(client, {"agents_yaml": AGENTS_YAML, "tasks_yaml": tasks})
    assert report["valid"] is False
    assert any("cycle" in e["message"] for e in report["errors"])


async def test_debug_reports_a_yaml_syntax_error_with_its_line(client) -> None:
    broken = "researcher:\n  role: Senior Researcher\n  goal: [unclosed\n  backstory: x\n"
    report = await _debug(client, {"agents_yaml": broken, "tasks_yaml": TASKS_YAML})
    assert report["valid"] is False
    error = next(e for e in report["errors"] if e["path"] == "agents_yaml")
    assert "line" in error["message"]


async def test_debug_reports_tools_the_installed_catalogue_does_not_know(client) -> None:
    agents = AGENTS_YAML.replace("  llm: offline/echo\n", "  llm: offline/echo\n  tools: [no_such_tool_anywhere]\n")
    report = await _debug(client, {"agents_yaml": agents, "tasks_yaml": TASKS_YAML})
    error = next(e for e in report["errors"] if e["path"] == "agents_yaml.researcher.tools[0]")
    assert "unknown tool" in error["message"]


async def test_debug_body_overrides_a_saved_crew(client) -> None:
    crew = await _crew(client)  # its model, gpt-4, is the writer's: it runs once the group has an OpenAI key
    await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "value": "sk-test-0001"})
    report = await _debug(client, {"crew_id": crew["id"], "agents_yaml": AGENTS_YAML, "tasks_yaml": TASKS_YAML})
    assert report["valid"] is True


async def test_debug_of_a_canvas_crew_checks_its_agents_and_tasks(client) -> None:
    agent = (await client.post("/api/v1/agents", json={
        "name": "Research Agent", "role": "Researcher", "goal": "Find {topic}", "backstory": "b",
    })).json()
    first = (await client.post("/api/v1/tasks", json={
        "name": "Research", "description": "Research {topic}", "expected_output": "notes", "agent": "research_agent",
    })).json()
    dangling = (await client.post("/api/v1/tasks", json={
        "name": "Edit", "description": "Edit", "expected_output": "text", "agent": "editor_agent",
        "context": [first["id"]],
    })).json()
    crew = await _crew(client, agents_yaml=None, tasks_yaml=None,
                       agent_ids=[agent["id"]], task_ids=[first["id"], dangling["id"]])
    report = await _debug(client, {"crew_id": crew["id"]})
    assert report["agents"] == ["research_agent"] and report["tasks"] == ["research", "edit"]
    assert report["placeholders"] == ["topic"]
    assert [e["path"] for e in report["errors"]] == ["tasks_yaml.edit.agent"]


class OperatorAuthenticator:
    """Everyone is an operator of group ``local``: may read and debug, not write."""

    async def authenticate(self, headers, correlation_id: str) -> Actor:
        return Actor(group_id="local", actor="operator", role="operator", correlation_id=correlation_id)


async def test_operators_may_debug_but_not_create_crews(settings) -> None:
    from litestar.testing import AsyncTestClient

    from interface.app import create_app
    from interface.wiring import wire

    app = create_app(wire(settings, authenticator=OperatorAuthenticator()))
    async with AsyncTestClient(app=app) as operator:
        debug = await operator.post("/api/v1/crews/debug", json={"agents_yaml": AGENTS_YAML, "tasks_yaml": TASKS_YAML})
        assert debug.status_code == 200 and debug.json()["valid"] is True
        assert (await operator.post("/api/v1/crews", json=CONTRACT_CREW)).status_code == 403


async def test_debug_checks_tools_and_models_against_the_groups_catalogue(client) -> None:
    tools = (await client.get("/api/v1/tools")).json()["items"]
    dalle = next(tool["id"] for tool in tools if tool["name"] == "DallETool")
    assert (await client.patch(f"/api/v1/tools/{dalle}/toggle-enabled")).status_code == 200
    agents = {"a": {"role": "r", "goal": "g", "backstory": "b", "llm": "gpt-9",
                    "tools": ["ScrapeWebsiteTool", "DallETool", "nope"]}}
    tasks = {"t": {"description": "d", "expected_output": "o", "agent": "a"}}
    report = await _debug(client, {"agents_yaml": agents, "tasks_yaml": tasks})
    messages = {e["path"]: e["message"] for e in report["errors"]}
    assert set(messages) == {"agents_yaml.a.llm", "agents_yaml.a.tools[1]", "agents_yaml.a.tools[2]"}
    assert "disabled" in messages["agents_yaml.a.tools[1]"] and "unknown" in messages["agents_yaml.a.tools[2]"]



async def test_debug_refuses_models_whose_key_the_group_has_not_stored(client) -> None:
    agents = AGENTS_YAML.replace("  llm: offline/echo\n", "  llm: claude-sonnet-4\n")
    report = await _debug(client, {"agents_yaml": agents, "tasks_yaml": TASKS_YAML, "model": "gpt-4o"})
    messages = {e["path"]: e["message"] for e in report["errors"]}
    assert "ANTHROPIC_API_KEY" in messages["agents_yaml.researcher.llm"]
    assert "OPENAI_API_KEY" in messages["agents_yaml.writer.llm"] and "default model gpt-4o" in messages[
        "agents_yaml.writer.llm"]
    started = await client.post("/api/v1/executions", json={"agents_yaml": agents, "tasks_yaml": TASKS_YAML,
                                                             "model": "gpt-4o", "inputs": {"topic": "bees"}})
    assert started.status_code == 422 and "ANTHROPIC_API_KEY" in started.text

    await client.post("/api/v1/api-keys", json={"name": "ANTHROPIC_API_KEY", "value": "sk-ant-test-0001"})
    await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "value": "sk-test-0001"})
    assert (await _debug(client, {"agents_yaml": agents, "tasks_yaml": TASKS_YAML, "model": "gpt-4o"}))["valid"]
