"""The order of agents/tasks mappings survives every store on PostgreSQL.

Tasks run in the order they are written and a task's ``context`` may only
name earlier tasks, so a crew read back with its mappings reordered (as
``jsonb`` does, shortest key first) is a different crew, often one that
cannot run. Each test writes through HTTP and reads every place the mapping
comes back: the resource, its list, ``/crews/debug``, an execution's recorded
config and history, and the job a runner is handed.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from domain.context import Actor, acting_as
from interface.app import create_app
from interface.cli import COMMANDS
from interface.settings import Settings
from interface.wiring import Kasal, wire
from tests.fakes import FakeClock
from tests.ordered_crews import FORMS, OrderedCrew, in_order, ordered_crews, written

pytestmark = pytest.mark.anyio

# The quick start's crew: "research" is longer than "write", so jsonb put "write" first.
AGENTS = {"researcher": {"role": "Senior Researcher", "goal": "Find facts about {topic}",
                         "backstory": "An experienced researcher", "llm": "offline/echo"},
          "writer": {"role": "Technical Writer", "goal": "Explain {topic} clearly",
                     "backstory": "A precise writer", "llm": "offline/echo"}}
TASKS = {"research": {"description": "Research {topic} and list three facts", "expected_output": "Three facts",
                      "agent": "researcher"},
         "write": {"description": "Summarise {topic}", "expected_output": "One paragraph", "agent": "writer",
                   "context": ["research"]}}
INPUTS = {"topic": "event sourcing", "audience": "newcomers", "at": "now"}


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


def core_of(client: Any) -> Kasal:
    return client.app.state.kasal


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def runner_job(client: Any, group: str, execution_id: str) -> Any:
    """The job a runner is handed for an execution (what ``claim_next`` returns)."""
    service = core_of(client).services.executions

    def job() -> Any:
        with acting_as(Actor(group_id=group, actor="runner:test", role="operator")):
            return service.job(uuid.UUID(execution_id))

    return await anyio.to_thread.run_sync(job)


async def assert_execution_runs_in_order(client: Any, headers: dict[str, str], execution_id: str,
                                         agents: dict[str, Any], tasks: dict[str, Any]) -> None:
    history = await ok(await client.get(f"/api/v1/execution-history/{execution_id}", headers=headers))
    listed = (await ok(await client.get("/api/v1/execution-history", headers=headers)))["items"]
    job = await runner_job(client, headers["X-Group-Id"], execution_id)
    for config in (history["config"], next(i for i in listed if i["execution_id"] == execution_id)["config"]):
        assert in_order(config["tasks"]) == in_order(tasks)
        assert in_order(config["agents"]) == in_order(agents)
    assert in_order(job.tasks) == in_order(tasks) and in_order(job.agents) == in_order(agents)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(crew=ordered_crews(), form=st.sampled_from(FORMS))
async def test_any_crew_keeps_its_tasks_in_the_order_written(client: Any, crew: OrderedCrew, form: str) -> None:
    headers = {"X-Group-Id": f"order-{uuid.uuid4().hex[:12]}"}
    body = {"name": "Ordered", "agents_yaml": written(crew.agents, form), "tasks_yaml": written(crew.tasks, form)}

    created = await ok(await client.post("/api/v1/crews", json=body, headers=headers), 201)
    fetched = await ok(await client.get(f"/api/v1/crews/{created['id']}", headers=headers))
    listed = (await ok(await client.get("/api/v1/crews", headers=headers)))["items"]
    report = await ok(await client.post("/api/v1/crews/debug", json={"crew_id": created["id"]}, headers=headers))
    started = await ok(await client.post("/api/v1/executions", json={"crew_id": created["id"]}, headers=headers), 201)

    assert [item["id"] for item in listed] == [created["id"]]
    for read in (created, fetched, listed[0]):
        assert in_order(read["tasks_yaml"]) == in_order(body["tasks_yaml"])
        assert in_order(read["agents_yaml"]) == in_order(body["agents_yaml"])
        assert [(e["key"], e["config"]) for e in read["tasks_config"]] == list(crew.tasks.items())
    assert report["valid"] is True, report["errors"]
    assert report["tasks"] == list(crew.tasks) and report["agents"] == list(crew.agents)
    await assert_execution_runs_in_order(client, headers, started["execution_id"], crew.agents, crew.tasks)


async def test_the_quick_start_crew_debugs_valid_and_runs_research_before_write(client: Any) -> None:
    headers = {"X-Group-Id": "local"}
    for name, agent in (("Researcher", AGENTS["researcher"]), ("Writer", AGENTS["writer"])):
        await ok(await client.post("/api/v1/agents", json={"name": name, **agent}), 201)
    for name, task in (("Research", TASKS["research"]), ("Write", TASKS["write"])):
        await ok(await client.post("/api/v1/tasks", json={"name": name, **{k: v for k, v in task.items()
                                                                             if k != "context"}}), 201)
    crew = await ok(await client.post("/api/v1/crews", json={"name": "Quick start", "agents_yaml": AGENTS,
                                                            "tasks_yaml": TASKS}), 201)

    report = await ok(await client.post("/api/v1/crews/debug", json={"crew_id": crew["id"]}))
    started = await client.post("/api/v1/executions", json={"crew_id": crew["id"], "inputs": INPUTS})

    assert report["valid"] is True and report["errors"] == [], report["errors"]
    assert report["tasks"] == ["research", "write"] and report["agents"] == ["researcher", "writer"]
    execution_id = (await ok(started, 201))["execution_id"]
    await assert_execution_runs_in_order(client, headers, execution_id, AGENTS, TASKS)
    history = await ok(await client.get(f"/api/v1/execution-history/{execution_id}"))
    assert list(history["inputs"]) == list(INPUTS)


async def test_a_schedules_inline_crew_keeps_its_order_when_read_changed_and_fired(
    client: Any, clock: FakeClock,
) -> None:
    headers = {"X-Group-Id": "local"}
    body = {"name": "Nightly", "cron_expression": "0 9 * * *", "agents_yaml": AGENTS, "tasks_yaml": TASKS,
            "inputs": INPUTS}
    created = await ok(await client.post("/api/v1/scheduler/schedules", json=body), 201)
    path = f"/api/v1/scheduler/schedules/{created['id']}"

    changed = await ok(await client.put(path, json={"inputs": {**INPUTS, "topic": "projections"}}))
    core = core_of(client)
    outcomes = await core.scheduler.tick(at(2025, 5, 1, 9, 0))
    assert await anyio.to_thread.run_sync(core.projector.wait_sync, await core.run(core.store.max_position), 10)

    for read in (created, changed, await ok(await client.get(path)),
                 (await ok(await client.get("/api/v1/scheduler/schedules")))["items"][0]):
        assert in_order(read["tasks_yaml"]) == in_order(TASKS) and in_order(read["agents_yaml"]) == in_order(AGENTS)
    [fired] = outcomes
    assert fired.execution_id is not None, fired.skipped_reason
    await assert_execution_runs_in_order(client, headers, str(fired.execution_id), AGENTS, TASKS)


async def test_an_inline_runs_history_keeps_the_config_and_inputs_in_the_order_written(client: Any) -> None:
    headers = {"X-Group-Id": "local"}
    started = await ok(await client.post("/api/v1/executions", json={
        "agents_yaml": AGENTS, "tasks_yaml": TASKS, "inputs": INPUTS}), 201)

    await assert_execution_runs_in_order(client, headers, started["execution_id"], AGENTS, TASKS)
    history = await ok(await client.get(f"/api/v1/execution-history/{started['execution_id']}"))
    assert list(history["inputs"]) == list(INPUTS)


def table_texts(url: str) -> dict[str, list[str]]:
    """Every read-model row as PostgreSQL renders it: ``json`` columns as their stored text."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'rm\\_%' ORDER BY 1")]
        return {t: sorted(r[0] for r in conn.execute(f"SELECT x::text FROM {t} x")) for t in tables}


async def test_a_rebuild_gives_back_the_written_order_of_changed_documents(settings: Settings) -> None:
    write_first = {"write": {k: v for k, v in TASKS["write"].items() if k != "context"}, "research": TASKS["research"]}
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        crew = await ok(await client.post("/api/v1/crews", json={"name": "C", "agents_yaml": AGENTS,
                                                                "tasks_yaml": write_first}), 201)
        await ok(await client.put(f"/api/v1/crews/{crew['id']}", json={"description": "patched later"}))
        await ok(await client.put(f"/api/v1/crews/{crew['id']}", json={"tasks_yaml": TASKS}))
        await ok(await client.post("/api/v1/executions", json={"crew_id": crew["id"], "inputs": INPUTS}), 201)
    live = table_texts(settings.database_url)

    assert COMMANDS["projections"](argparse.Namespace(action="rebuild"), settings) == 0

    assert table_texts(settings.database_url) == live
    with psycopg.connect(settings.database_url) as conn:
        doc = conn.execute("SELECT doc::text FROM rm_crews WHERE id = %s", (crew["id"],)).fetchone()[0]
    assert in_order(json.loads(doc)["tasks_yaml"]) == in_order(TASKS)


async def test_a_database_of_the_jsonb_schema_is_rebuilt_in_the_written_order(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        crew = await ok(await client.post("/api/v1/crews", json={"name": "C", "agents_yaml": AGENTS,
                                                                "tasks_yaml": TASKS}), 201)
        started = await ok(await client.post("/api/v1/executions", json={"crew_id": crew["id"], "inputs": INPUTS}), 201)
    with psycopg.connect(settings.database_url) as conn:  # what a database of the jsonb schema holds
        conn.execute("ALTER TABLE rm_crews ALTER COLUMN doc TYPE jsonb USING doc::jsonb")
        conn.execute("ALTER TABLE rm_executions ALTER COLUMN config TYPE jsonb USING config::jsonb")
        conn.execute("UPDATE projection_tracking SET version = 1 WHERE name IN ('rm_crews', 'rm_executions')")

    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        report = await ok(await client.post("/api/v1/crews/debug", json={"crew_id": crew["id"]}))
        await assert_execution_runs_in_order(client, {"X-Group-Id": "local"}, started["execution_id"], AGENTS, TASKS)

    assert report["valid"] is True and report["tasks"] == ["research", "write"], report
    with psycopg.connect(settings.database_url) as conn:
        types = dict(conn.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
            " WHERE (table_name, column_name) IN (('rm_crews', 'doc'), ('rm_executions', 'config'))").fetchall())
    assert types == {"rm_crews.doc": "json", "rm_executions.config": "json"}
