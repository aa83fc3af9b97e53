"""``kasal projections rebuild`` gives back exactly the live read models."""

from __future__ import annotations

import argparse
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.cli import COMMANDS

pytestmark = pytest.mark.anyio

CREW = {
    "agents_yaml": {"a": {"role": "Researcher", "goal": "Find {topic}", "backstory": "Curious"}},
    "tasks_yaml": {"t": {"description": "Research {topic}", "expected_output": "Facts", "agent": "a"}},
    "inputs": {"topic": "logs"},
}


def read_models(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'rm\\_%' ORDER BY 1")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


async def workload(client: Any) -> None:
    agents = []
    for i in range(6):
        agents.append((await client.post("/api/v1/agents", json={
            "name": f"Agent {i}", "role": "R", "goal": "G", "backstory": "B"})).json()["id"])
    await client.put(f"/api/v1/agents/{agents[0]}", json={"goal": "changed", "max_iter": 3})
    task = (await client.post("/api/v1/tasks", json={
        "name": "T", "description": "D", "expected_output": "O", "agent": "agent 1"})).json()
    await client.put(f"/api/v1/tasks/{task['id']}", json={"markdown": True})
    await client.delete(f"/api/v1/agents/{agents[1]}")  # unassigns the task too
    await client.post("/api/v1/crews", json={"name": "Crew", "agent_ids": agents[2:4], "task_ids": [task["id"]]})
    tools = (await client.get("/api/v1/tools")).json()["items"]
    await client.patch(f"/api/v1/tools/{tools[0]['id']}/toggle-enabled")
    await client.patch("/api/v1/models/gpt-4o/toggle")
    await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "key": "sk-rebuild-test-0000"})
    await client.post("/api/v1/templates", json={"name": "Mine", "template": "Hi {who}", "variables": ["who"]})
    execution = (await client.post("/api/v1/executions", json=CREW)).json()
    await client.post(f"/api/v1/executions/{execution['execution_id']}/cancel")
    await client.post("/api/v1/scheduler/schedules", json={
        "name": "Nightly", "cron_expression": "0 3 * * *", **CREW})


async def test_rebuilt_read_models_equal_the_live_ones(settings) -> None:
    async with AsyncTestClient(app=create_app(settings)) as client:
        await workload(client)
    live = read_models(settings.database_url)
    assert sum(len(rows) for rows in live.values()) > 50

    assert COMMANDS["projections"](argparse.Namespace(action="rebuild"), settings) == 0

    rebuilt = read_models(settings.database_url)
    assert rebuilt.keys() == live.keys()
    for table in live:
        assert rebuilt[table] == live[table], table


async def test_rebuild_refuses_while_a_service_is_projecting(settings, capsys) -> None:
    async with AsyncTestClient(app=create_app(settings)):
        assert COMMANDS["projections"](argparse.Namespace(action="rebuild"), settings) == 1
    assert "stop it before rebuilding" in capsys.readouterr().err
