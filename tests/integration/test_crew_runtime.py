"""Real crews in real child processes, served by the offline models.

The test process never imports crewai: everything crewai-side happens in the
forkserver children, which is also how the service uses the runtime. How fast
runs start and stop is measured by ``make bench`` (bench/executions.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from domain import execution_progress as ep
from interface.crew_runtime.messages import CrewJob
from interface.crew_runtime.runtime import CrewProcess, CrewRuntime
from tests.hostile_tools import EXIT_CODE, HostileToolFactory, end_orphan

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def two_task_job(execution_id: str = "exec-1", model: str = "offline/echo", **overrides: Any) -> CrewJob:
    fields: dict[str, Any] = {
        "execution_id": execution_id,
        "agents": {
            "researcher": {"role": "Researcher of {topic}", "goal": "Find facts about {topic}",
                           "backstory": "Curious."},
            "writer": {"role": "Writer", "goal": "Write clearly", "backstory": "Concise."},
        },
        "tasks": {
            "research": {"description": "Collect three facts about {topic}", "expected_output": "Facts",
                         "agent": "researcher"},
            "write": {"description": "Write a paragraph about {topic}", "expected_output": "A paragraph",
                      "agent": "writer", "context": ["research"]},
        },
        "inputs": {"topic": "honeybees"},
        "model": model,
        **overrides,
    }
    return CrewJob(**fields)


def collect(process: CrewProcess) -> list[ep.Observation]:
    async def gather() -> list[ep.Observation]:
        return [observation async for observation in process.messages()]

    return anyio.run(gather)


def without_logs(messages: list[ep.Observation]) -> list[ep.Observation]:
    return [message for message in messages if not isinstance(message, ep.LogLine)]


def terminal(messages: list[ep.Observation]) -> ep.Outcome:
    ends = [message for message in messages if isinstance(message, ep.OUTCOMES)]
    assert len(ends) == 1 and messages[-1] is ends[0], messages
    return ends[0]


def test_sequential_crew_streams_progress_in_order(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job()))

    events = without_logs(messages)
    agent_events = (ep.AgentStarted, ep.AgentCompleted)
    kinds = [(type(e).__name__, getattr(e, "task", None)) for e in events if not isinstance(e, agent_events)]
    assert kinds == [
        ("CrewStarted", None),
        ("TaskStarted", "research"), ("LlmCall", "research"), ("TaskCompleted", "research"),
        ("TaskStarted", "write"), ("LlmCall", "write"), ("TaskCompleted", "write"),
        ("CrewCompleted", None),
    ]
    done = terminal(messages)
    assert isinstance(done, ep.CrewCompleted)
    assert "Write a paragraph about honeybees" in done.result
    llm_calls = [e for e in events if isinstance(e, ep.LlmCall)]
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in llm_calls)
    assert [c.cost for c in llm_calls] == [0.0, 0.0]  # offline models count tokens but cost nothing
    assert [c.agent for c in llm_calls] == ["Researcher of honeybees", "Writer"]
    started = [e for e in events if isinstance(e, ep.AgentStarted)]
    assert [a.agent for a in started] == ["Researcher of honeybees", "Writer"]
    assert [e.at for e in messages] == sorted(e.at for e in messages)


def test_result_is_deterministic_across_runs(runtime: CrewRuntime) -> None:
    first = terminal(collect(runtime.run(two_task_job("exec-a"))))
    second = terminal(collect(runtime.run(two_task_job("exec-b"))))
    assert isinstance(first, ep.CrewCompleted) and isinstance(second, ep.CrewCompleted)
    assert first.result == second.result


def test_inputs_fill_placeholders_in_prompts(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(inputs={"topic": "volcanoes"})))
    prompts = [e.prompt for e in messages if isinstance(e, ep.LlmCall)]
    assert prompts and all("{topic}" not in p for p in prompts)
    assert "Researcher of volcanoes" in prompts[0]
    assert "Collect three facts about volcanoes" in prompts[0]


def test_planning_adds_a_plan_the_offline_model_can_structure(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(planning=True)))

    started = [e for e in messages if isinstance(e, ep.TaskStarted)]
    assert [e.agent for e in started] == ["Task Execution Planner", "Researcher of honeybees", "Writer"]
    assert isinstance(terminal(messages), ep.CrewCompleted)
    research_prompt = next(e.prompt for e in messages if isinstance(e, ep.LlmCall) and e.task == "research")
    assert "Collect three facts about honeybees" in research_prompt


def test_hierarchical_crew_runs_under_its_manager(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(process="hierarchical", manager_llm="offline/echo")))

    assert isinstance(terminal(messages), ep.CrewCompleted)
    assert {e.agent for e in messages if isinstance(e, ep.TaskStarted)} == {"Crew Manager"}


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
    assert isinstance(done, ep.CrewFailed) and done.error == error


def tool_job(description: str, tools: list[str], timeout_s: float | None = None) -> CrewJob:
    return CrewJob(
        execution_id="exec-tool",
        agents={"clerk": {"role": "Clerk", "goal": "Compute", "backstory": "Careful.", "tools": tools}},
        tasks={"sum": {"description": description, "expected_output": "A number", "agent": "clerk"}},
        timeout_s=timeout_s,
    )


def test_offline_model_drives_the_calculator_tool(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(tool_job("Add numbers [use calculator: (2+3)*4]", ["calculator"])))

    tools = [e for e in messages if isinstance(e, ep.ToolUsed)]
    assert [(t.tool, t.output, t.error, t.agent, t.task) for t in tools] == [("calculator", "20", None, "Clerk", "sum")]
    assert '"(2+3)*4"' in tools[0].input
    done = terminal(messages)
    assert isinstance(done, ep.CrewCompleted) and done.result.endswith("tool result: 20")


def test_calculator_refuses_code(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(tool_job("Try [use calculator: __import__('os').getpid()]", ["calculator"])))

    tools = [e for e in messages if isinstance(e, ep.ToolUsed)]
    assert len(tools) == 1 and tools[0].output is not None
    assert tools[0].output.startswith("error: unsupported element")


def test_current_datetime_tool(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(tool_job("What time is it? [use current_datetime: ]", ["current_datetime"])))

    tools = [e for e in messages if isinstance(e, ep.ToolUsed)]
    assert len(tools) == 1 and tools[0].tool == "current_datetime"
    assert tools[0].output is not None and tools[0].output.endswith("+00:00")
    assert tools[0].output[:4] == time.strftime("%Y", time.gmtime())


def test_unknown_tool_fails_the_crew_clearly(runtime: CrewRuntime) -> None:
    done = terminal(collect(runtime.run(tool_job("Anything", ["web_search"]))))
    assert isinstance(done, ep.CrewFailed)
    assert "unknown tool 'web_search'" in done.error and "calculator" in done.error



def test_cancel_stops_a_slow_crew(runtime: CrewRuntime) -> None:
    process = runtime.run(two_task_job(model="offline/slow"))

    async def run_then_cancel() -> list[ep.Observation]:
        seen: list[ep.Observation] = []
        async for message in process.messages():
            seen.append(message)
            if isinstance(message, ep.TaskStarted):
                await process.acancel()
        return seen

    messages = anyio.run(run_then_cancel)
    assert process.exitcode is not None and not process.is_alive()
    done = terminal(messages)
    assert isinstance(done, ep.CrewFailed) and done.error == "execution cancelled"
    assert not any(isinstance(e, ep.TaskCompleted) for e in messages)


def test_timeout_cancels_and_reports(runtime: CrewRuntime) -> None:
    process = runtime.run(two_task_job(model="offline/slow", timeout_s=0.3))
    done = terminal(collect(process))
    assert isinstance(done, ep.CrewFailed) and done.error == "execution timed out after 0.3 s"
    assert process.exitcode is not None


def test_leaving_the_stream_early_stops_the_child(runtime: CrewRuntime) -> None:
    process = runtime.run(two_task_job(model="offline/slow"))

    async def first_message() -> ep.Observation:
        async with aclosing(process.messages()) as stream:
            async for message in stream:
                return message
        raise AssertionError("no messages")

    assert isinstance(anyio.run(first_message), ep.LogLine)
    assert process.exitcode is not None


def test_missing_credential_fails_before_any_model_call(runtime: CrewRuntime) -> None:
    messages = collect(runtime.run(two_task_job(model="gpt-4o-mini")))

    done = terminal(messages)
    assert isinstance(done, ep.CrewFailed)
    assert "OPENAI_API_KEY" in done.error
    assert not any(isinstance(e, (ep.LlmCall, ep.CrewStarted)) for e in messages)
    assert "OPENAI_API_KEY" not in os.environ


@pytest.fixture(scope="module")
def hostile_runtime() -> Iterator[CrewRuntime]:
    crew_runtime = CrewRuntime(tool_factory=HostileToolFactory())
    yield crew_runtime
    crew_runtime.close()


def test_child_dying_silently_yields_a_failure_naming_its_exit_code(hostile_runtime: CrewRuntime) -> None:
    messages = collect(hostile_runtime.run(tool_job("Stop [use exit_now: ]", ["exit_now"])))
    done = terminal(messages)
    assert isinstance(done, ep.CrewFailed)
    assert done.error == f"crew process exited with code {EXIT_CODE} before reporting a result"
    assert any(isinstance(e, ep.TaskStarted) for e in messages)


def test_a_dead_child_is_noticed_while_another_process_holds_its_pipe(tmp_path: Path) -> None:
    """EOF never comes while a process the child forked keeps the pipe's write end open: the
    child's exit must end the stream anyway, long before the job's timeout."""
    orphan = tmp_path / "orphan.pid"
    runtime = CrewRuntime(tool_factory=HostileToolFactory(orphan_pid_file=orphan))
    try:
        messages = collect(runtime.run(tool_job("Stop [use exit_now: ]", ["exit_now"], timeout_s=30)))
    finally:
        runtime.close()
        end_orphan(orphan)
    assert orphan.exists(), "the tool left no process holding the pipe, so this proves nothing"
    done = terminal(messages)
    assert isinstance(done, ep.CrewFailed)
    assert done.error == f"crew process exited with code {EXIT_CODE} before reporting a result"


def test_cancel_kills_a_child_that_ignores_sigterm(hostile_runtime: CrewRuntime) -> None:
    process = hostile_runtime.run(tool_job("Hang [use stubborn: ]", ["stubborn"]))

    async def run_then_cancel() -> None:
        async for message in process.messages():
            if isinstance(message, ep.LlmCall):
                await process.acancel()
                return
        raise AssertionError("the crew never called its model")

    anyio.run(run_then_cancel)
    assert process.exitcode == -9


def test_many_crews_at_once_all_reach_their_end(runtime: CrewRuntime) -> None:
    """Children that start and exit together reuse pipe descriptors; no stream may stall."""

    async def run_all() -> list[ep.Observation]:
        ends: list[ep.Observation] = []

        async def one(n: int) -> None:
            process = runtime.run(two_task_job(f"burst-{n}"))
            async with aclosing(process.messages()) as stream:
                async for message in stream:
                    if isinstance(message, ep.OUTCOMES):
                        ends.append(message)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                for n in range(12):
                    tasks.start_soon(one, n)
        return ends

    ends = anyio.run(run_all)
    assert len(ends) == 12 and all(isinstance(end, ep.CrewCompleted) for end in ends)
