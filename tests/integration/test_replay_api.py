"""Replays and reruns through the real runner and crew child.

A replay runs the original's configuration through CrewAI again with every
model and tool call answered from the original's recording: it must end
with the same task outputs and result, call nothing (a model's endpoint can
be gone and its key deleted), and fail with the call's position when the
run asks for something the recording does not hold. A rerun from a task
reuses the outputs before it, byte for byte, and runs the rest live.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from domain.context import Actor, acting_as
from interface.app import create_app
from interface.crew_runtime import CrewRuntime
from interface.settings import Settings
from interface.wiring import Kasal, wire
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]

FIRST_RUN_S = 120.0
OTHER = {"X-Group-Id": "other-apiary"}
AGENTS = {
    "counter": {"role": "Hive Counter", "goal": "Count the bees of {hive}", "backstory": "Precise.",
                "llm": "offline/echo", "tools": ["calculator"]},
    "writer": {"role": "Beekeeper's Scribe", "goal": "Write about {hive}", "backstory": "Clear.",
               "llm": "offline/echo"},
}
TASKS = {
    "count": {"description": "Count the frames of {hive} [use calculator: 12*3]", "expected_output": "A number",
              "agent": "counter"},
    "report": {"description": "Report on {hive}", "expected_output": "Two lines", "agent": "writer"},
    "summary": {"description": "Summarise the report on {hive}", "expected_output": "One line",
                "agent": "writer"},
}
CREW = {"agents_yaml": AGENTS, "tasks_yaml": TASKS, "inputs": {"hive": "plot 7"}}


@pytest.fixture
async def kasal(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[tuple[Kasal, Any]]:
    service = wire(settings.with_(run_workers=True), crew_runtime=runtime)
    async with AsyncTestClient(app=create_app(service), timeout=60) as client:
        yield service, client


async def run(client: Any, execution_id: str) -> dict[str, Any]:
    await wait_status(client, execution_id, TERMINAL, FIRST_RUN_S)
    return dict((await client.get(f"/api/v1/execution-history/{execution_id}")).json())


async def started(client: Any, path: str, body: Any = None) -> str:
    answer = await client.post(path, json=body) if body is not None else await client.post(path)
    assert answer.status_code == 201, answer.text
    assert set(answer.json()) >= {"execution_id", "status", "run_name"}
    return str(answer.json()["execution_id"])


async def spans(client: Any, execution_id: str, kind: str) -> list[dict[str, Any]]:
    trace = (await client.get(f"/api/v1/execution-trace/{execution_id}")).json()
    return [span for span in trace["spans"] if span["type"] == kind]


def outputs(history: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(entry["task"], entry["output"]) for entry in history["task_outputs"]]


async def test_a_replay_repeats_the_run_from_its_recording(kasal) -> None:
    _, client = kasal
    original = await run(client, await started(client, "/api/v1/executions", CREW))
    assert original["status"] == "COMPLETED", original

    replay_id = await started(client, f"/api/v1/executions/{original['execution_id']}/replay")
    replay = await run(client, replay_id)

    assert replay["status"] == "COMPLETED", replay
    assert replay["result"] == original["result"]
    assert outputs(replay) == outputs(original)
    assert replay["replay_of"] == {"id": original["execution_id"]}
    usage = replay["usage"]
    assert usage["llm_calls"] == usage["replayed_calls"] == original["usage"]["llm_calls"] > 0
    assert usage["cost"] == 0
    assert all(span["attributes"].get("replayed") for span in await spans(client, replay_id, "llm_call"))
    (tool,) = await spans(client, replay_id, "tool_usage")
    assert "36" in json.dumps(tool["attributes"]["output"])
    status = (await client.get(f"/api/v1/executions/{replay_id}")).json()
    listed = (await client.get("/api/v1/executions")).json()["items"]
    assert status["replay_of"] == {"id": original["execution_id"]}
    assert [item["replay_of"] for item in listed if item["id"] == replay_id] == [{"id": original["execution_id"]}]
    repeats = (await client.get(f"/api/v1/execution-history/{original['execution_id']}")).json()["repeats"]
    assert [(r["execution_id"], r["kind"], r["status"]) for r in repeats] == [(replay_id, "replay", "COMPLETED")]
    requested = (await client.get("/api/v1/events", params={"aggregate_id": replay_id})).json()["items"][0]
    assert requested["type"] == "execution.requested.v1" and requested["actor"] == repeats[0]["requested_by"]


async def test_a_rerun_from_a_task_reuses_the_outputs_before_it(kasal) -> None:
    _, client = kasal
    original = await run(client, await started(client, "/api/v1/executions", CREW))
    changed = {"agents": {"writer": {"goal": "Write a poem about {hive}"}}}

    rerun_id = await started(client, f"/api/v1/executions/{original['execution_id']}/rerun",
                             {"from_task": "report", "config": changed})
    rerun = await run(client, rerun_id)

    assert rerun["status"] == "COMPLETED", rerun
    assert rerun["rerun_of"] == {"id": original["execution_id"], "from_task": "report"}
    assert outputs(rerun)[0] == outputs(original)[0]  # the count, reused as it was
    assert [task for task, _ in outputs(rerun)] == ["count", "report", "summary"]
    assert outputs(rerun)[1] != outputs(original)[1]  # the writer's new goal is in its prompt
    calls = await spans(client, rerun_id, "llm_call")
    assert {span["attributes"]["task"] for span in calls} == {"report", "summary"}
    assert not await spans(client, rerun_id, "tool_usage")  # the count's calculator did not run again
    assert rerun["usage"]["llm_calls"] == len(calls)
    assert rerun["config"]["agents"]["writer"]["goal"] == "Write a poem about {hive}"


async def test_a_rerun_without_from_task_runs_everything_live(kasal) -> None:
    _, client = kasal
    original = await run(client, await started(client, "/api/v1/executions", CREW))

    rerun = await run(client, await started(client, f"/api/v1/executions/{original['execution_id']}/rerun",
                                            {"inputs": {"hive": "plot 9"}}))

    assert rerun["status"] == "COMPLETED" and rerun["rerun_of"]["from_task"] is None
    assert {span["attributes"]["task"] for span in await spans(client, rerun["execution_id"], "llm_call")} == set(
        TASKS)
    assert "plot 9" in json.dumps(outputs(rerun)) and rerun["inputs"] == {"hive": "plot 9"}


async def test_bad_reruns_and_replays_are_refused(kasal, settings) -> None:
    _, client = kasal
    original_id = await started(client, "/api/v1/executions", CREW)
    await run(client, original_id)

    unknown_task = await client.post(f"/api/v1/executions/{original_id}/rerun", json={"from_task": "nope"})
    unknown_field = await client.post(f"/api/v1/executions/{original_id}/rerun", json={"from_tsk": "report"})
    broken = await client.post(f"/api/v1/executions/{original_id}/rerun",
                               json={"config": {"agents": {"writer": {"role": ""}}}})
    other_group = await client.post(f"/api/v1/executions/{original_id}/replay", headers=OTHER)
    missing = await client.post("/api/v1/executions/00000000-0000-4000-8000-000000000000/replay")

    assert unknown_task.status_code == 422 and "count, report, summary" in unknown_task.text
    assert unknown_field.status_code == 400 or unknown_field.status_code == 422
    assert broken.status_code == 422, broken.text
    assert other_group.status_code == 404 and missing.status_code == 404


async def test_an_unfinished_run_cannot_be_replayed(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings))) as client:  # no runner: it stays PENDING
        pending = await started(client, "/api/v1/executions", CREW)
        answer = await client.post(f"/api/v1/executions/{pending}/replay")
        rerun = await client.post(f"/api/v1/executions/{pending}/rerun")
    assert answer.status_code == 409 and rerun.status_code == 409


async def test_a_replay_whose_configuration_was_changed_diverges(kasal) -> None:
    """The test-only path: a replay requested with another agent's goal asks for prompts never recorded."""
    service, client = kasal
    original = await run(client, await started(client, "/api/v1/executions", CREW))
    tampered = json.loads(json.dumps(AGENTS))
    tampered["writer"]["goal"] = "Write a limerick about {hive}"
    with acting_as(Actor("local", "test", "admin", "tampering")):
        requested = service.services.executions.request_execution(
            agents=tampered, tasks=TASKS, inputs={"hive": "plot 7"}, model="offline/echo",
            origin={"replay_of": original["execution_id"]})

    assert await service.projector.wait_for(requested.position, 10)  # recorded past the API: wait for the read models
    replay = await run(client, str(requested.execution_id))

    assert replay["status"] == "FAILED", replay
    assert "replay diverged at LLM call" in replay["error"] and "differs from the recorded call" in replay["error"]


class Endpoint:
    """An OpenAI-compatible server on loopback that answers, then fails when a prompt asks it to."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                endpoint.seen.append(body)
                prompt = json.dumps(body["messages"])
                if "collapse" in prompt:
                    self.send_error(500, "the hive collapsed")
                    return
                answer = json.dumps({
                    "id": "x", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant",
                        "content": f"Thought: done\nFinal Answer: call {len(endpoint.seen)} from the endpoint"}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    try:
        yield server
    finally:
        if server.thread.is_alive():
            server.stop()


async def provider_crew(client: Any, endpoint: Endpoint, last: str) -> dict[str, Any]:
    key = await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "value": "sk-replay-0001"})
    model = await client.post("/api/v1/models", json={
        "key": "gpt-4o-mini-hive", "model": "gpt-4o-mini", "provider": "openai", "api_base": endpoint.url,
        "api_key_name": "OPENAI_API_KEY"})
    assert key.status_code == 201 and model.status_code == 201, model.text
    agents = {name: {**agent, "llm": "gpt-4o-mini-hive", "tools": []} for name, agent in AGENTS.items()}
    tasks = {"count": {**TASKS["count"], "description": "Count the frames of {hive}"},
             "report": {**TASKS["report"], "description": last}}
    return {"key_id": key.json()["id"], "body": {"agents_yaml": agents, "tasks_yaml": tasks,
                                                 "inputs": {"hive": "plot 7"}}}


async def test_a_provider_run_replays_after_its_key_and_endpoint_are_gone(kasal, endpoint) -> None:
    _, client = kasal
    crew = await provider_crew(client, endpoint, "Report on {hive}")
    original = await run(client, await started(client, "/api/v1/executions", crew["body"]))
    assert original["status"] == "COMPLETED", original
    calls = len(endpoint.seen)
    assert (await client.delete(f"/api/v1/api-keys/{crew['key_id']}")).status_code in (200, 204)
    endpoint.stop()

    replay = await run(client, await started(client, f"/api/v1/executions/{original['execution_id']}/replay"))

    assert replay["status"] == "COMPLETED", replay
    assert replay["result"] == original["result"] and outputs(replay) == outputs(original)
    assert len(endpoint.seen) == calls == original["usage"]["llm_calls"]


async def test_a_replay_of_a_failed_run_fails_as_it_did(kasal, endpoint) -> None:
    _, client = kasal
    crew = await provider_crew(client, endpoint, "Report on the collapse of {hive}")
    original = await run(client, await started(client, "/api/v1/executions", crew["body"]))
    assert original["status"] == "FAILED", original
    endpoint.stop()

    replay = await run(client, await started(client, f"/api/v1/executions/{original['execution_id']}/replay"))

    assert replay["status"] == "FAILED"
    assert replay["error"] == original["error"]
    assert outputs(replay) == outputs(original)
