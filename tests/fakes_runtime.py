"""A crew runtime that plays a script instead of forking CrewAI (for runner tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from interface.crew_runtime import messages as m


class FakeCrewProcess:
    def __init__(self, script: list[Any], delay: float) -> None:
        self.script = script
        self.delay = delay
        self.cancelled = asyncio.Event()

    async def messages(self) -> AsyncIterator[Any]:
        for message in self.script:
            if self.cancelled.is_set():
                yield m.CrewFailed(error="execution cancelled")
                return
            try:
                await asyncio.wait_for(self.cancelled.wait(), self.delay)
                yield m.CrewFailed(error="execution cancelled")
                return
            except TimeoutError:
                yield message

    async def acancel(self) -> None:
        self.cancelled.set()


class FakeCrewRuntime:
    """Each run yields log lines, one task's start and end, then a result."""

    def __init__(self, *, lines: int = 3, delay: float = 0.0, result: Callable[[Any], str] | None = None) -> None:
        self.lines = lines
        self.delay = delay
        self.result = result or (lambda job: f"result of {job.execution_id}")
        self.jobs: list[Any] = []
        self.started_at: list[float] = []

    def run(self, job: Any) -> FakeCrewProcess:
        self.jobs.append(job)
        self.started_at.append(time.monotonic())
        task = next(iter(job.tasks), "task")
        script: list[Any] = [m.CrewStarted(name=job.execution_id), m.TaskStarted(task=task, agent="agent")]
        script += [m.LogLine(level="INFO", source="crew", message=f"line {i}") for i in range(self.lines)]
        script += [m.TaskCompleted(task=task, agent="agent", output="done"), m.CrewCompleted(result=self.result(job))]
        return FakeCrewProcess(script, self.delay)
