"""Cancelling executions, and another group never seeing one, through HTTP on PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from domain.execution import TransitionError
from domain.execution_progress import LlmCall
from tests.integration.execution_runs import T0, Runner, crew_script, run_to_completion, start

pytestmark = pytest.mark.anyio


# -- cancelling --------------------------------------------------------------


async def test_cancelling_a_pending_execution_cancels_it_at_once(client) -> None:
    started = await start(client)
    response = await client.post(f"/api/v1/executions/{started['execution_id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    history = (await client.get(f"/api/v1/execution-history/{started['execution_id']}")).json()
    assert history["timeline"][-1]["actor"] == "local-admin" and history["status"] == "CANCELLED"


async def test_cancelling_a_running_execution_asks_its_runner_to_stop(client) -> None:
    started = await start(client)
    runner = Runner(client)
    job = await runner.run_until_running()
    heard: list[str] = []
    runner.core.cancellations.register(job.execution_id, heard.append)
    response = await client.post(f"/api/v1/executions/{started['execution_id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"
    assert heard == ["Cancelled by local-admin"]
    shown = (await client.get(f"/api/v1/executions/{started['execution_id']}")).json()
    assert shown["status"] == "RUNNING" and shown["cancel_requested"]["actor"] == "local-admin"
    await runner.as_group("local", runner.service.cancel, job.execution_id, heard[0])
    with pytest.raises(TransitionError):
        await runner.complete(job.execution_id, "late result")
    shown = (await client.get(f"/api/v1/executions/{started['execution_id']}", headers=runner.fresh())).json()
    assert shown["status"] == "CANCELLED" and shown["result"] is None


async def test_cancelling_a_finished_execution_is_409_but_stop_says_not_running(client) -> None:
    execution_id, runner = await run_to_completion(client)
    headers = runner.fresh()
    assert (await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=headers)).status_code == 409
    for alias in ("stop", "force-stop"):
        response = await client.post(f"/api/v1/executions/{execution_id}/{alias}")
        assert response.status_code == 200 and "not running" in response.json()["message"]
    assert (await client.get(f"/api/v1/executions/{execution_id}")).json()["status"] == "COMPLETED"


async def test_force_stop_cancels_a_running_execution_at_once(client) -> None:
    started = await start(client)
    runner = Runner(client)
    await runner.run_until_running()
    response = await client.post(f"/api/v1/executions/{started['execution_id']}/force-stop", headers=runner.fresh())
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    assert (await client.get(f"/api/v1/executions/{started['execution_id']}")).json()["status"] == "CANCELLED"


# -- tenancy -------------------------------------------------------------------


async def a_stored_text(client: Any, runner: Runner, execution_id: str) -> str:
    """The sha256 of a text long enough to be kept outside the events, as its owner sees it."""
    job_id = uuid.UUID(execution_id)
    await runner.progress(job_id, [LlmCall(at=T0 + 4, model="offline/echo", prompt="P" * 50_000, response="ok",
                                           prompt_tokens=1, completion_tokens=1, latency_ms=1, cost=None,
                                           agent=None, task=None)])
    trace = (await client.get(f"/api/v1/execution-trace/{execution_id}", headers=runner.fresh())).json()
    prompts = [s["attributes"]["prompt"] for s in trace["spans"] if s["type"] == "llm_call"]
    return str(next(p["sha256"] for p in prompts if isinstance(p, dict) and p["size"] == 50_000))


async def test_another_groups_execution_is_404_on_every_path(client) -> None:
    started = await start(client)
    runner = Runner(client)
    job = await runner.run_until_running()
    execution_id = started["execution_id"]
    await runner.progress(job.execution_id, crew_script())
    sha = await a_stored_text(client, runner, execution_id)
    await runner.complete(job.execution_id, '{"answer": 42}')
    content = f"/api/v1/execution-trace/{execution_id}/content/{sha}"
    assert (await client.get(content, headers=runner.fresh())).status_code == 200
    other = {**runner.fresh(), "X-Group-Id": "other"}
    for path in (f"/api/v1/executions/{execution_id}", f"/api/v1/executions/{execution_id}/status",
                 f"/api/v1/execution-history/{execution_id}", f"/api/v1/execution-logs/{execution_id}",
                 f"/api/v1/execution-logs/{execution_id}/sse", f"/api/v1/sse/executions/{execution_id}/stream",
                 f"/api/v1/execution-trace/{execution_id}", f"/api/v1/execution-trace/{execution_id}/content/{sha}",
                 f"/api/v1/traces/job/{execution_id}", f"/api/v1/logs/executions/{execution_id}",
                 f"/api/v1/runs/{execution_id}/outputs"):
        assert (await client.get(path, headers=other)).status_code == 404, path
    for alias in ("cancel", "stop", "force-stop"):
        response = await client.post(f"/api/v1/executions/{execution_id}/{alias}", headers=other)
        assert response.status_code == 404, alias
    assert (await client.get("/api/v1/executions", headers=other)).json()["total"] == 0
    assert (await client.get("/api/v1/execution-history", headers=other)).json()["total"] == 0
    theirs = (await start(client, group="other"))["execution_id"]
    through_their_own = f"/api/v1/execution-trace/{theirs}/content/{sha}"
    assert (await client.get(through_their_own, headers=other)).status_code == 404
