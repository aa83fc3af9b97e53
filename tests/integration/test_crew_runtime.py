"""Real crews in real child processes, served by the offline models.

The test process never imports crewai: everything crewai-side happens in the
forkserver children, which is also how the service uses the runtime.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest

from interface.crew_runtime import messages as m
from interface.crew_runtime.runtime import CrewProcess, CrewRuntime

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def runtime() -> Iterator[CrewRuntime]:
    crew_runtime = CrewRuntime()
    assert crew_runtime.warm(), "forkserver preload of interface.crew_runtime.child failed"
    yield crew_runtime
    crew_runtime.close()


def two_task_job(execution_id: str = "exec-1", model: str = "offline/echo", **overrides: Any) -> m.CrewJob:
    fields: dict[str, Any] = dict(
        execution_id=execution_id,
        agents={
            "researcher": {"role": "Researcher of {topic}", "goal": "Find facts about {topic}",
                           "backstory": "Curious."},
            "writer": {"role": "Writer", "goal": "Write clearly", "backstory": "Concise."},
        },
        tasks={
            "research": {"description": "Collect three facts about {topic}", "expected_output": "Facts",
                         "agent": "researcher"},
            "write": {"description": "Write a paragraph about {topic}", "expected_output": "A paragraph",
                      "agent": "writer", "context": ["research"]},
        },
        inputs={"topic": "honeybees"},
        model=model,
    )
    fields.update(overrides)
    return m.CrewJob(**fields)


def collect(process: CrewProcess) -> list[m.Message]:
    async def gather() -> list[m.Message]:
        return [message async for message in process.messages()]

    return anyio.run(gather)


def without_logs(messages: list[m.Message]) -> list[m.Message]:
    return [message for message in messages if not isinstance(message, m.LogLine)]


def terminal(messages: list[m.Message]) -> m.Message:
    ends = [message for message in messages if isinstance(message, m.TERMINAL)]
    assert len(ends) == 1 and messages[-1] is ends[0], messages
    return ends[0]


def test_sequential_crew_streams_progress_in_order(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job()))

    events = without_logs(messages)
    agent_events = (m.AgentStarted, m.AgentCompleted)
    kinds = [(type(e).__name__, getattr(e, "task", None)) for e in events if not isinstance(e, agent_events)]
    assert kinds == [
        ("CrewStarted", None),
        ("TaskStarted", "research"), ("LlmCall", "research"), ("TaskCompleted", "research"),
        ("TaskStarted", "write"), ("LlmCall", "write"), ("TaskCompleted", "write"),
        ("CrewCompleted", None),
    ]
    done = terminal(messages)
    assert isinstance(done, m.CrewCompleted)
    assert "Write a paragraph about honeybees" in done.result
    llm_calls = [e for e in events if isinstance(e, m.LlmCall)]
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in llm_calls)
    assert all(c.cost is not None and c.cost > 0 for c in llm_calls)
    assert [c.agent for c in llm_calls] == ["Researcher of honeybees", "Writer"]
    started = [e for e in events if isinstance(e, m.AgentStarted)]
    assert [a.agent for a in started] == ["Researcher of honeybees", "Writer"]
    assert [e.at for e in messages] == sorted(e.at for e in messages)


def test_result_is_deterministic_across_runs(runtime: CrewRuntime) -> None:
    first = terminal(collect(runtime.run(two_task_job("exec-a"))))
    second = terminal(collect(runtime.run(two_task_job("exec-b"))))
    assert isinstance(first, m.CrewCompleted) and isinstance(second, m.CrewCompleted)
    assert first.result == second.result


def test_inputs_fill_placeholders_in_prompts(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(inputs={"topic": "volcanoes"})))
    prompts = [e.prompt for e in messages if isinstance(e, m.LlmCall)]
    assert prompts and all("{topic}" not in p for p in prompts)
    assert "Researcher of volcanoes" in prompts[0]
    assert "Collect three facts about volcanoes" in prompts[0]


def test_planning_adds_a_plan_the_offline_model_can_structure(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(planning=True)))

    started = [e for e in messages if isinstance(e, m.TaskStarted)]
    assert [e.agent for e in started] == ["Task Execution Planner", "Researcher of honeybees", "Writer"]
    assert isinstance(terminal(messages), m.CrewCompleted)
    research_prompt = next(e.prompt for e in messages if isinstance(e, m.LlmCall) and e.task == "research")
    assert "Collect three facts about honeybees" in research_prompt


def test_hierarchical_crew_runs_under_its_manager(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(process="hierarchical", manager_llm="offline/echo")))

    assert isinstance(terminal(messages), m.CrewCompleted)
    assert {e.agent for e in messages if isinstance(e, m.TaskStarted)} == {"Crew Manager"}


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"process": "hierarchical"}, "a hierarchical crew needs manager_llm"),
        ({"process": "parallel"}, "unknown process 'parallel'; use 'sequential' or 'hierarchical'"),
        ({"agents": {"writer": {"role": "Writer"}}}, "agent 'writer' is missing 'goal'"),
        ({"tasks": {"t": {"description": "d", "expected_output": "o", "agent": "ghost"}}},
         "task 't' names unknown agent 'ghost'"),
        ({"tasks": {"t": {"description": "d", "expected_output": "o", "agent": "writer", "context": ["later"]}}},
         "task 't' uses context ['later'] that is not an earlier task"),
    ],
)
def test_inconsistent_jobs_fail_with_a_clear_message(
    runtime: CrewRuntime, overrides: dict[str, Any], error: str
) -> None:
    done = terminal(collect(runtime.run(two_task_job(**overrides))))
    assert isinstance(done, m.CrewFailed) and done.error == error


def tool_job(description: str, tools: list[str]) -> m.CrewJob:
    return m.CrewJob(
        execution_id="exec-tool",
        agents={"clerk": {"role": "Clerk", "goal": "Compute", "backstory": "Careful.", "tools": tools}},
        tasks={"sum": {"description": description, "expected_output": "A number", "agent": "clerk"}},
    )


def test_offline_model_drives_the_calculator_tool(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(tool_job("Add numbers [use calculator: (2+3)*4]", ["calculator"])))

    tools = [e for e in messages if isinstance(e, m.ToolUsed)]
    assert [(t.tool, t.output, t.error, t.agent, t.task) for t in tools] == [("calculator", "20", None, "Clerk", "sum")]
    assert '"(2+3)*4"' in tools[0].input
    done = terminal(messages)
    assert isinstance(done, m.CrewCompleted) and done.result.endswith("tool result: 20")


def test_calculator_refuses_code(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(tool_job("Try [use calculator: __import__('os').getpid()]", ["calculator"])))

    tools = [e for e in messages if isinstance(e, m.ToolUsed)]
    assert len(tools) == 1 and tools[0].output is not None
    assert tools[0].output.startswith("error: unsupported element")


def test_current_datetime_tool(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(tool_job("What time is it? [use current_datetime: ]", ["current_datetime"])))

    tools = [e for e in messages if isinstance(e, m.ToolUsed)]
    assert len(tools) == 1 and tools[0].tool == "current_datetime"
    assert tools[0].output is not None and tools[0].output.endswith("+00:00")
    assert tools[0].output[:4] == time.strftime("%Y", time.gmtime())


def test_unknown_tool_fails_the_crew_clearly(runtime: CrewRuntime) -> None:
    done = terminal(collect(runtime.run(tool_job("Anything", ["web_search"]))))
    assert isinstance(done, m.CrewFailed)
    assert "unknown tool 'web_search'" in done.error and "calculator" in done.error


def test_cancel_stops_a_slow_crew_within_two_seconds(runtime: CrewRuntime) -> None:
    process = runtime.run(two_task_job(model="offline/slow"))

    async def run_then_cancel() -> tuple[list[m.Message], float]:
        seen: list[m.Message] = []
        elapsed = -1.0
        async for message in process.messages():
            seen.append(message)
            if isinstance(message, m.TaskStarted):
                started = time.monotonic()
                await process.acancel()
                elapsed = time.monotonic() - started
        return seen, elapsed

    messages, elapsed = anyio.run(run_then_cancel)
    assert 0 <= elapsed < 2.0
    assert process.exitcode is not None and not process.is_alive()
    done = terminal(messages)
    assert isinstance(done, m.CrewFailed) and done.error == "execution cancelled"
    assert not any(isinstance(e, m.TaskCompleted) for e in messages)


def test_timeout_cancels_and_reports(runtime: CrewRuntime) -> None:
    process = runtime.run(two_task_job(model="offline/slow", timeout_s=0.3))
    started = time.monotonic()
    done = terminal(collect(process))
    assert isinstance(done, m.CrewFailed) and done.error == "execution timed out after 0.3 s"
    assert time.monotonic() - started < 2.5
    assert process.exitcode is not None


def test_leaving_the_stream_early_stops_the_child(runtime: CrewRuntime) -> None:
    process = runtime.run(two_task_job(model="offline/slow"))

    async def first_message() -> m.Message:
        async with aclosing(process.messages()) as stream:
            async for message in stream:
                return message
        raise AssertionError("no messages")

    assert isinstance(anyio.run(first_message), m.LogLine)
    assert process.exitcode is not None


def test_missing_credential_fails_before_any_model_call(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(model="gpt-4o-mini")))

    done = terminal(messages)
    assert isinstance(done, m.CrewFailed)
    assert "OPENAI_API_KEY" in done.error
    assert not any(isinstance(e, (m.LlmCall, m.CrewStarted)) for e in messages)
    assert "OPENAI_API_KEY" not in os.environ


def hostile_tool_factory(name: str) -> Any:
    """Tool factory (runs in the child) for tools that misbehave on purpose."""
    import signal

    from crewai.tools import BaseTool

    class ExitTool(BaseTool):
        name: str = "exit_now"
        description: str = "Ends the process abruptly."

        def _run(self, **_: Any) -> str:
            os._exit(7)

    class StubbornTool(BaseTool):
        name: str = "stubborn"
        description: str = "Ignores SIGTERM and never finishes."

        def _run(self, **_: Any) -> str:
            time.sleep(60)
            return "too late"

    if name == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # here: tools run off the main thread
    return {"exit_now": ExitTool, "stubborn": StubbornTool}[name]()


@pytest.fixture(scope="module")
def hostile_runtime() -> Iterator[CrewRuntime]:
    crew_runtime = CrewRuntime(tool_factory=hostile_tool_factory)
    yield crew_runtime
    crew_runtime.close()


def test_child_dying_silently_yields_a_synthesized_failure(hostile_runtime: CrewRuntime) -> None:
    messages = collect(hostile_runtime.run(tool_job("Stop [use exit_now: ]", ["exit_now"])))
    done = terminal(messages)
    assert isinstance(done, m.CrewFailed)
    assert done.error == "crew process exited with code 7"
    assert any(isinstance(e, m.TaskStarted) for e in messages)


def test_cancel_kills_a_child_that_ignores_sigterm(hostile_runtime: CrewRuntime) -> None:
    process = hostile_runtime.run(tool_job("Hang [use stubborn: ]", ["stubborn"]))

    async def run_then_cancel() -> float:
        async for message in process.messages():
            if isinstance(message, m.LlmCall):
                await anyio.sleep(0.5)
                started = time.monotonic()
                await process.acancel()
                return time.monotonic() - started
        raise AssertionError("the crew never called its model")

    elapsed = anyio.run(run_then_cancel)
    assert 1.4 < elapsed < 2.0
    assert process.exitcode == -9


async def seconds_to_first_message(process: CrewProcess, since: float) -> float:
    first = -1.0
    async for _ in process.messages():
        if first < 0:
            first = time.perf_counter() - since
    return first


def test_runs_start_fast_after_the_first(runtime: CrewRuntime) -> None:
    delays = []
    for index in range(1, 6):
        started = time.perf_counter()
        process = runtime.run(two_task_job(f"exec-start-{index}"))
        delays.append(anyio.run(seconds_to_first_message, process, started))
    print("\nrun() to first message, runs 2..5 (ms):", [round(d * 1000, 1) for d in delays[1:]])
    assert all(0 < d < 3.0 for d in delays[1:])


def test_many_crews_at_once_all_reach_their_end(runtime: CrewRuntime) -> None:
    """Children that start and exit together reuse pipe descriptors; no stream may stall."""

    async def run_all() -> list[m.Message]:
        ends: list[m.Message] = []

        async def one(n: int) -> None:
            process = runtime.run(two_task_job(f"burst-{n}"))
            async with aclosing(process.messages()) as stream:
                async for message in stream:
                    if isinstance(message, m.TERMINAL):
                        ends.append(message)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                for n in range(12):
                    tasks.start_soon(one, n)
        return ends

    ends = anyio.run(run_all)
    assert len(ends) == 12 and all(isinstance(end, m.CrewCompleted) for end in ends)
