"""A crew runtime that plays a script instead of forking CrewAI (for runner tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

from domain.execution_progress import (
    OUTCOMES,
    CrewCompleted,
    CrewFailed,
    CrewStarted,
    LogLine,
    Observation,
    TaskCompleted,
    TaskStarted,
)
from interface.waiting import wait_event


class FakeCrewProcess:
    """Yields its script, ``delay`` seconds apart (``outcome_after`` before the outcome).

    A pause of 0 is exactly one turn of the event loop, so a test can place
    the outcome right behind the last log line, as a real child often does.
    """

    def __init__(self, script: list[Observation], delay: float, outcome_after: float) -> None:
        self.script = script
        self.delay = delay
        self.outcome_after = outcome_after
        self.cancelled = asyncio.Event()

    async def messages(self) -> AsyncGenerator[Observation, None]:
        for observation in self.script:
            pause = self.outcome_after if isinstance(observation, OUTCOMES) else self.delay
            if await wait_event(self.cancelled, pause):
                yield CrewFailed(error="execution cancelled", at=time.time())
                return
            yield observation

    async def acancel(self) -> None:
        self.cancelled.set()


class FakeCrewRuntime:
    """Each run yields the crew's and one task's start, log lines, the task's end, then a result."""

    def __init__(
        self, *, lines: int = 3, delay: float = 0.0, outcome_after: float | None = None,
        result: Callable[[Any], str] | None = None,
    ) -> None:
        self.lines = lines
        self.delay = delay
        self.outcome_after = delay if outcome_after is None else outcome_after
        self.result = result or (lambda job: f"result of {job.execution_id}")
        self.jobs: list[Any] = []
        self.processes: list[FakeCrewProcess] = []
        self.started_at: list[float] = []

    def run(self, job: Any) -> FakeCrewProcess:
        self.jobs.append(job)
        self.started_at.append(time.monotonic())
        task = next(iter(job.tasks), "task")
        at = time.time()
        script: list[Observation] = [CrewStarted(name=job.execution_id, at=at),
                                     TaskStarted(task=task, agent="agent", at=at)]
        script += [LogLine(level="INFO", source="crew", message=f"line {i}", at=at) for i in range(self.lines)]
        script += [TaskCompleted(task=task, agent="agent", output="done", at=at),
                   LogLine(level="INFO", source="runtime", message="crew finished", at=at),
                   CrewCompleted(result=self.result(job), at=at)]
        self.processes.append(FakeCrewProcess(script, self.delay, self.outcome_after))
        return self.processes[-1]
