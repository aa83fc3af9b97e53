"""A self-hosted model (vLLM, Ollama, any OpenAI-compatible server) reached through its ``api_base``.

The test starts a small OpenAI-compatible HTTP server on loopback that records
every request; a group stores a model pointing at it, a key for it and extra
headers, and then a crew runs through the real runner and crew child, and
generation runs in the service process. LiteLLM's own network code makes the
calls (no ``mock_response``): what the server saw is what a real endpoint
would see.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.wiring import wire
from tests.integration.execution_runs import TERMINAL, wait_status, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(240)]

KEY = "sk-selfhosted-0123456789abcdef"
ANSWER = "The local model says: honeybees dance to share directions."
GENERATED = {"name": "Local Analyst", "role": "Analyst", "goal": "Analyse hives", "backstory": "Runs on-prem."}
FIRST_RUN_S = 120.0  # the first child waits until the forkserver has imported crewai


@dataclass
class Seen:
    """One request the server answered."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class OpenAICompatible:
    """What the loopback server saw, and where it listens."""

    url: str
    requests: list[Seen] = field(default_factory=list)


def _answer(body: dict[str, Any]) -> str:
    """A generated agent for generation's prompt, else the agent's answer."""
    prompt = json.dumps(body.get("messages", []))
    return json.dumps(GENERATED) if "You generate configurations" in prompt else ANSWER


@pytest.fixture
def server() -> Iterator[OpenAICompatible]:
    seen = OpenAICompatible(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                seen.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path != "/v1/chat/completions":
                self.send_error(404)
                return
            reply = json.dumps({
                "id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": _answer(body)}}],
                "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            """Quiet: the test reads ``requests``."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    seen.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def model(server: OpenAICompatible) -> dict[str, Any]:
    return {
        "key": "local-qwen", "model": "qwen2.5-7b-instruct", "provider": "openai", "api_base": server.url,
        "api_key_name": "LOCAL_LLM_KEY", "extra_headers": {"X-Tenant": "hive-7", "OpenAI-Organization": "bees"},
        "temperature": 0.25, "max_output_tokens": 333, "parameters": {"top_p": 0.9, "seed": 42},
    }


CREW = {
    "agents_yaml": {"researcher": {"role": "Hive Researcher", "goal": "Explain {topic}",
                                   "backstory": "Keeps bees.", "llm": "local-qwen"}},
    "tasks_yaml": {"explain": {"description": "Explain how {topic} share directions",
                               "expected_output": "One sentence", "agent": "researcher"}},
    "inputs": {"topic": "honeybees"},
}


async def store_model(client: Any, server: OpenAICompatible) -> None:
    stored = await client.post("/api/v1/api-keys", json={"name": "LOCAL_LLM_KEY", "value": KEY})
    assert stored.status_code == 201, stored.text
    created = await client.post("/api/v1/models", json=model(server))
    assert created.status_code == 201, created.text
    shown = created.json()
    assert (shown["api_base"], shown["litellm_model"]) == (server.url, "openai/qwen2.5-7b-instruct")
    assert KEY not in created.text


def assert_configured_request(seen: Seen) -> None:
    assert seen.path == "/v1/chat/completions"
    body = seen.body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("qwen2.5-7b-instruct", 0.25, 333)
    assert (body["top_p"], body["seed"]) == (0.9, 42)
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert (seen.headers["x-tenant"], seen.headers["openai-organization"]) == ("hive-7", "bees")


async def test_a_crew_runs_on_a_self_hosted_model_with_its_configuration(settings, server) -> None:
    app = create_app(wire(settings.with_(run_workers=True)))
    async with AsyncTestClient(app=app, timeout=60) as client:
        await store_model(client, server)
        started = await client.post("/api/v1/executions", json=CREW)
        assert started.status_code in (200, 201, 202), started.text
        execution_id = started.json()["execution_id"]
        done = await wait_status(client, execution_id, TERMINAL, FIRST_RUN_S)
        trace = await wait_until(
            client, execution_id, lambda body: any(s["type"] == "llm_call" for s in body["spans"]),
            "show its LLM call", path="/api/v1/execution-trace/{}",
        )
        logs = (await client.get(f"/api/v1/execution-logs/{execution_id}")).text

    assert done["status"] == "COMPLETED", done
    assert ANSWER in json.dumps(done["result"]), done["result"]
    (call,) = server.requests
    assert_configured_request(call)
    system, user = call.body["messages"][0], call.body["messages"][-1]
    assert system["role"] == "system" and system["content"].startswith("You are Hive Researcher.")
    assert "Keeps bees." in system["content"]
    assert user["role"] == "user" and "Explain how honeybees share directions" in user["content"]

    (span,) = [s for s in trace["spans"] if s["type"] == "llm_call"]
    request = span["attributes"]["request"]
    assert (request["model"], request["temperature"], request["max_tokens"]) == (
        "openai/qwen2.5-7b-instruct", 0.25, 333)
    assert request["api_base"] == server.url
    assert request["headers"] == ["OpenAI-Organization", "X-Tenant"]
    assert {"top_p": 0.9, "seed": 42}.items() <= request["parameters"].items()
    assert request["system_prompt"]["preview"].startswith("You are Hive Researcher.")
    assert span["attributes"]["prompt_tokens"] == 21
    for shown in (json.dumps(trace), json.dumps(done), logs):
        assert KEY not in shown and "hive-7" not in shown


async def test_generation_reaches_the_self_hosted_model_the_same_way(client, server) -> None:
    await store_model(client, server)

    answer = await client.post("/api/v1/agent-generation/generate",
                               json={"description": "Someone who studies beehives", "model": "local-qwen"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["agent"]["role"] == GENERATED["role"]
    (call,) = server.requests
    assert_configured_request(call)
    assert "Someone who studies beehives" in call.body["messages"][-1]["content"]


async def test_a_self_hosted_model_gets_no_key_but_the_one_it_names(client, server) -> None:
    """The group's OpenAI key stays with OpenAI: a model on another endpoint naming no key sends none."""
    await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "value": KEY})
    created = await client.post("/api/v1/models", json={**model(server), "api_key_name": None})
    assert created.status_code == 201, created.text
    assert created.json()["api_key_name"] is None

    answer = await client.post("/api/v1/agent-generation/generate",
                               json={"description": "Someone who studies beehives", "model": "local-qwen"})

    assert answer.status_code == 200, answer.text
    (call,) = server.requests
    assert KEY not in json.dumps(call.headers)


@pytest.mark.parametrize("bad", [
    {"parameters": {"api_key": KEY}}, {"parameters": {"api_base": "http://elsewhere/v1"}},
    {"parameters": {"temperature": 0.2, "no_such_argument": 1}}, {"extra_headers": {"Authorization": f"Bearer {KEY}"}},
    {"extra_headers": {"X-Custom": KEY}}, {"extra_headers": {"X-Number": 5}}, {"api_base": f"http://u:{KEY}@h/v1"},
    {"api_base": "file:///etc/passwd"},
], ids=["api_key", "api_base_param", "unknown_param", "auth_header", "key_value", "non_string", "userinfo", "file"])
async def test_a_model_that_cannot_be_called_safely_is_refused_with_422_and_nothing_echoed(
    client, server, bad: dict[str, Any],
) -> None:
    created = await client.post("/api/v1/models", json={**model(server), **bad})
    changed = await client.put("/api/v1/models/gpt-4o", json=bad)

    for answer in (created, changed):
        assert answer.status_code == 422, answer.text
        assert KEY not in answer.text
        assert answer.json()["detail"], answer.json()
    assert (await client.get("/api/v1/models/local-qwen")).status_code == 404


async def test_a_group_can_point_a_built_in_model_at_its_own_endpoint(client, server) -> None:
    changed = await client.put("/api/v1/models/gpt-4o", json={"api_base": server.url, "extra_headers": {"X-A": "1"}})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["api_base"], changed.json()["litellm_model"]) == (server.url, "openai/gpt-4o")

    other = (await client.get("/api/v1/models/gpt-4o", headers={"X-Group-Id": "another-group"})).json()
    assert other.get("api_base") is None


async def test_moving_a_model_to_another_endpoint_drops_its_key_unless_named_again(client, server) -> None:
    created = await client.post("/api/v1/models", json={"key": "mine", "model": "gpt-4o-mini", "provider": "openai"})
    assert created.json()["api_key_name"] == "OPENAI_API_KEY"

    moved = await client.put("/api/v1/models/mine", json={"api_base": server.url})
    named = await client.put("/api/v1/models/mine", json={"api_base": server.url, "api_key_name": "LOCAL_LLM_KEY"})

    assert moved.status_code == 200, moved.text
    assert moved.json()["api_key_name"] is None
    assert named.json()["api_key_name"] == "LOCAL_LLM_KEY"
