"""What the executions tests share: a one-task crew, ``Runner``, which plays the runner, and
``wait_status``, which waits for a run to reach a status and fails the test at a deadline.

The runner is not part of those tests: ``Runner`` plays its part through the
application service (claim → preparing → running → progress → end), the way
the real runner does, and every read API is checked against what it did.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any

import anyio
import pytest

from application.executions import ExecutionJob
from domain.context import Actor, acting_as
from domain.execution_progress import (
    AgentCompleted,
    AgentStarted,
    CrewStarted,
    LlmCall,
    LogLine,
    Observation,
    TaskCompleted,
    TaskStarted,
    ToolUsed,
)
from interface.wiring import Kasal

AGENTS = {"researcher": {"role": "Senior Researcher", "goal": "Find facts about {topic}", "backstory": "Curious.",
                         "llm": "offline/echo"}}
TASKS = {"research": {"description": "Research {topic}", "expected_output": "A short report", "agent": "researcher"}}
INLINE = {"agents_yaml": AGENTS, "tasks_yaml": TASKS, "inputs": {"topic": "AI"}}
T0 = 1_750_000_000.0
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
EXECUTION = "/api/v1/executions/{}"
HISTORY = "/api/v1/execution-history/{}"


def crew_script() -> list[Observation]:
    """What a one-task crew reports while it runs."""
    return [
        CrewStarted(at=T0, name="crew"), LogLine(at=T0 + 0.1, level="info", source="crew", message="Crew started"),
        TaskStarted(at=T0 + 1, task="research", agent="Senior Researcher"),
        AgentStarted(at=T0 + 1.1, agent="Senior Researcher"),
        LlmCall(at=T0 + 2, model="offline/echo", prompt="Research AI", response="AI is...", prompt_tokens=12,
                completion_tokens=30, latency_ms=400, cost=0.002, agent="Senior Researcher", task="research"),
        ToolUsed(at=T0 + 2.5, tool="search", input="AI", output="results", agent="Senior Researcher", task="research"),
        AgentCompleted(at=T0 + 3, agent="Senior Researcher", output="AI is..."),
        TaskCompleted(at=T0 + 3.1, task="research", agent="Senior Researcher", output="The report"),
        LogLine(at=T0 + 3.2, level="info", source="crew", message="Crew finished"),
    ]


class Runner:
    """Plays the runner through the application service, as the real one will."""

    def __init__(self, client: Any, runner_id: str = "runner-1") -> None:
        self.client = client
        self.core: Kasal = client.app.state.kasal
        self.service = self.core.services.executions
        self.runner_id = runner_id

    async def as_group(self, group: str, fn: Any, *args: Any) -> Any:
        def call() -> Any:
            with acting_as(Actor(group_id=group, actor=f"runner:{self.runner_id}", role="operator")):
                return fn(*args)

        return await anyio.to_thread.run_sync(call)

    async def claim(self) -> ExecutionJob:
        job = await anyio.to_thread.run_sync(self.service.claim_next, self.runner_id)
        assert job is not None
        return job

    async def run_until_running(self, group: str = "local") -> ExecutionJob:
        job = await self.claim()
        assert job.group_id == group
        await self.as_group(group, self.service.mark_preparing, job.execution_id, self.runner_id)
        await self.as_group(group, self.service.mark_running, job.execution_id, self.runner_id)
        return job

    async def progress(self, execution_id: Any, observations: Sequence[Observation], group: str = "local") -> None:
        await self.as_group(group, self.service.record_progress, uuid.UUID(str(execution_id)), list(observations))

    async def complete(self, execution_id: Any, result: Any, group: str = "local") -> None:
        await self.as_group(group, self.service.complete, uuid.UUID(str(execution_id)), result)

    def fresh(self, group: str = "local") -> dict[str, str]:
        """Headers for a read that must include everything written so far."""
        return {"X-Kasal-Min-Position": str(self.core.store.max_position()), "X-Group-Id": group}


async def start(client: Any, body: dict[str, Any] | None = None, group: str = "local") -> dict[str, Any]:
    response = await client.post("/api/v1/executions", json=body or INLINE, headers={"X-Group-Id": group})
    assert response.status_code == 201, response.text
    return response.json()


async def run_to_completion(client: Any, result: Any = '{"answer": 42}') -> tuple[str, Runner]:
    started = await start(client)
    runner = Runner(client)
    job = await runner.run_until_running()
    await runner.progress(job.execution_id, crew_script())
    await runner.complete(job.execution_id, result)
    return started["execution_id"], runner


async def wait_until(
    client: Any, execution_id: Any, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 15, *,
    path: str = EXECUTION,
) -> dict[str, Any]:
    """The body at ``path`` (the execution by default) once ``done(body)``; the test fails at the
    deadline, showing the last body seen."""
    url = path.format(execution_id)
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await client.get(url)).json()
        if done(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"execution {execution_id} did not {what} within {timeout} s; last seen at {url}: {body}")
        await anyio.sleep(0.05)


async def wait_status(
    client: Any, execution_id: Any, wanted: str | Collection[str], timeout: float = 15, *, path: str = EXECUTION,
) -> dict[str, Any]:
    """The body at ``path`` once the execution's status is ``wanted`` (one status or any of several)."""
    statuses = {wanted} if isinstance(wanted, str) else set(wanted)
    return await wait_until(client, execution_id, lambda body: body["status"] in statuses,
                            f"reach {' or '.join(sorted(statuses))}", timeout, path=path)
