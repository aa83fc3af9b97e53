"""Every stored field of agents, tasks and crews reaches the run, or is refused when written.

Runs go through the real crew child with the offline model, and what is
asserted is what a user reads back: the LLM requests the execution recorded
(``GET /execution-trace/{id}``: model, temperature, max tokens, system
prompt, prompt), how many there were, and the result. Values a run could
not honour are 422s naming each field in ``loc`` (documents) or a finding at
its path (inline YAML in ``POST /executions`` and ``/crews/debug``),
whatever else the body holds, while the defaults Kasal clients send pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = pytest.mark.anyio

API = "/api/v1"
FIRST_RUN_S = 120.0  # the first child waits until the forkserver has imported crewai
WRITER = {"role": "Writer", "goal": "Write about {topic}", "backstory": "Terse", "llm": "offline/echo"}
LINE = {"description": "Write one line about {topic}", "expected_output": "One line", "agent": "writer"}
SCHEMA = {"type": "object", "properties": {"headline": {"type": "string"}, "words": {"type": "integer"}},
          "required": ["headline", "words"]}
ADDER = {"tools": ["calculator"]}
ADDING = {"description": "Add [use calculator: 20+22] about {topic}"}


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """The service with its crew runner and real crew children."""
    async with AsyncTestClient(app=create_app(wire(settings.with_(run_workers=True))), timeout=60) as client:
        yield client


def inline(agent: dict[str, Any] | None = None, task: dict[str, Any] | None = None, **crew: Any) -> dict[str, Any]:
    return {"agents_yaml": {"writer": {**WRITER, **(agent or {})}}, "tasks_yaml": {"line": {**LINE, **(task or {})}},
            "inputs": {"topic": "tides"}, **crew}


async def run(client: AsyncTestClient[Any], body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run to the end: the execution as ``GET`` shows it, and the attributes of its LLM calls in order."""
    started = await client.post(f"{API}/executions", json=body)
    assert started.status_code == 201, started.text
    execution_id = started.json()["execution_id"]
    done = await wait_status(client, execution_id, TERMINAL, FIRST_RUN_S)
    spans = (await client.get(f"{API}/execution-trace/{execution_id}")).json()["spans"]
    calls = [span["attributes"] for span in spans if span["type"] == "llm_call"]
    for call in calls:
        call["prompt"] = await whole(client, execution_id, call["prompt"])
        call["request"]["system_prompt"] = await whole(client, execution_id, call["request"]["system_prompt"])
    return done, calls


async def whole(client: AsyncTestClient[Any], execution_id: str, ref: Any) -> str:
    """A recorded text in full: short ones are their preview, long ones are read back by hash."""
    if not isinstance(ref, dict):
        return str(ref or "")
    if ref.get("sha256") is None:
        return str(ref["preview"])
    answer = await client.get(f"{API}/execution-trace/{execution_id}/content/{ref['sha256']}")
    return str(answer.json()["text"])


async def run_all(client: AsyncTestClient[Any], bodies: dict[str, dict[str, Any]], failing: str = "") -> dict[str, Any]:
    """Several runs at once (one crew-runtime warm-up for all of them); all but ``failing`` must complete."""
    results: dict[str, Any] = {}

    async def one(name: str, body: dict[str, Any]) -> None:
        results[name] = await run(client, body)

    async with anyio.create_task_group() as group:
        for name, body in bodies.items():
            group.start_soon(one, name, body)
    for name, (done, _) in results.items():
        assert done["status"] == ("FAILED" if name == failing else "COMPLETED"), (name, done)
    return results


async def created(client: AsyncTestClient[Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{API}/{path}", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_agent_and_task_fields_shape_the_recorded_llm_requests(service: AsyncTestClient[Any]) -> None:
    agent = await created(service, "agents", {
        "name": "Writer", **WRITER, "temperature": 0.35,
        "system_template": "SYSTEM-TEMPLATE {{ .System }}", "prompt_template": "PROMPT-TEMPLATE {{ .Prompt }}",
        "response_template": "RESPONSE-TEMPLATE {{ .Response }} END-OF-ANSWER",
    })
    task = await created(service, "tasks", {"name": "Line", **LINE, "agent": agent["id"], "output_json": SCHEMA})
    crew = await created(service, "crews", {"name": "Canvas", "agent_ids": [agent["id"]], "task_ids": [task["id"]]})
    results = await run_all(service, {
        "canvas": {"crew_id": crew["id"], "inputs": {"topic": "tides"}},
        "default": inline(),
        "tuned": inline({"temperature": 1.25, "max_tokens": 77}),
        "no system prompt": inline({"use_system_prompt": False}),
        "tool as answer": inline({**ADDER, "tool_configs": {"calculator": {"result_as_answer": True}}}, ADDING),
        "tool then answer": inline(ADDER, ADDING),
        "json config": inline(task={"config": {"output_json": SCHEMA}}),
        "unknown tool option": inline({**ADDER, "tool_configs": {"calculator": {"n_results": 3}}}, ADDING),
    }, failing="unknown tool option")

    done, (call,) = results["canvas"]
    request = call["request"]
    assert request["temperature"] == 0.35
    assert call["prompt"].startswith("user: SYSTEM-TEMPLATE You are Writer.")
    assert "PROMPT-TEMPLATE" in call["prompt"] and "RESPONSE-TEMPLATE" in call["prompt"]
    assert request["system_prompt"] == ""  # templates make one user message
    assert set(done["result"]) == {"headline", "words"} and isinstance(done["result"]["words"], int)

    _, (plain,) = results["default"]
    assert plain["request"]["temperature"] not in (0.35, 1.25)  # the model's own
    assert plain["request"]["system_prompt"].startswith("You are Writer. Terse")
    _, (tuned,) = results["tuned"]
    assert (tuned["request"]["temperature"], tuned["request"]["max_tokens"]) == (1.25, 77)
    assert plain["request"]["max_tokens"] != 77
    _, (bare,) = results["no system prompt"]
    assert bare["request"]["system_prompt"] == "" and bare["prompt"].startswith("user: You are Writer.")

    answered, calls = results["tool as answer"]
    assert answered["result"] == {"value": "42"} and len(calls) == 1  # the tool's result ended the task
    _, calls = results["tool then answer"]
    assert len(calls) == 2
    json_done, _ = results["json config"]
    assert set(json_done["result"]) == {"headline", "words"}
    refused, calls = results["unknown tool option"]
    assert "tool 'calculator' has no option 'n_results'" in refused["error"] and calls == []


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_saved_crews_own_settings_reach_the_run(service: AsyncTestClient[Any]) -> None:
    planned = await created(service, "crews", {"name": "Planned", "planning": True, "verbose": True, "max_rpm": 600,
                                               **{k: v for k, v in inline().items() if k != "inputs"}})
    managed = await created(service, "crews", {
        "name": "Managed", "process": "hierarchical", "manager_llm": "offline/slow",
        "agents_yaml": {"writer": WRITER}, "tasks_yaml": {"line": {k: v for k, v in LINE.items() if k != "agent"}},
    })
    results = await run_all(service, {
        "planned": {"crew_id": planned["id"], "inputs": {"topic": "tides"}},
        "unplanned": inline(),
        "managed": {"crew_id": managed["id"], "inputs": {"topic": "tides"}},
    })
    _, calls = results["planned"]
    _, unplanned = results["unplanned"]
    assert len(calls) == len(unplanned) + 1  # the crew's planner asked its model first
    assert "plan" in calls[0]["prompt"].lower() and calls[-1]["agent"] == "Writer"
    _, managed_calls = results["managed"]
    assert managed_calls and all(c["model"] == "offline/slow" and c["agent"] == "Crew Manager" for c in managed_calls)


# -- refused when written ---------------------------------------------------

AGENT_REFUSED = {"allow_code_execution": [True], "system_template": ["S {{ .System }}"],
                 "response_template": ["R {{ .Response }} END", "R {{ .Response }}"],
                 "tool_configs": [{"search": {"n_results": 3}}, {"calculator": "fast"}]}
AGENT_HARMLESS = {"allow_code_execution": False, "memory": True, "cache": False, "temperature": 0.7,
                  "max_rpm": 10, "use_system_prompt": True, "tool_configs": {}, "function_calling_llm": None}
TASK_REFUSED = {"human_input": [True], "output_file": ["out/report.md", "ü.txt"],
                "output_json": ["ReportModel", {"type": "string"}],
                "config": [{"callback": "notify"}, {"guardrail": "under 100 words"}, {"human_input": True},
                           {"priority": 5}, {"max_retries": 7}]}
TASK_HARMLESS = {"human_input": False, "output_file": None, "output_json": SCHEMA, "markdown": True,
                 "async_execution": False, "config": {"output_json": None, "callback": None, "markdown": True,
                                                      "retry_on_fail": True, "max_retries": 3, "priority": 1}}


def refused_loc(answer: Any) -> set[tuple[Any, ...]]:
    assert answer.status_code == 422, answer.text
    return {tuple(issue["loc"][1:3]) for issue in answer.json()["detail"]}


def expected_loc(refused: dict[str, Any]) -> set[tuple[Any, ...]]:
    locs = set()
    for name, value in refused.items():
        if name in ("tool_configs", "config"):
            locs |= {(name, key) for key in value}
        else:
            locs.add((name,))
    return locs


def bodies(refusable: dict[str, list[Any]], harmless: dict[str, Any]) -> st.SearchStrategy[tuple[dict, dict]]:
    """(refused fields, the whole body's extra fields): harmless defaults mixed with refused values."""
    refused = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in refusable.items()})
    extra = st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in harmless.items()})
    return st.tuples(refused, extra)


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                max_size=30).filter(str.strip)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bodies(AGENT_REFUSED, AGENT_HARMLESS), name=NAMES)
async def test_an_agent_a_run_could_not_honour_is_refused_naming_each_field(client, case, name) -> None:
    refused, extra = case
    body = {"name": name, **WRITER, **extra, **refused, "tools": ["calculator"]}
    answer = await client.post(f"{API}/agents", json=body)
    if not refused:
        assert answer.status_code == 201, answer.text
        return
    assert refused_loc(answer) == expected_loc(refused), answer.text
    assert all(issue["msg"] for issue in answer.json()["detail"])


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=bodies(TASK_REFUSED, TASK_HARMLESS))
async def test_a_task_a_run_could_not_honour_is_refused_naming_each_field(client, case) -> None:
    refused, extra = case
    answer = await client.post(f"{API}/tasks", json={"name": "Line", **LINE, **extra, **refused})
    if not refused:
        assert answer.status_code == 201, answer.text
        return
    assert refused_loc(answer) == expected_loc(refused)


async def test_the_reasons_say_why_and_defaults_kasal_clients_send_pass(client) -> None:
    answer = await client.post(f"{API}/agents", json={**WRITER, "allow_code_execution": True, "memory": True})
    (issue,) = answer.json()["detail"]
    assert answer.status_code == 422 and issue["loc"] == ["body", "allow_code_execution"] and "sandbox" in issue["msg"]
    answer = await client.post(f"{API}/tasks", json={"name": "t", **LINE, "human_input": True})
    assert answer.status_code == 422 and "person" in answer.json()["detail"][0]["msg"]
    answer = await client.post(f"{API}/crews", json={"name": "c", "memory": True})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "memory"]
    assert "embedding" in answer.json()["detail"][0]["msg"]
    agent = await created(client, "agents", {**WRITER, "allow_code_execution": False, "memory": True})
    await created(client, "tasks", {"name": "t", **LINE, "human_input": False, "output_file": None, "config": {}})
    # Kasal's task form sends these in every task's config; they change nothing here.
    kasal_form = {"cache_response": False, "cache_ttl": 3600, "retry_on_fail": True, "max_retries": 3,
                  "timeout": None, "priority": 1, "error_handling": "default", "output_file": None,
                  "output_json": None, "output_pydantic": None, "validation_function": None,
                  "callback_function": None, "human_input": False, "markdown": False}
    await created(client, "tasks", {"name": "form", **LINE, "config": kasal_form})
    answer = await client.post(f"{API}/tasks", json={"name": "t2", **LINE, "config": {**kasal_form, "max_retries": 5}})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "config", "max_retries"]
    await created(client, "crews", {"name": "c", "memory": False, "planning": False})
    changed = await client.put(f"{API}/agents/{agent['id']}", json={"allow_code_execution": True})
    assert changed.status_code == 422
    assert (await client.get(f"{API}/agents/{agent['id']}")).json()["allow_code_execution"] is False


INLINE_REFUSED = [
    (inline({"allow_code_execution": True}), "agents_yaml.writer.allow_code_execution"),
    (inline({"system_template": "S {{ .System }}"}), "agents_yaml.writer.system_template"),
    (inline({"knowledge_sources": ["a.pdf"]}), "agents_yaml.writer.knowledge_sources"),
    (inline(task={"human_input": True}), "tasks_yaml.line.human_input"),
    (inline(task={"output_file": "report.md"}), "tasks_yaml.line.output_file"),
    (inline(task={"callback": "notify"}), "tasks_yaml.line.callback"),
    (inline(task={"output_pydantic": "Report"}), "tasks_yaml.line.output_pydantic"),
    (inline(task={"config": {"guardrail": "short"}}), "tasks_yaml.line.config.guardrail"),
]


@pytest.mark.parametrize(("body", "path"), INLINE_REFUSED, ids=[path for _, path in INLINE_REFUSED])
async def test_inline_yaml_is_refused_for_the_same_fields(client, body: dict[str, Any], path: str) -> None:
    answer = await client.post(f"{API}/executions", json=body)
    assert answer.status_code == 422, answer.text
    assert path in [error["field"] for error in answer.json()["errors"]]
    report = (await client.post(f"{API}/crews/debug", json={k: body[k] for k in ("agents_yaml", "tasks_yaml")})).json()
    assert not report["valid"] and path in [error["path"] for error in report["errors"]]
