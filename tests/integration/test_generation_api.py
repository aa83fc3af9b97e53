"""AI generation through HTTP on PostgreSQL: offline end to end, messy real-provider answers, failures.

Real-provider cases use a real model name (``gpt-4o-mini``) and a key stored
through the API; the answer text is scripted with LiteLLM's mock response
through the service's real ``complete`` (``tests.fakes.ScriptedCompletion``),
so model routing and per-call credentials are the production path.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import litellm
import pytest
from litestar.testing import AsyncTestClient

from application.ports import ModelClient, ModelCompletion
from interface.app import create_app
from interface.model_client import LiteLLMModelClient
from interface.settings import Settings
from interface.wiring import wire
from tests.fakes import FakeModelClient, ScriptedCompletion

pytestmark = pytest.mark.anyio

SECRET = "sk-test-GENERATION-0123456789abcdef"
AGENT = {"name": "Trip Planner", "role": "Travel Planner", "goal": "Plan trips that fit the budget",
         "backstory": "Has planned hundreds of trips", "tools": ["calculator"]}
AGENT_JSON = json.dumps(AGENT, indent=2)
AGENT_URL = "/api/v1/agent-generation/generate"
TASK_URL = "/api/v1/task-generation/generate"
CREW_URL = "/api/v1/crew-generation/generate"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class SwappableModelClient:
    """The model client the app is wired with: LiteLLM, until a test puts its own in ``model_client``."""

    def __init__(self) -> None:
        self.model_client: ModelClient = LiteLLMModelClient()

    def complete(self, model: str, messages: Sequence[Mapping[str, Any]], credentials: Mapping[str, str], *,
                 mock_response: str | None = None, call: Any = None) -> ModelCompletion:
        return self.model_client.complete(model, messages, credentials, mock_response=mock_response, call=call)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Any]:
    async with AsyncTestClient(app=create_app(wire(settings, model_client=SwappableModelClient()))) as test_client:
        yield test_client


def _model(client: Any) -> SwappableModelClient:
    return client.app.state.kasal.services.generation.model_client


async def _store_openai_key(client: Any) -> None:
    response = await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "service": "openai",
                                                            "key": SECRET})
    assert response.status_code == 201, response.text


def _script(client: Any, *replies: str) -> ScriptedCompletion:
    scripted = ScriptedCompletion(*replies)
    _model(client).model_client = LiteLLMModelClient(scripted)
    return scripted


# -- offline, end to end -----------------------------------------------------------

async def test_offline_agent_generation_is_deterministic_and_follows_the_description(client) -> None:
    body = {"description": "An agent that audits invoices with the calculator", "model": "offline/echo"}
    first = await client.post(AGENT_URL, json=body)
    assert first.status_code == 200, first.text
    assert first.json() == (await client.post(AGENT_URL, json=body)).json()
    agent = first.json()["agent"]
    assert set(agent) == {"name", "role", "goal", "backstory", "tools"}
    assert "Invoices" in agent["name"] and agent["tools"] == ["calculator"]
    other = await client.post(AGENT_URL, json={**body, "description": "An agent that plans gardens"})
    assert other.json()["agent"]["name"] != agent["name"]


async def test_offline_task_generation_answers_the_contract_shape(client) -> None:
    response = await client.post(TASK_URL, json={"description": "Summarise customer feedback",
                                                 "model": "offline/echo", "agent": "Analyst"})
    assert response.status_code == 200, response.text
    task = response.json()["task"]
    assert set(task) == {"name", "description", "expected_output", "tools"}
    assert "Summarise customer feedback" in task["description"]


async def test_generating_a_crew_without_saving_creates_nothing(client) -> None:
    response = await client.post(CREW_URL, json={"description": "Write a blog post about tea",
                                                 "model": "offline/echo"})
    assert response.status_code == 200, response.text
    crew = response.json()
    assert "crew_id" not in crew and len(crew["agents"]) == 2
    assert crew["tasks"][1]["agent"] == crew["agents"][1]["name"]
    assert crew["tasks"][1]["context"] == [crew["tasks"][0]["name"]]
    assert (await client.get("/api/v1/crews")).json()["total"] == 0
    assert (await client.get("/api/v1/agents")).json()["total"] == 0


async def test_a_saved_crew_is_ordinary_definitions_made_by_the_caller_and_runs_at_once(client) -> None:
    response = await client.post(CREW_URL, json={"description": "Research the history of tea",
                                                 "model": "offline/echo", "save": True})
    assert response.status_code == 201, response.text
    saved = response.json()
    assert response.headers["Location"] == f"/api/v1/crews/{saved['crew_id']}"
    crew = (await client.get(f"/api/v1/crews/{saved['crew_id']}")).json()
    assert crew["agent_ids"] == saved["agent_ids"] and crew["task_ids"] == saved["task_ids"]
    tasks = [(await client.get(f"/api/v1/tasks/{t}")).json() for t in saved["task_ids"]]
    assert [t["agent_id"] for t in tasks] == saved["agent_ids"]
    assert tasks[1]["context"] == [saved["task_ids"][0]]
    agent = (await client.get(f"/api/v1/agents/{saved['agent_ids'][0]}")).json()
    assert agent["llm"] == "offline/echo"
    by_hand = (await client.post("/api/v1/agents", json={"role": "r", "goal": "g", "backstory": "b"})).json()
    assert agent["created_by"] == by_hand["created_by"] == crew["created_by"]

    started = await client.post("/api/v1/executions", json={"crew_id": saved["crew_id"]})
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "PENDING"


async def test_saving_the_same_crew_twice_numbers_the_second_name(client) -> None:
    body = {"description": "Plan a garden", "model": "offline/echo", "save": True, "name": "Garden"}
    first = (await client.post(CREW_URL, json=body)).json()
    second = (await client.post(CREW_URL, json=body)).json()
    names = [(await client.get(f"/api/v1/crews/{c['crew_id']}")).json()["name"] for c in (first, second)]
    assert names == ["Garden", "Garden (2)"]


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_generated_crew_runs_to_completed_with_the_offline_model(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings.with_(run_workers=True)))) as client:
        saved = (await client.post(CREW_URL, json={"description": "Explain event sourcing briefly",
                                                   "model": "offline/echo", "save": True})).json()
        started = (await client.post("/api/v1/executions", json={"crew_id": saved["crew_id"]})).json()
        deadline = time.monotonic() + 150
        while True:
            execution = (await client.get(f"/api/v1/executions/{started['execution_id']}")).json()
            if execution["status"] in TERMINAL or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert execution["status"] == "COMPLETED", execution


# -- a real provider's messy answers -------------------------------------------------

MESSY = {
    "code fence": f"Here you go:\n```json\n{AGENT_JSON}\n```",
    "think block": f"<think>The user wants {{a planner}}. Tools? calculator.</think>\n{AGENT_JSON}",
    "prose around": f"Sure! Based on your description:\n{AGENT_JSON}\nLet me know if you need changes.",
    "trailing commas": AGENT_JSON.replace('"calculator"', '"calculator",').removesuffix("\n}") + ",\n}",
}


@pytest.mark.parametrize("answer", MESSY.values(), ids=MESSY.keys())
async def test_messy_answers_from_a_real_provider_are_read(client, answer: str) -> None:
    await _store_openai_key(client)
    scripted = _script(client, answer)
    response = await client.post(AGENT_URL, json={"description": "Plan cheap trips", "model": "gpt-4o-mini"})
    assert response.status_code == 200, response.text
    assert response.json() == {"agent": AGENT}
    (seen,) = scripted.calls
    assert seen.model == "gpt-4o-mini" and seen.credentials["openai"] == SECRET
    assert seen.mock_response is None  # a real provider is never given a canned answer
    assert "Plan cheap trips" in seen.messages[-1]["content"]


async def test_an_invalid_answer_is_retried_once_with_the_reason(client) -> None:
    await _store_openai_key(client)
    scripted = _script(client, '{"name": "Trip Planner", "role": "Travel Planner"}', AGENT_JSON)
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-4o-mini"})
    assert response.status_code == 200, response.text
    assert "goal" in scripted.calls[1].messages[-1]["content"]


async def test_an_answer_still_invalid_after_the_retry_is_a_bad_gateway(client) -> None:
    await _store_openai_key(client)
    _script(client, "I cannot do that.", "Still no JSON, sorry.")
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-4o-mini"})
    assert response.status_code == 502
    body = response.json()
    assert body["type"] == "model_output_invalid"
    assert "did not return a usable agent after 2 attempts" in body["detail"]
    assert "no JSON object" in body["detail"]


async def test_tools_are_kept_only_when_they_exist_and_are_enabled(client) -> None:
    await _store_openai_key(client)
    tools = (await client.get("/api/v1/tools")).json()["items"]
    serper = next(t for t in tools if t["name"] == "SerperDevTool")
    assert (await client.patch(f"/api/v1/tools/{serper['id']}/toggle-enabled")).status_code == 200
    scripted = _script(client, json.dumps({**AGENT, "tools": ["SerperDevTool", "NoSuchTool", "CALCULATOR"]}))
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-4o-mini"})
    assert response.json()["agent"]["tools"] == ["calculator"]
    offered = scripted.calls[0].messages[-1]["content"]
    assert '"calculator"' in offered and "SerperDevTool" not in offered


async def _offered_tools(client: Any, reply: dict[str, Any], **request: Any) -> tuple[list[str], Any]:
    """The tools the model was offered (through a template that shows only them) and the agent it made."""
    template = {"name": "generate_agent", "template": "Wanted: {description}\nTools: {tools}"}
    assert (await client.post("/api/v1/templates", json=template)).status_code == 201
    model = FakeModelClient(json.dumps(reply))
    _model(client).model_client = model
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "offline/echo", **request})
    assert response.status_code == 200, response.text
    (seen,) = model.calls
    return json.loads(seen.messages[-1]["content"].partition("Tools: ")[2]), response.json()["agent"]


async def test_generation_offers_only_the_enabled_tools_this_deployment_can_run(client) -> None:
    tools = {t["name"]: t for t in (await client.get("/api/v1/tools")).json()["items"]}
    for name in ("SeleniumScrapingTool", "GithubSearchTool"):  # listed and enabled, but nothing here runs them
        assert tools[name]["enabled"] and not tools[name]["available"]
    reply = {**AGENT, "tools": ["SeleniumScrapingTool", "GithubSearchTool", "ScrapeWebsiteTool", "calculator"]}
    offered, agent = await _offered_tools(client, reply)
    assert offered == sorted((n for n, t in tools.items() if t["enabled"] and t["available"]), key=str.casefold)
    assert "ScrapeWebsiteTool" in offered and "calculator" in offered
    assert "SeleniumScrapingTool" not in offered and "GithubSearchTool" not in offered
    assert agent["tools"] == ["ScrapeWebsiteTool", "calculator"]


async def test_asking_for_a_tool_that_cannot_run_here_leaves_only_the_runnable_ones(client) -> None:
    reply = {**AGENT, "tools": ["SeleniumScrapingTool", "calculator"]}
    offered, agent = await _offered_tools(client, reply, tools=["SeleniumScrapingTool", "calculator"])
    assert offered == ["calculator"]
    assert agent["tools"] == ["calculator"]


async def test_a_provider_failure_is_a_bad_gateway_with_its_message_and_no_secret(client) -> None:
    await _store_openai_key(client)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise litellm.RateLimitError(message=f"Rate limit reached for key {SECRET}", llm_provider="openai",
                                     model="gpt-4o-mini")

    _model(client).model_client = LiteLLMModelClient(failing)
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-4o-mini"})
    assert response.status_code == 502
    assert response.json()["type"] == "model_provider_error"
    assert "Rate limit reached" in response.text and SECRET not in response.text and "GENERATION" not in response.text


# -- models, keys, groups and templates -----------------------------------------------

async def test_an_unknown_model_is_unprocessable(client) -> None:
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-nonexistent"})
    assert response.status_code == 422
    assert response.json()["detail"] == "Unknown model 'gpt-nonexistent'"


async def test_a_disabled_model_is_unprocessable(client) -> None:
    assert (await client.patch("/api/v1/models/gpt-4o-mini/toggle", json={"enabled": False})).status_code == 200
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-4o-mini"})
    assert response.status_code == 422 and "disabled" in response.json()["detail"]


async def test_a_model_without_a_key_names_the_key_to_add(client) -> None:
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-4o-mini"})
    assert response.status_code == 422
    assert "OPENAI_API_KEY" in response.json()["detail"]


async def test_another_groups_key_is_not_used(client) -> None:
    await _store_openai_key(client)
    _script(client, AGENT_JSON)
    response = await client.post(AGENT_URL, json={"description": "Plan trips", "model": "gpt-4o-mini"},
                                 headers={"X-Group-Id": "other"})
    assert response.status_code == 422 and "OPENAI_API_KEY" in response.json()["detail"]


async def test_the_groups_own_template_is_the_prompt(client) -> None:
    template = {"name": "generate_agent", "template": "House style. Wanted: {description}. Tools: {tools}"}
    assert (await client.post("/api/v1/templates", json=template)).status_code == 201
    model = FakeModelClient(AGENT_JSON)
    _model(client).model_client = model
    await client.post(AGENT_URL, json={"description": "Plan trips", "model": "offline/echo"})
    assert model.calls[0].messages[-1]["content"].startswith("House style. Wanted: Plan trips. Tools: [")


async def test_task_generation_tells_the_model_about_the_agent(client) -> None:
    model = FakeModelClient(json.dumps({"name": "T", "description": "D", "expected_output": "O"}))
    _model(client).model_client = model
    agent = {"name": "Ana", "role": "Data Analyst", "goal": "Find trends"}
    response = await client.post(TASK_URL, json={"description": "Analyse sales", "model": "offline/echo",
                                                 "agent": agent})
    assert response.status_code == 200, response.text
    prompt = model.calls[0].messages[-1]["content"]
    assert "Role: Data Analyst" in prompt and "Goal: Find trends" in prompt


async def test_a_request_without_a_description_is_unprocessable(client) -> None:
    response = await client.post(AGENT_URL, json={"model": "offline/echo"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "description"]
