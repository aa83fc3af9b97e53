"""Replays and reruns as properties over random crews, through the real runner and crew child.

Whatever the crew (agents on ``offline/random`` or ``offline/echo``, tools,
context lists, placeholders, a lone async task), a replay ends exactly as
the original did, answering every model call from the recording; a rerun
from the k-th task reuses the outputs before it byte for byte and runs the
rest live, so an ``offline/random`` task's output changes while an
``offline/echo`` task whose prompt is unchanged answers as before. Two live
runs of an all-``offline/random`` crew differ, which is what makes the
replay property meaningful.

Async tasks are generated only where crewai's rules allow them without
ambiguity: never last and never next to another async task, so each runs
alone in its parallel batch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.crew_runtime import CrewRuntime
from interface.settings import Settings
from interface.wiring import Kasal, wire
from tests.integration.execution_runs import TERMINAL, wait_status

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(600)]

RUN_S = 120.0
RANDOM, ECHO = "offline/random", "offline/echo"
TOOLS = ("calculator", "current_datetime")
PROPERTY = hypothesis_settings(max_examples=6, deadline=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass(frozen=True)
class Crew:
    """A generated crew, with what a test needs to know about how each task's prompt is made."""

    agents: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    inputs: dict[str, str]

    @property
    def body(self) -> dict[str, Any]:
        return {"agents_yaml": self.agents, "tasks_yaml": self.tasks, "inputs": self.inputs}

    @property
    def keys(self) -> list[str]:
        return list(self.tasks)

    def model(self, task: str) -> str:
        return str(self.agents[self.tasks[task]["agent"]]["llm"])

    def reads_the_clock(self, task: str) -> bool:
        return "[use current_datetime:" in self.tasks[task]["description"]

    def describe(self) -> None:
        """The crew in full when an example fails, and events for ``--hypothesis-show-statistics``."""
        note(f"crew: {json.dumps(self.body)}")
        event(f"{len(self.agents)} agents, {len(self.tasks)} tasks")
        for label, found in (("async task", any(t.get("async_execution") for t in self.tasks.values())),
                             ("context list", any("context" in t for t in self.tasks.values())),
                             ("calculator", any("[use calculator" in t["description"] for t in self.tasks.values())),
                             ("current_datetime", any(map(self.reads_the_clock, self.tasks))),
                             ("both models", {a["llm"] for a in self.agents.values()} == {RANDOM, ECHO})):
            if found:
                event(label)

    def context(self, task: str) -> list[str]:
        """The tasks whose outputs are in ``task``'s prompt, as crewai 1.x builds it in a sequential crew:
        the named ones, else every earlier one for a synchronous task and none for an async one (crewai
        passes an async task its ``last_sync_output``, which a live run never sets)."""
        spec = self.tasks[task]
        if "context" in spec:
            return list(spec["context"])
        if spec.get("async_execution"):
            return []
        return self.keys[: self.keys.index(task)]


@st.composite
def crews(draw: st.DrawFn, models: Sequence[str] = (RANDOM, ECHO)) -> Crew:
    """1–4 agents and 1–5 sequential tasks, with tool markers only where the agent has the tool."""
    topic = draw(st.sampled_from(["plot 7", "the north meadow", "hive {b}", "clover"]))
    agents: dict[str, dict[str, Any]] = {}
    for index in range(draw(st.integers(1, 4))):
        tools = draw(st.lists(st.sampled_from(TOOLS), unique=True, max_size=2))
        placeholder = draw(st.booleans())
        agents[f"keeper{index}"] = {
            "role": f"Keeper {index}" + (" of {topic}" if placeholder else ""),
            "goal": "Tend {topic}" if draw(st.booleans()) else "Tend the hives",
            "backstory": "Careful.", "llm": draw(st.sampled_from(models)), "tools": tools,
        }
    count = draw(st.integers(1, 5))
    tasks: dict[str, dict[str, Any]] = {}
    for index in range(count):
        agent = draw(st.sampled_from(sorted(agents)))
        task: dict[str, Any] = {"description": _description(draw, index, agents[agent]["tools"]),
                                "expected_output": "A line", "agent": agent}
        earlier = list(tasks)
        if earlier and draw(st.booleans()):
            chosen = draw(st.lists(st.sampled_from(earlier), unique=True, min_size=1))
            task["context"] = [key for key in earlier if key in chosen]
        previous_async = bool(earlier) and tasks[earlier[-1]].get("async_execution", False)
        if index < count - 1 and not previous_async and draw(st.integers(0, 4)) == 0:
            task["async_execution"] = True
        tasks[f"step{index}"] = task
    return Crew(agents, tasks, {"topic": topic})


def _description(draw: st.DrawFn, index: int, tools: list[str]) -> str:
    text = f"Step {index}: look after " + ("{topic}" if draw(st.booleans()) else "the bees")
    tool = draw(st.sampled_from([None, *tools]))
    if tool == "calculator":
        text += f" [use calculator: {draw(st.integers(1, 99))}*{draw(st.integers(1, 99))}]"
    elif tool == "current_datetime":
        text += " [use current_datetime: ]"  # its output changes with time: a replay must repeat the recorded one
    return text


@pytest.fixture
async def kasal(settings: Settings, runtime: CrewRuntime) -> AsyncIterator[tuple[Kasal, Any]]:
    service = wire(settings.with_(run_workers=True), crew_runtime=runtime)
    async with AsyncTestClient(app=create_app(service), timeout=60) as client:
        yield service, client


async def started(client: Any, path: str, body: Any = None) -> str:
    answer = await client.post(path, json=body) if body is not None else await client.post(path)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["execution_id"])


async def run(client: Any, execution_id: str) -> dict[str, Any]:
    await wait_status(client, execution_id, TERMINAL, RUN_S)
    return dict((await client.get(f"/api/v1/execution-history/{execution_id}")).json())


async def live(client: Any, crew: Crew) -> dict[str, Any]:
    return await run(client, await started(client, "/api/v1/executions", crew.body))


async def spans(client: Any, execution_id: str, kind: str) -> list[dict[str, Any]]:
    trace = (await client.get(f"/api/v1/execution-trace/{execution_id}")).json()
    return [span for span in trace["spans"] if span["type"] == kind]


def outputs(history: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(entry["task"], entry["output"]) for entry in history["task_outputs"]]


def tool_uses(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(s["attributes"]["task"], s["attributes"]["tool"], s["attributes"]["output"]) for s in found]


@PROPERTY
@given(crew=crews())
async def test_a_replay_ends_as_the_original_did(kasal: Any, crew: Crew) -> None:
    _, client = kasal
    crew.describe()
    original = await live(client, crew)
    assert original["status"] in ("COMPLETED", "FAILED"), original

    replay_id = await started(client, f"/api/v1/executions/{original['execution_id']}/replay")
    replay = await run(client, replay_id)

    assert replay["status"] == original["status"], replay
    assert replay.get("error") == original.get("error")
    assert replay["result"] == original["result"]
    assert outputs(replay) == outputs(original)
    calls = await spans(client, replay_id, "llm_call")
    assert calls and all(span["attributes"].get("replayed") for span in calls)
    usage = replay["usage"]
    assert usage["replayed_calls"] == usage["llm_calls"] == len(calls) == original["usage"]["llm_calls"]
    assert usage["cost"] == 0
    original_tools = tool_uses(await spans(client, original["execution_id"], "tool_usage"))
    assert tool_uses(await spans(client, replay_id, "tool_usage")) == original_tools


ASYNC_IN_THE_MIDDLE = Crew(
    agents={"keeper0": {"role": "Keeper 0", "goal": "Tend {topic}", "backstory": "Careful.", "llm": ECHO,
                        "tools": []}},
    tasks={f"step{i}": {"description": f"Step {i}: look after {{topic}}", "expected_output": "A line",
                        "agent": "keeper0", **({"async_execution": True} if i == 1 else {})} for i in range(3)},
    inputs={"topic": "clover"},
)


@PROPERTY
@given(case=crews().flatmap(lambda crew: st.tuples(st.just(crew), st.integers(1, len(crew.keys)))))
async def test_a_rerun_reuses_the_outputs_before_its_task_and_runs_the_rest(
        kasal: Any, case: tuple[Crew, int]) -> None:
    crew, k = case
    crew.describe()
    event(f"rerun from task {k} of {len(crew.keys)}")
    await check_rerun(kasal[1], crew, k)


async def test_a_rerun_from_an_async_task_gives_it_the_context_it_had(kasal: Any) -> None:
    """An async task without ``context`` read no earlier output in the original run (crewai
    never sets ``last_sync_output`` in a live run), so rerun from it, its prompt is the same."""
    await check_rerun(kasal[1], ASYNC_IN_THE_MIDDLE, 2)


async def check_rerun(client: Any, crew: Crew, k: int) -> None:
    """Rerun ``crew`` from its k-th task: the outputs before it reused, the rest as their models answer."""
    original = await live(client, crew)
    assert original["status"] == "COMPLETED", original
    reused, rerun_tasks = crew.keys[: k - 1], crew.keys[k - 1:]

    rerun_id = await started(client, f"/api/v1/executions/{original['execution_id']}/rerun",
                             {"from_task": crew.keys[k - 1]})
    rerun = await run(client, rerun_id)

    assert rerun["status"] == "COMPLETED", rerun
    assert rerun["rerun_of"] == {"id": original["execution_id"], "from_task": crew.keys[k - 1]}
    before, after = dict(outputs(original)), dict(outputs(rerun))
    assert [task for task, _ in outputs(rerun)] == [task for task, _ in outputs(original)] == crew.keys
    assert {task: after[task] for task in reused} == {task: before[task] for task in reused}
    calls = await spans(client, rerun_id, "llm_call")
    assert {span["attributes"]["task"] for span in calls} == set(rerun_tasks)
    assert not {use[0] for use in tool_uses(await spans(client, rerun_id, "tool_usage"))} & set(reused)
    assert rerun["usage"]["llm_calls"] == len(calls)
    changed, unsure = set[str](), set[str]()
    for task in rerun_tasks:
        reads = set(crew.context(task))
        if crew.model(task) == RANDOM or reads & changed:
            assert after[task] != before[task], task
            changed.add(task)
        elif crew.reads_the_clock(task) or reads & unsure:
            unsure.add(task)  # the same only if the rerun read the clock in the same second
        else:
            assert after[task] == before[task], task


@PROPERTY
@given(crew=crews(models=(RANDOM,)))
async def test_two_live_runs_of_an_offline_random_crew_differ(kasal: Any, crew: Crew) -> None:
    _, client = kasal
    first, second = await live(client, crew), await live(client, crew)

    assert first["status"] == second["status"] == "COMPLETED", (first, second)
    assert first["result"] != second["result"]
    assert all(a != b for a, b in zip(outputs(first), outputs(second), strict=True))

