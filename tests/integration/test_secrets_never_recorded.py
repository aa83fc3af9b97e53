"""Secrets never recorded, on PostgreSQL: a real crew whose prompts carry a secret input, provider
keys handed to a run, a schedule's secret inputs, and inputs nested too deep (a 422, never a 500).

"Recorded nowhere" is checked on the stored bytes of every table (the event log, the content
table, every read model) and on the text of every response about the run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import anyio
import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg import sql

from domain.context import Actor, acting_as
from domain.redaction import MAX_INPUT_DEPTH
from interface.app import create_app
from interface.wiring import Kasal, wire
from tests.fakes import FakeClock
from tests.fakes_runtime import FakeCrewRuntime
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-Pa55phrase-0xC0FFEE"
PROVIDER_KEY = "sk-live-abcdefghijklmnop0123456789"
AGENTS = {"auditor": {"role": "Access Auditor", "goal": "Check access for {system}", "backstory": "Careful.",
                      "llm": "offline/echo"}}
# Long enough that prompt and answer go to the content table, with the secret past their previews too.
TASKS = {"audit": {"description": "Log in to {system} using the password {db_password} and report. "
                                  + "Check every account, every role and every grant. " * 45
                                  + "Finally confirm that {db_password} still works.",
                   "expected_output": "A short report", "agent": "auditor"}}
RUN = {"agents_yaml": AGENTS, "tasks_yaml": TASKS, "inputs": {"system": "billing", "db_password": SECRET},
       "model": "offline/echo"}
SCHEDULES = "/api/v1/scheduler/schedules"


def mentions(database_url: str, needle: str) -> list[str]:
    """``table.column`` of every stored value (events, content, read models) containing ``needle``."""
    wanted, found = needle.encode(), set()
    with psycopg.connect(database_url) as conn:
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            cur = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
            columns = [column.name for column in cur.description or []]
            for row in cur:
                found.update(f"{table}.{name}" for name, value in zip(columns, row, strict=True)
                             if wanted in stored_bytes(value))
    return sorted(found)


def stored_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return msgspec.json.encode(value, enc_hook=str)


def kasal_of(client: Any) -> Kasal:
    return client.app.state.kasal


async def fresh(client: Any) -> dict[str, str]:
    """Headers for a read that must include everything written so far."""
    return {"X-Kasal-Min-Position": str(await anyio.to_thread.run_sync(kasal_of(client).store.max_position))}


async def responses_about(client: Any, execution_id: str) -> dict[str, str]:
    """Every read API's answer about one execution, texts behind its trace's references included."""
    headers = await fresh(client)
    paths = [f"/api/v1/executions/{execution_id}", f"/api/v1/executions/{execution_id}/status",
             "/api/v1/executions", f"/api/v1/execution-history/{execution_id}", "/api/v1/execution-history",
             f"/api/v1/execution-logs/{execution_id}", f"/api/v1/logs/executions/{execution_id}",
             f"/api/v1/runs/{execution_id}/outputs", f"/api/v1/execution-trace/{execution_id}",
             f"/api/v1/traces/job/{execution_id}"]
    texts = {}
    for path in paths:
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        texts[path] = response.text
    for sha in set(re.findall(r'"sha256":\s*"([0-9a-f]{64})"', texts[paths[8]])):
        path = f"/api/v1/execution-trace/{execution_id}/content/{sha}"
        texts[path] = (await client.get(path, headers=headers)).text
    return texts


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_secret_input_filled_into_a_real_crews_prompts_is_recorded_nowhere(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings.with_(run_workers=True)))) as client:
        started = await client.post("/api/v1/executions", json=RUN)
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        done = await wait_status(client, execution_id, TERMINAL, timeout=180)
        assert done["status"] == "COMPLETED", done
        texts = await responses_about(client, execution_id)
    assert [path for path, text in texts.items() if SECRET in text] == []
    assert mentions(settings.database_url, SECRET) == []
    # The echo model answered with its prompt, so the result shows where the secret was filled in.
    assert "Log in to billing using the password [REDACTED] and report" in texts[f"/api/v1/executions/{execution_id}"]
    assert any(path.startswith(f"/api/v1/execution-trace/{execution_id}/content/") and "[REDACTED]" in text
               for path, text in texts.items())
    assert "content.bytes" in mentions(settings.database_url, "Finally confirm that [REDACTED] still works")


async def test_provider_keys_handed_to_a_run_are_recorded_nowhere(settings) -> None:
    runtime = FakeCrewRuntime(result=lambda job: f"called the provider with {job.credentials.get('OPENAI_API_KEY')}")
    async with AsyncTestClient(app=create_app(wire(settings.with_(run_workers=True), crew_runtime=runtime))) as client:
        key = await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "key": PROVIDER_KEY})
        assert key.status_code == 201, key.text
        started = await client.post("/api/v1/executions", json={**RUN, "inputs": {"system": "billing",
                                                                                     "db_password": "-"}})
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        done = await wait_status(client, execution_id, TERMINAL, timeout=30)
        texts = await responses_about(client, execution_id)
    assert runtime.jobs[0].credentials["OPENAI_API_KEY"] == PROVIDER_KEY  # the crew did get the key
    assert done["result"] == {"value": "called the provider with [REDACTED]"}
    assert [path for path, text in texts.items() if PROVIDER_KEY in text] == []
    assert mentions(settings.database_url, PROVIDER_KEY) == []


async def test_a_schedules_secret_inputs_reach_its_runs_but_no_event_read_model_or_response(settings) -> None:
    clock = FakeClock(datetime(2025, 5, 1, 8, 0, tzinfo=UTC))
    kasal = wire(settings, clock=clock)
    body = {"name": "Nightly audit", "cron_expression": "0 9 * * *", "agents_yaml": AGENTS, "tasks_yaml": TASKS,
            "inputs": {"system": "billing", "db_password": SECRET}}
    async with AsyncTestClient(app=create_app(kasal)) as client:
        created = await client.post(SCHEDULES, json=body)
        assert created.status_code == 201, created.text
        shown, schedule_id = created.json()["inputs"], created.json()["id"]
        assert shown == {"system": "billing", "db_password": "[REDACTED]"}
        texts = [created.text]
        edited = await client.put(f"{SCHEDULES}/{schedule_id}", json={"inputs": {**shown, "system": "payroll"}})
        texts += [edited.text, (await client.patch(f"{SCHEDULES}/{schedule_id}/toggle")).text,
                  (await client.post(f"/api/v1/schedules/{schedule_id}/toggle")).text]
        for path in (SCHEDULES, f"{SCHEDULES}/{schedule_id}", "/api/v1/schedules", f"/api/v1/schedules/{schedule_id}"):
            texts.append((await client.get(path, headers=await fresh(client))).text)
        [outcome] = await kasal.scheduler.tick(datetime(2025, 5, 1, 9, 0, tzinfo=UTC))
        assert outcome.execution_id is not None, outcome.skipped_reason
        history = (await client.get(f"/api/v1/execution-history/{outcome.execution_id}",
                                    headers=await fresh(client))).json()
        assert history["inputs"] == {"system": "payroll", "db_password": "[REDACTED]"}
        texts += (await responses_about(client, str(outcome.execution_id))).values()

        def job_inputs() -> dict[str, Any]:
            with acting_as(Actor("local", "runner:test", "operator")):
                return kasal.services.executions.job(outcome.execution_id).inputs

        assert await anyio.to_thread.run_sync(job_inputs) == {"system": "payroll", "db_password": SECRET}
    assert [text for text in texts if SECRET in text] == []
    assert mentions(settings.database_url, SECRET) == []


def with_deep_inputs(body: dict[str, Any], levels: int) -> bytes:
    """``body`` as JSON with ``inputs`` nested ``levels`` deep, written as text (JSON encoders
    recurse, and a thousand levels is past their limit)."""
    deep = '"bottom"'
    for level in range(levels - 1):
        deep = f'{{"deeper": {deep}}}' if level % 2 else f"[{deep}]"
    inputs = f'"inputs": {{"system": "billing", "db_password": "-", "deep": {deep}}}}}'
    return msgspec.json.encode(body)[:-1] + (b", " if body else b"") + inputs.encode()


@pytest.mark.parametrize("levels", [MAX_INPUT_DEPTH + 1, 60, 1000])
async def test_inputs_nested_too_deep_are_a_422_for_runs_and_schedules(client, levels: int) -> None:
    schedule = {"name": "Deep", "cron_expression": "0 9 * * *", "agents_yaml": AGENTS, "tasks_yaml": TASKS}
    created = await client.post(SCHEDULES, json={**schedule, "inputs": {"system": "billing", "db_password": "-"}})
    assert created.status_code == 201, created.text
    run = {key: value for key, value in RUN.items() if key != "inputs"}
    json_body = {"content-type": "application/json"}
    answers = [
        await client.post("/api/v1/executions", content=with_deep_inputs(run, levels), headers=json_body),
        await client.post(SCHEDULES, content=with_deep_inputs(schedule, levels), headers=json_body),
        await client.put(f"{SCHEDULES}/{created.json()['id']}", content=with_deep_inputs({}, levels),
                         headers=json_body),
    ]
    assert [answer.status_code for answer in answers] == [422, 422, 422], [a.text[:300] for a in answers]
    if levels < 64:  # deeper bodies are refused before they are parsed, with the HTTP layer's own message
        assert all(f"nested deeper than {MAX_INPUT_DEPTH} levels" in answer.text for answer in answers)
