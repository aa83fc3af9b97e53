"""Run names: generated offline from the config, and a placeholder when no model answers."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

AGENTS = {"researcher": {"role": "Senior Researcher", "goal": "Find facts", "backstory": "Curious"}}
TASKS = {"research": {"name": "Market research", "description": "Research the coffee market",
                      "expected_output": "A report", "agent": "researcher"}}


async def test_the_offline_model_names_a_run_from_its_tasks(client) -> None:
    response = await client.post("/api/v1/executions/generate-name",
                                 json={"agents_yaml": AGENTS, "tasks_yaml": TASKS, "model": "offline/echo"})
    assert response.status_code == 200
    name = response.json()["name"]
    assert name.endswith("Run") and "Market" in name
    again = await client.post("/api/v1/executions/generate-name",
                              json={"agents_yaml": AGENTS, "tasks_yaml": TASKS, "model": "offline/echo"})
    assert again.json()["name"] == name


async def test_an_unknown_model_falls_back_to_the_first_task_name(client) -> None:
    response = await client.post("/api/v1/executions/generate-name",
                                 json={"agents_yaml": AGENTS, "tasks_yaml": TASKS, "model": "no-such-model"})
    assert response.status_code == 200
    assert response.json()["name"] == "Market research"


async def test_unparsable_config_still_gets_a_timestamp_name(client) -> None:
    response = await client.post("/api/v1/executions/generate-name",
                                 json={"agents_yaml": "agent_config", "tasks_yaml": "task_config", "model": "gpt-4"})
    assert response.status_code == 200
    assert response.json()["name"].startswith("Execution-")
