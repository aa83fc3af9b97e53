"""Executions through HTTP on PostgreSQL: starting, reading, history, logs, traces.

``Runner`` (tests/integration/execution_runs.py) plays the runner's part, and
every read API is checked against what it did. Cancelling and tenancy are in
test_execution_cancel_and_tenancy.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import anyio
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from domain.context import Actor
from domain.execution import Execution
from domain.execution_progress import (
    LlmCall,
    LogLine,
)
from interface.app import create_app
from interface.wiring import wire
from projections.engine import Projector
from projections.execution_logs import ExecutionLogsProjection
from projections.execution_trace import ExecutionTraceProjection
from projections.executions import ExecutionsProjection
from tests.integration.execution_runs import AGENTS, INLINE, T0, TASKS, Runner, run_to_completion, start

pytestmark = pytest.mark.anyio

# -- starting ----------------------------------------------------------------


async def test_starting_an_execution_answers_201_pending_at_once(client) -> None:
    response = await client.post("/api/v1/executions", json=INLINE)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {"execution_id": body["execution_id"], "status": "PENDING",
                    "message": "Execution started successfully", "run_name": "research"}
    assert response.headers["location"] == f"/api/v1/executions/{body['execution_id']}"
    shown = (await client.get(f"/api/v1/executions/{body['execution_id']}")).json()
    assert shown["status"] == "PENDING" and shown["result"] is None and shown["model"] == "offline/echo"
    listed = (await client.get("/api/v1/executions")).json()["items"]
    assert [e["execution_id"] for e in listed] == [body["execution_id"]]


async def test_an_inline_crew_may_be_yaml_text(client) -> None:
    body = {"agents_yaml": "writer:\n  role: Writer\n  goal: Write\n  backstory: Writes.\n",
            "tasks_yaml": "draft:\n  description: Draft a note\n  expected_output: A note\n  agent: writer\n"}
    assert (await start(client, body))["run_name"] == "draft"


async def test_placeholders_without_inputs_are_422_listing_them(client) -> None:
    response = await client.post("/api/v1/executions", json={**INLINE, "inputs": {}})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "inputs.topic", "message": "no value for placeholder {topic}"}]


async def test_a_crew_that_cannot_run_is_422_with_the_findings(client) -> None:
    tasks = {"research": {**TASKS["research"], "agent": "nobody"}}
    response = await client.post("/api/v1/executions", json={**INLINE, "tasks_yaml": tasks})
    assert response.status_code == 422
    assert any(e["field"] == "tasks_yaml.research.agent" for e in response.json()["errors"])


async def test_a_request_without_a_crew_is_422(client) -> None:
    assert (await client.post("/api/v1/executions", json={"inputs": {}})).status_code == 422


async def test_an_unknown_crew_is_404(client) -> None:
    for crew_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await client.post("/api/v1/executions", json={"crew_id": crew_id})).status_code == 404


async def test_a_saved_crew_runs_from_its_config_and_stays_linked(client) -> None:
    crew = (await client.post("/api/v1/crews", json={"name": "Research Team", "agents_yaml": AGENTS,
                                                      "tasks_yaml": TASKS})).json()
    started = await start(client, {"crew_id": crew["id"], "inputs": {"topic": "AI"}})
    history = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()
    assert history["crew_id"] == crew["id"] and history["crew_version"] == crew["version"]
    assert history["config"]["agents"]["researcher"]["role"] == "Senior Researcher"
    listed = (await client.get(f"/api/v1/executions?crew_id={crew['id']}")).json()
    assert [e["execution_id"] for e in listed["items"]] == [started["execution_id"]]


async def test_a_canvas_crew_runs_from_its_agent_and_task_documents(client) -> None:
    agent = (await client.post("/api/v1/agents", json={"name": "Scout", "role": "Scout", "goal": "Look around",
                                                       "backstory": "Sharp eyes", "llm": "offline/echo"})).json()
    task = (await client.post("/api/v1/tasks", json={"name": "Scan the area", "description": "Scan",
                                                     "expected_output": "A list", "agent_id": agent["id"]})).json()
    crew = (await client.post("/api/v1/crews", json={"name": "Canvas", "agent_ids": [agent["id"]],
                                                      "task_ids": [task["id"]]})).json()
    started = await start(client, {"crew_id": crew["id"]})
    assert started["run_name"] == "Scan the area"
    config = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()["config"]
    assert config["agents"] == {"scout": {**config["agents"]["scout"], "role": "Scout"}}
    assert config["tasks"]["scan_the_area"]["agent"] == "scout"


async def test_secret_inputs_are_redacted_everywhere_but_reach_the_runner(client) -> None:
    started = await start(client, {**INLINE, "inputs": {"topic": "AI", "SERPER_API_KEY": "serper-123"}})
    shown = (await client.get(f"/api/v1/executions/{started['execution_id']}")).json()
    assert shown["inputs"] == {"topic": "AI", "SERPER_API_KEY": "[REDACTED]"}
    store = client.app.state.kasal.store
    assert all(b"serper-123" not in n.state for n in store.recorder.select_notifications(start=1, limit=10_000))
    job = await Runner(client).claim()
    assert job.inputs["SERPER_API_KEY"] == "serper-123"


async def test_operators_may_start_and_cancel_executions(settings) -> None:
    class Operator:
        async def authenticate(self, headers: Any, correlation_id: str) -> Actor:
            return Actor(group_id="ops", actor="op@example.com", role="operator", correlation_id=correlation_id)

    async with AsyncTestClient(app=create_app(wire(settings, authenticator=Operator()))) as operator:
        started = await start(operator, group="ops")
        assert (await operator.post(f"/api/v1/executions/{started['execution_id']}/cancel")).status_code == 200
        agent = {"role": "r", "goal": "g", "backstory": "b"}
        assert (await operator.post("/api/v1/agents", json=agent)).status_code == 403


# -- reading -----------------------------------------------------------------


async def test_a_completed_execution_shows_result_usage_and_times(client) -> None:
    execution_id, runner = await run_to_completion(client)
    shown = (await client.get(f"/api/v1/executions/{execution_id}", headers=runner.fresh())).json()
    assert shown["status"] == "COMPLETED" and shown["result"] == {"answer": 42} and shown["error"] is None
    assert shown["usage"] == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42, "cost": 0.002,
                              "llm_calls": 1}
    assert shown["created_at"] <= shown["started_at"] <= shown["completed_at"]


async def test_results_are_normalised_the_way_kasal_does(client) -> None:
    runner = Runner(client)
    cases = [('{"a": 1}', {"a": 1}), ("plain text", {"value": "plain text"}), (["x", "y"], {"items": ["x", "y"]}),
             ("[1, 2]", {"items": [1, 2]}), ("42", {"value": "42"})]
    for result, expected in cases:
        started = await start(client)
        job = await runner.run_until_running()
        running = (await client.get(f"/api/v1/executions/{started['execution_id']}", headers=runner.fresh())).json()
        assert running["status"] == "RUNNING" and running["result"] is None
        await runner.complete(job.execution_id, result)
        shown = (await client.get(f"/api/v1/executions/{started['execution_id']}", headers=runner.fresh())).json()
        assert shown["result"] == expected


async def test_a_failed_execution_shows_its_error(client) -> None:
    started = await start(client)
    runner = Runner(client)
    job = await runner.run_until_running()
    await runner.as_group("local", runner.service.fail, job.execution_id, "LLM quota exceeded")
    shown = (await client.get(f"/api/v1/executions/{started['execution_id']}", headers=runner.fresh())).json()
    assert (shown["status"], shown["error"], shown["result"]) == ("FAILED", "LLM quota exceeded", None)


async def test_listing_filters_by_status_in_any_case(client) -> None:
    done, runner = await run_to_completion(client)
    waiting = (await start(client))["execution_id"]
    for status, expected in (("completed", [done]), ("Pending", [waiting]), (None, [waiting, done])):
        query = f"?status={status}" if status else ""
        page = (await client.get(f"/api/v1/executions{query}", headers=runner.fresh())).json()
        assert [e["execution_id"] for e in page["items"]] == expected and page["total"] == len(expected)
    page = (await client.get("/api/v1/executions?limit=1&offset=1")).json()
    assert page["items"][0]["execution_id"] == done and page["has_more"] is False and page["total"] == 2
    assert (await client.get("/api/v1/executions?status=bogus")).status_code == 422


async def test_logs_come_in_order_and_page_by_seq(client) -> None:
    execution_id, runner = await run_to_completion(client)
    first = (await client.get(f"/api/v1/execution-logs/{execution_id}?limit=1", headers=runner.fresh())).json()
    assert [(i["seq"], i["message"]) for i in first["items"]] == [(1, "Crew started")]
    assert first["has_more"] is True and first["total"] == 2 and first["last_seq"] == 1
    rest = (await client.get(f"/api/v1/execution-logs/{execution_id}?after={first['last_seq']}")).json()
    assert [(i["seq"], i["level"], i["source"], i["message"]) for i in rest["items"]] == [
        (2, "INFO", "crew", "Crew finished")]
    assert rest["has_more"] is False


async def test_long_texts_are_kept_whole_outside_small_events(client) -> None:
    started = await start(client)
    runner = Runner(client)
    job = await runner.run_until_running()
    long_line, prompt = "L" * 30_000, "P" * 200_000
    await runner.progress(job.execution_id, [
        LogLine(at=T0, message=long_line),
        LlmCall(at=T0 + 1, model="offline/echo", prompt=prompt, response="ok", prompt_tokens=1, completion_tokens=1,
                latency_ms=1, cost=None, agent=None, task=None),
        LogLine(at=T0 + 2, message="a NUL\x00 is dropped, not fatal" + "\x00" * 3000),
    ])
    execution_id = started["execution_id"]
    logs = (await client.get(f"/api/v1/execution-logs/{execution_id}", headers=runner.fresh())).json()
    assert [item["message"] for item in logs["items"]] == [long_line, "a NUL is dropped, not fatal"]
    llm = next(s for s in (await client.get(f"/api/v1/execution-trace/{execution_id}")).json()["spans"]
               if s["type"] == "llm_call")
    reference = llm["attributes"]["prompt"]
    assert reference["size"] == 200_000 and reference["preview"] == prompt[:len(reference["preview"])]
    whole = await client.get(f"/api/v1/execution-trace/{execution_id}/content/{reference['sha256']}")
    assert whole.json()["text"] == prompt
    sizes = [len(n.state) for n in runner.core.store.recorder.select_notifications(start=1, limit=10_000)]
    assert max(sizes) < 16 * 1024


async def test_the_trace_nests_spans_in_time_order_with_durations(client) -> None:
    execution_id, runner = await run_to_completion(client)
    trace = (await client.get(f"/api/v1/execution-trace/{execution_id}", headers=runner.fresh())).json()
    spans = {s["type"]: s for s in trace["spans"] if s["type"] != "state"}
    assert spans["crew"]["parent_span_id"] == "execution"
    assert spans["task"]["parent_span_id"] == spans["crew"]["span_id"]
    assert spans["agent"]["parent_span_id"] == spans["task"]["span_id"]
    assert spans["llm_call"]["parent_span_id"] == spans["agent"]["span_id"]
    assert spans["tool_usage"]["parent_span_id"] == spans["agent"]["span_id"]
    assert spans["task"]["duration_ms"] == pytest.approx(2100.0)
    assert spans["llm_call"]["duration_ms"] == pytest.approx(400.0)
    assert spans["llm_call"]["attributes"]["model"] == "offline/echo"
    assert spans["execution"]["status"] == "completed" and spans["execution"]["ended_at"] is not None
    assert [s["name"] for s in trace["spans"] if s["type"] == "state"] == ["PENDING", "PREPARING", "RUNNING",
                                                                           "COMPLETED"]
    starts = [datetime.fromisoformat(s["started_at"].replace("Z", "+00:00")) for s in trace["spans"]]
    assert starts == sorted(starts)


async def test_history_timeline_says_who_moved_the_execution_and_why(client) -> None:
    execution_id, runner = await run_to_completion(client)
    history = (await client.get(f"/api/v1/execution-history/{execution_id}", headers=runner.fresh())).json()
    assert [(t["status"], t["actor"], t["message"]) for t in history["timeline"]] == [
        ("PENDING", "local-admin", "Execution requested"), ("PREPARING", "runner:runner-1", "Preparing crew"),
        ("RUNNING", "runner:runner-1", "Crew started"), ("COMPLETED", "runner:runner-1", "Execution completed")]
    assert history["inputs"] == {"topic": "AI"} and history["result"] == {"answer": 42}
    assert [(o["task"], o["status"], o["output"]["preview"]) for o in history["task_outputs"]] == [
        ("research", "completed", "The report")]
    listed = (await client.get("/api/v1/execution-history?status=COMPLETED")).json()
    assert [h["execution_id"] for h in listed["items"]] == [execution_id]


async def test_history_equals_folding_the_events_from_scratch(client) -> None:
    execution_id, runner = await run_to_completion(client)
    shown = (await client.get(f"/api/v1/execution-history/{execution_id}", headers=runner.fresh())).json()
    folded = runner.core.store.repository.get(uuid.UUID(execution_id))
    assert isinstance(folded, Execution)
    expected = folded.history()
    for key in ("created_at", "started_at", "completed_at"):
        assert shown.pop(key).replace("Z", "+00:00") == expected.pop(key).isoformat()
    assert {k: v for k, v in shown.items() if k in expected} == expected


async def test_kasal_paths_answer_in_kasals_shapes(client) -> None:
    execution_id, runner = await run_to_completion(client)
    status = (await client.get(f"/api/v1/executions/{execution_id}/status", headers=runner.fresh())).json()
    assert status["status"] == "COMPLETED"
    newest_first = (await client.get(f"/api/v1/logs/executions/{execution_id}")).json()
    assert [(log["seq"], log["content"]) for log in newest_first] == [(2, "Crew finished"), (1, "Crew started")]
    outputs = (await client.get(f"/api/v1/runs/{execution_id}/outputs")).json()
    assert [log["content"] for log in outputs["logs"]] == ["Crew started", "Crew finished"]
    traces = (await client.get(f"/api/v1/traces/job/{execution_id}")).json()
    assert traces["job_id"] == execution_id
    kinds = {t["event_type"] for t in traces["traces"]}
    assert {"crew_completed", "task_completed", "agent_execution", "llm_call", "tool_usage"} <= kinds
    later = (await client.get(f"/api/v1/traces/job/{execution_id}?since_id=3")).json()["traces"]
    assert [t["id"] for t in later] == [t["id"] for t in traces["traces"] if t["id"] > 3]
    history = (await client.get("/api/v1/executions/history")).json()
    assert [h["execution_id"] for h in history["items"]] == [execution_id]


async def test_rebuilding_the_execution_read_models_gives_the_same_rows(client) -> None:
    execution_id, runner = await run_to_completion(client)
    cancelled = (await start(client))["execution_id"]
    await client.post(f"/api/v1/executions/{cancelled}/cancel")
    await client.get(f"/api/v1/executions/{execution_id}", headers=runner.fresh())
    tables = ("rm_executions", "rm_execution_logs", "rm_execution_spans")

    def rows() -> dict[str, list[Any]]:
        with psycopg.connect(runner.core.database_url) as conn:
            return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall() for t in tables}

    live = await anyio.to_thread.run_sync(rows)
    runner.core.projector.stop()
    projections = [ExecutionsProjection(), ExecutionLogsProjection(), ExecutionTraceProjection()]
    rebuilt = Projector(runner.core.database_url, runner.core.store, projections)
    await anyio.to_thread.run_sync(rebuilt.rebuild)
    assert await anyio.to_thread.run_sync(rows) == live
    assert len(live["rm_executions"]) == 2 and live["rm_execution_logs"] and live["rm_execution_spans"]
