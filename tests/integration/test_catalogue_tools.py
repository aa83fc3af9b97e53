"""The catalogue's tools run: crewai-tools' implementations, driven by the offline model's tool steps.

Each test starts what the tool talks to on loopback (a web page for the
scraper, a search endpoint for SerperDevTool through its ``search_url``
configuration), runs a crew through the real runner and crew child, and
checks what the server saw and what the run recorded. Keys come from the
group's key store, never from the service's environment.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.crew_runtime import CrewRuntime
from interface.settings import Settings
from interface.wiring import wire
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]

GROUP_KEY = "serper-key-of-the-group-0001"
SERVICE_KEY = "serper-key-of-the-service-environment"
PAGE = "<html><body><h1>Hive report</h1><p>The hive at plot 7 holds 41,000 bees.</p></body></html>"
FIRST_RUN_S = 120.0


@dataclass
class Loopback:
    """A small HTTP server: a page at ``/hive`` and a Serper-shaped ``POST /search``."""

    url: str = ""
    seen: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def runtime() -> Iterator[CrewRuntime]:
    """A forkserver started while the service's own environment holds a Serper key (never to be used)."""
    os.environ["SERPER_API_KEY"] = SERVICE_KEY
    crew_runtime = CrewRuntime()
    try:
        assert crew_runtime.warm()
        yield crew_runtime
    finally:
        crew_runtime.close()
        os.environ.pop("SERPER_API_KEY", None)


@pytest.fixture
def web() -> Iterator[Loopback]:
    server = Loopback()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            server.seen.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None))
            self._reply(PAGE.encode(), "text/html")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            server.seen.append(("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if self.path == "/chat/completions":  # Perplexity's API
                answer = {"choices": [{"message": {"content": f"Cited answer on {body['messages'][0]['content']}"}}],
                          "citations": ["https://bees.example/cited"]}
                self._reply(json.dumps(answer).encode(), "application/json")
                return
            results = [{"title": f"Bee fact {n} about {body.get('q')}", "link": f"https://bees.example/{n}",
                        "snippet": "Bees dance.", "position": n} for n in range(1, 11)]
            self._reply(json.dumps({"organic": results, "searchParameters": {"q": body.get("q")}}).encode(),
                        "application/json")

        def log_message(self, *args: Any) -> None:
            """Quiet: the test reads ``seen``."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


async def _client(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[Any]:
    app = create_app(wire(settings.with_(run_workers=True), crew_runtime=runtime))
    async with AsyncTestClient(app=app, timeout=60) as client:
        yield client


@pytest.fixture
async def service(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[Any]:
    async for client in _client(settings, runtime):
        yield client


@pytest.fixture
async def open_service(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[Any]:
    """A service whose operator let web tools reach loopback and private addresses."""
    async for client in _client(settings.with_(tools_allow_private_urls=True), runtime):
        yield client


def crew(tool: str, marker: str, tool_configs: dict[str, Any] | None = None) -> dict[str, Any]:
    agent: dict[str, Any] = {"role": "Bee Researcher", "goal": "Learn about hives", "backstory": "Careful.",
                             "llm": "offline/echo", "tools": [tool]}
    if tool_configs:
        agent["tool_configs"] = {tool: tool_configs}
    return {
        "agents_yaml": {"researcher": agent},
        "tasks_yaml": {"look": {"description": f"Look it up [use {tool}: {marker}]",
                                "expected_output": "One line", "agent": "researcher"}},
    }


async def run(client: Any, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    started = await client.post("/api/v1/executions", json=body)
    assert started.status_code in (200, 201, 202), started.text
    execution_id = started.json()["execution_id"]
    done = await wait_status(client, execution_id, TERMINAL, FIRST_RUN_S)
    trace = (await client.get(f"/api/v1/execution-trace/{execution_id}")).json()
    return done, trace


def tool_spans(trace: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for span in trace["spans"] if span["type"] == "tool_usage"]


async def builtin_tool(client: Any, name: str) -> dict[str, Any]:
    tools = (await client.get("/api/v1/tools", params={"limit": 100})).json()["items"]
    (tool,) = [t for t in tools if t["name"] == name]
    return tool


async def test_the_scraper_reads_a_page_when_the_operator_allows_private_addresses(open_service, web) -> None:
    done, trace = await run(open_service, crew("ScrapeWebsiteTool", f"{web.url}/hive"))

    assert done["status"] == "COMPLETED", done
    assert [(method, path) for method, path, _, _ in web.seen] == [("GET", "/hive")]
    assert "41,000 bees" in json.dumps(done["result"])
    (span,) = tool_spans(trace)
    assert span["attributes"]["tool"] == "ScrapeWebsiteTool"


async def test_the_scraper_refuses_loopback_by_default(service, web) -> None:
    done, trace = await run(service, crew("ScrapeWebsiteTool", f"{web.url}/hive"))

    assert web.seen == []
    assert "41,000 bees" not in json.dumps(done)
    assert "private/reserved" in json.dumps(trace) + json.dumps(done)


async def test_serper_searches_with_the_groups_key_and_its_configuration(service, web) -> None:
    await service.post("/api/v1/api-keys", json={"name": "SERPER_API_KEY", "value": GROUP_KEY})
    serper = await builtin_tool(service, "SerperDevTool")
    changed = await service.put(f"/api/v1/tools/{serper['id']}",
                                json={"config": {"search_url": f"{web.url}/search", "n_results": 3}})
    assert changed.status_code == 200, changed.text

    done, trace = await run(service, crew("SerperDevTool", "waggle dance", {"country": "de"}))

    assert done["status"] == "COMPLETED", done
    ((method, path, headers, body),) = web.seen
    assert (method, path) == ("POST", "/search")
    assert headers["x-api-key"] == GROUP_KEY
    assert (body["q"], body["num"], body["gl"]) == ("waggle dance", 3, "de")
    assert "Bee fact 3 about waggle dance" in json.dumps(done["result"])
    assert "Bee fact 4" not in json.dumps(done["result"])
    assert GROUP_KEY not in json.dumps(trace) + json.dumps(done)


async def test_a_tool_whose_key_is_missing_is_refused_before_the_run(service, web) -> None:
    body = crew("SerperDevTool", "waggle dance")

    started = await service.post("/api/v1/executions", json=body)
    debug = await service.post("/api/v1/crews/debug", json=body)

    assert started.status_code == 422, started.text
    assert "SERPER_API_KEY" in started.text
    assert debug.status_code == 200 and not debug.json()["valid"]
    assert any("SERPER_API_KEY" in error["message"] for error in debug.json()["errors"])
    assert web.seen == []


async def test_tools_that_cannot_run_here_are_listed_as_unavailable_and_refused(service) -> None:
    selenium = await builtin_tool(service, "SeleniumScrapingTool")
    scraper = await builtin_tool(service, "ScrapeWebsiteTool")
    serper = await builtin_tool(service, "SerperDevTool")

    body = crew("SeleniumScrapingTool", "https://bees.example")
    started = await service.post("/api/v1/executions", json=body)
    debug = (await service.post("/api/v1/crews/debug", json=body)).json()

    assert (selenium["available"], scraper["available"], serper["available"]) == (False, True, True)
    assert "browser" in selenium["unavailable_reason"] and scraper["unavailable_reason"] is None
    assert serper["required_api_keys"] == ["SERPER_API_KEY"]
    assert started.status_code == 422 and "browser" in started.text
    assert not debug["valid"] and any("browser" in e["message"] for e in debug["errors"])


async def test_perplexity_answers_through_its_configured_endpoint_with_the_groups_key(service, web) -> None:
    await service.post("/api/v1/api-keys", json={"name": "PERPLEXITY_API_KEY", "value": "pplx-group-key-0001"})
    perplexity = await builtin_tool(service, "PerplexityTool")
    changed = await service.put(f"/api/v1/tools/{perplexity['id']}",
                                json={"config": {"base_url": web.url, "model": "sonar-pro"}})
    assert changed.status_code == 200, changed.text

    done, _ = await run(service, crew("PerplexityTool", "swarming season"))

    assert done["status"] == "COMPLETED", done
    ((method, path, headers, body),) = web.seen
    assert (method, path, headers["authorization"]) == ("POST", "/chat/completions", "Bearer pplx-group-key-0001")
    assert (body["model"], body["messages"][0]["content"], body["temperature"]) == ("sonar-pro", "swarming season", 0.1)
    assert "Cited answer on swarming season" in json.dumps(done["result"])
