"""The scheduler's adapters and its background loop.

``SchedulerLoop`` wakes when the earliest ``next_run_at`` comes due (at
most ``max_sleep`` seconds apart, so other processes' changes are seen
too), and at once when a schedule changes in this process. Each wake is one
``SchedulerService.tick`` in a worker thread. The first tick runs during
start-up, before the service answers requests: that is the catch-up pass for
runs missed while it was down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from application.ports import Clock
from application.schedules import FireOutcome, SchedulerService
from domain.context import Actor, acting_as
from domain.schedule import SCHEDULER_ACTOR
from interface.core import Core
from interface.http.executions import ExecutionCreate, plan_crew
from projections.schedules import NextRunQuery

log = logging.getLogger("kasal.scheduler")


class SystemClock:
    """The real ``Clock``."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class CrewPlanner:
    """``ExecutionPlanner`` with the checks ``POST /executions`` makes (``plan_crew``).

    ``plan_crew`` reads read models through the async pool, so the scheduler's
    worker threads hand it to the event loop captured at start-up.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.token: Any = None

    def bind(self) -> None:
        """Remember the running event loop (call from it, at start-up)."""
        self.token = anyio.lowlevel.current_token()

    def plan(self, group_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        return anyio.from_thread.run(self.plan_async, group_id, dict(definition), token=self.token)

    async def plan_async(self, group_id: str, definition: dict[str, Any]) -> dict[str, Any]:
        with acting_as(Actor(group_id, SCHEDULER_ACTOR, "operator")):
            return await plan_crew_request(self.core, definition)


async def plan_crew_request(core: Core, definition: Mapping[str, Any]) -> dict[str, Any]:
    """What a schedule's definition would run, checked as ``POST /executions`` checks a run."""
    inputs = dict(definition.get("inputs") or {})
    request = ExecutionCreate(
        crew_id=definition.get("crew_id"), agents_yaml=definition.get("agents_yaml"),
        tasks_yaml=definition.get("tasks_yaml"), inputs=inputs, model=definition.get("model"),
    )
    return await plan_crew(core, request, inputs)


class SchedulerLoop:
    """Runs ``SchedulerService.tick`` whenever something may be due."""

    def __init__(
        self, core: Core, service: SchedulerService, next_run: NextRunQuery, clock: Clock, *, max_sleep: float = 5.0,
    ) -> None:
        self.core = core
        self.service = service
        self.next_run = next_run
        self.clock = clock
        self.max_sleep = max_sleep
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def tick(self, now: datetime | None = None) -> list[FireOutcome]:
        """Fire what is due at ``now`` (default: the clock's now)."""
        return await self.core.run(self.service.tick, now)

    def wake(self) -> None:
        """A schedule changed: look again now instead of at the planned time."""
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kasal-scheduler")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        while True:
            self._changed.clear()  # before the tick, so a change made during it wakes the next one
            try:
                await self.tick()
                delay = await self._delay()
            except Exception:
                log.exception("scheduler tick failed; trying again shortly")
                delay = self.max_sleep
            try:
                await asyncio.wait_for(self._changed.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _delay(self) -> float:
        earliest = await self.next_run.earliest()
        if earliest is None:
            return self.max_sleep
        wait = (earliest - self.clock.now()).total_seconds()
        # Still due right after a tick: the read model lags or the fire failed; don't spin.
        return min(self.max_sleep, wait if wait > 0 else 1.0)
