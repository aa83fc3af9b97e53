"""Comparing executions, and the offline model whose runs differ: real crews through the real runner.

Each run is a one-task crew in a real crew child. Two runs of one crew on
``offline/echo`` are the same everywhere; a run with another goal and input
differs at exactly those paths and in its output; two runs on
``offline/random`` differ only in what the model said. Another group's
execution is not there to compare.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.crew_runtime import CrewRuntime
from interface.settings import Settings
from interface.wiring import wire
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]

API = "/api/v1"
FIRST_RUN_S = 120.0  # the first child waits until the forkserver has imported crewai
GOAL = "Find facts about {topic}"
OTHER_GROUP = {"X-Group-Id": "other-apiary"}


def crew(*, goal: str = GOAL, topic: str = "bees", llm: str = "offline/echo") -> dict[str, Any]:
    return {
        "agents_yaml": {"researcher": {"role": "Researcher", "goal": goal, "backstory": "Careful.", "llm": llm}},
        "tasks_yaml": {"research": {"description": "Research {topic} in one line", "expected_output": "One line",
                                    "agent": "researcher"}},
        "inputs": {"topic": topic},
    }


@pytest.fixture
async def service(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(wire(settings.with_(run_workers=True), crew_runtime=runtime))
    async with AsyncTestClient(app=app, timeout=60) as client:
        yield client


async def run_all(client: AsyncTestClient[Any], bodies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Start every run, then wait for each to end; the executions as ``GET`` shows them."""
    ids: dict[str, str] = {}
    for name, body in bodies.items():
        started = await client.post(f"{API}/executions", json=body)
        assert started.status_code == 201, started.text
        ids[name] = started.json()["execution_id"]
    done: dict[str, dict[str, Any]] = {}

    async def finish(name: str) -> None:
        done[name] = await wait_status(client, ids[name], TERMINAL, FIRST_RUN_S)

    async with anyio.create_task_group() as group:
        for name in ids:
            group.start_soon(finish, name)
    return done


async def compared(client: AsyncTestClient[Any], a: str, b: str, **kwargs: Any) -> Any:
    return await client.get(f"{API}/executions/{a}/compare/{b}", **kwargs)


async def test_runs_compare_by_config_inputs_task_outputs_and_result(service) -> None:
    runs = await run_all(service, {
        "first": crew(), "again": crew(), "changed": crew(goal="Find sources on {topic}", topic="wasps"),
        "random": crew(llm="offline/random"), "random_again": crew(llm="offline/random"),
    })
    assert {name: run["status"] for name, run in runs.items()} == dict.fromkeys(runs, "COMPLETED"), runs
    first, again, changed = runs["first"]["id"], runs["again"]["id"], runs["changed"]["id"]

    same = (await compared(service, first, again)).json()
    assert (same["a"], same["b"]) == (first, again)
    assert same["config"] == [] and same["inputs"] == {"same": True, "changed": []}
    assert [(t["task"], t["same"]) for t in same["tasks"]] == [("research", True)]
    assert same["result_same"] is True and same["status"] == {"a": "COMPLETED", "b": "COMPLETED"}
    assert same["result"]["a"] == same["result"]["b"]
    assert same["result"]["a"]["preview"] in str(runs["first"]["result"])
    assert same["usage"]["a"]["llm_calls"] == runs["first"]["usage"]["llm_calls"] >= 1

    answer = await compared(service, first, changed)
    assert answer.status_code == 200, answer.text
    diff = answer.json()
    assert diff["config"] == [{"path": "agents.researcher.goal", "a": GOAL, "b": "Find sources on {topic}"}]
    assert diff["inputs"] == {"same": False, "changed": [{"name": "topic", "a": "bees", "b": "wasps"}]}
    (task,) = diff["tasks"]
    assert task["task"] == "research" and task["same"] is False
    assert task["a"]["status"] == task["b"]["status"] == "completed"
    assert "bees" in task["a"]["output"]["preview"] and "wasps" in task["b"]["output"]["preview"]
    assert diff["result_same"] is False

    swapped = (await compared(service, changed, first)).json()
    assert swapped["config"] == [{"path": "agents.researcher.goal", "a": "Find sources on {topic}", "b": GOAL}]

    random_results = [runs[name]["result"] for name in ("random", "random_again")]
    assert random_results[0] != random_results[1]
    assert all("(nonce " in str(result) for result in random_results), random_results
    chance = (await compared(service, runs["random"]["id"], runs["random_again"]["id"])).json()
    assert chance["config"] == [] and chance["inputs"]["same"] is True
    assert [(t["task"], t["same"]) for t in chance["tasks"]] == [("research", False)]
    assert chance["result_same"] is False


async def test_only_the_callers_groups_executions_can_be_compared(service) -> None:
    runs = await run_all(service, {"ours": crew()})
    ours = runs["ours"]["id"]
    started = await service.post(f"{API}/executions", json=crew(), headers=OTHER_GROUP)
    assert started.status_code == 201, started.text
    theirs = started.json()["execution_id"]
    unknown = "00000000-0000-4000-8000-000000000000"

    for a, b, missing in ((ours, theirs, theirs), (theirs, ours, theirs), (ours, unknown, unknown)):
        answer = await compared(service, a, b)
        assert answer.status_code == 404, answer.text
        assert missing in answer.json()["detail"]
    own_side = await compared(service, theirs, theirs, headers=OTHER_GROUP)
    assert own_side.status_code == 200 and own_side.json()["config"] == []
