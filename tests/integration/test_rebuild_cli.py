"""``kasal projections rebuild`` gives back exactly the live read models."""

from __future__ import annotations

import argparse
import time
from typing import Any
from uuid import UUID

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from domain.context import Actor, acting_as
from domain.execution_progress import CrewCompleted, CrewStarted, LlmCall, LogLine, TaskCompleted, TaskStarted
from interface.app import create_app
from interface.cli import COMMANDS
from interface.wiring import Kasal, wire

pytestmark = pytest.mark.anyio

CREW = {
    "agents_yaml": {"a": {"role": "Researcher", "goal": "Find {topic}", "backstory": "Curious"}},
    "tasks_yaml": {"t": {"description": "Research {topic}", "expected_output": "Facts", "agent": "a"}},
    "inputs": {"topic": "logs"},
}

Rows = dict[str, list[tuple[Any, ...]]]


def read_models(url: str) -> Rows:
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'rm\\_%' ORDER BY 1")]
        # Sorted in full: rows that tie on their first columns may come back in any order.
        return {t: sorted(conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall(), key=repr) for t in tables}


def new_rows(before: Rows, after: Rows) -> dict[str, int]:
    """Per table, how many rows ``after`` has that ``before`` had not (changed rows count as new)."""
    return {t: sum(1 for row in rows if row not in before.get(t, [])) for t, rows in after.items()}


def expect(response: Any, status: int) -> Any:
    """The response's JSON, once it is the status this step of the workload must get."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}")
    return response.json() if response.content else None


def run_as_the_runner_would(kasal: Kasal, execution_id: UUID) -> None:
    """Drive an execution to COMPLETED with logs and spans, through the runner's service calls."""
    executions = kasal.services.executions
    now = time.time()
    with acting_as(Actor(group_id="local", actor="runner:rebuild-test")):
        executions.mark_preparing(execution_id)
        executions.mark_running(execution_id)
        executions.record_progress(execution_id, [
            CrewStarted(at=now),
            TaskStarted(at=now, task="t", agent="a"),
            LogLine(at=now, message="researching logs"),
            LlmCall(at=now, model="offline/echo", prompt="Research logs", response="three facts", prompt_tokens=9,
                    completion_tokens=4, cost=0.0007),
            TaskCompleted(at=now + 1, task="t", agent="a", output="three facts"),
            CrewCompleted(at=now + 1, result="three facts"),
        ])
        executions.complete(execution_id, "three facts")


async def workload(client: Any) -> None:
    api = "/api/v1"
    agents = [expect(await client.post(f"{api}/agents", json={
        "name": f"Agent {i}", "role": "R", "goal": "G", "backstory": "B"}), 201)["id"] for i in range(6)]
    expect(await client.put(f"{api}/agents/{agents[0]}", json={"goal": "changed", "max_iter": 3}), 200)
    task = expect(await client.post(f"{api}/tasks", json={
        "name": "T", "description": "D", "expected_output": "O", "agent": "agent 1"}), 201)
    expect(await client.put(f"{api}/tasks/{task['id']}", json={"markdown": True}), 200)
    expect(await client.delete(f"{api}/agents/{agents[1]}"), 204)  # unassigns the task too
    expect(await client.post(f"{api}/crews", json={
        "name": "Crew", "agent_ids": agents[2:4], "task_ids": [task["id"]]}), 201)
    tools = expect(await client.get(f"{api}/tools"), 200)["items"]
    expect(await client.patch(f"{api}/tools/{tools[0]['id']}/toggle-enabled"), 200)
    expect(await client.post(f"{api}/tools", json={"title": "Rebuild probe", "description": "A tool of ours"}), 201)
    expect(await client.patch(f"{api}/models/gpt-4o/toggle"), 200)
    expect(await client.post(f"{api}/models", json={"name": "rebuild-gpt", "provider": "openai", "model": "gpt-4"}),
           201)
    expect(await client.post(f"{api}/api-keys", json={"name": "OPENAI_API_KEY", "key": "sk-rebuild-test-0000"}), 201)
    expect(await client.post(f"{api}/templates", json={"name": "Mine", "template": "Hi {who}", "variables": ["who"]}),
           201)
    expect(await client.post(f"{api}/tokens", json={"role": "operator", "name": "ci"}), 201)
    cancelled = expect(await client.post(f"{api}/executions", json=CREW), 201)["execution_id"]
    expect(await client.post(f"{api}/executions/{cancelled}/cancel"), 200)
    completed = expect(await client.post(f"{api}/executions", json=CREW), 201)["execution_id"]
    run_as_the_runner_would(client.app.state.kasal, UUID(completed))
    # Read-your-writes: this answer waits for every earlier position, the runner's included.
    schedule = expect(await client.post(f"{api}/scheduler/schedules", json={
        "name": "Nightly", "cron_expression": "0 3 * * *", **CREW}), 201)
    await restores(client, agents, tools[0]["id"], schedule["id"])
    assert expect(await client.get(f"{api}/executions/{completed}"), 200)["status"] == "COMPLETED"


async def restores(client: Any, agents: list[str], builtin_tool: str, schedule: str) -> None:
    """Restores rewrite live rows and bring deleted ones back; a rebuild must agree on both."""
    api = "/api/v1"
    expect(await client.post(f"{api}/agents/{agents[0]}/versions/1/restore"), 200)
    expect(await client.delete(f"{api}/agents/{agents[4]}"), 204)
    expect(await client.post(f"{api}/agents/{agents[4]}/versions/1/restore"), 200)
    expect(await client.post(f"{api}/tools/{builtin_tool}/versions/1/restore"), 200)
    key = expect(await client.post(f"{api}/api-keys", json={"name": "SPARE_KEY", "key": "sk-rebuild-spare-1"}), 201)
    expect(await client.delete(f"{api}/api-keys/{key['id']}"), 204)
    expect(await client.post(f"{api}/api-keys/{key['id']}/versions/1/restore"), 200)
    expect(await client.put(f"{api}/scheduler/schedules/{schedule}", json={"cron_expression": "0 4 * * *"}), 200)
    expect(await client.delete(f"{api}/scheduler/schedules/{schedule}"), 204)
    expect(await client.post(f"{api}/scheduler/schedules/{schedule}/versions/1/restore"), 200)


async def test_rebuilt_read_models_equal_the_live_ones(settings, capsys) -> None:
    seeded = read_models(settings.database_url)
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        await workload(client)
    live = read_models(settings.database_url)
    assert "rm_audit_log" in live, "the audit index is a read model like the others"
    without_new_rows = sorted(t for t, n in new_rows(seeded, live).items() if n == 0)
    assert without_new_rows == [], "the workload must give every read model rows of its own to compare"

    indexes_live = indexes(settings.database_url)
    with psycopg.connect(settings.database_url) as conn:  # a rebuild that kept old rows would pass without this
        for table in live:
            conn.execute(f"DELETE FROM {table}")
    assert COMMANDS["projections"](argparse.Namespace(action="rebuild"), settings) == 0

    rebuilt = read_models(settings.database_url)
    assert rebuilt.keys() == live.keys()
    for table in live:
        assert rebuilt[table] == live[table], table
    # A rebuild builds plain indexes after loading the rows: every one must be back, as defined.
    assert indexes(settings.database_url) == indexes_live
    assert capsys.readouterr().out.startswith("rebuilt ")


def indexes(url: str) -> dict[str, str]:
    """Every index of the read models (and the tracking table), by name: its definition."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND (tablename LIKE 'rm\\_%' OR tablename = 'projection_tracking')").fetchall()
    return dict(rows)


async def test_rebuild_refuses_while_a_service_is_projecting(settings, capsys) -> None:
    async with AsyncTestClient(app=create_app(wire(settings))):
        assert COMMANDS["projections"](argparse.Namespace(action="rebuild"), settings) == 1
    assert "stop it before rebuilding" in capsys.readouterr().err
