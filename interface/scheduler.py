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
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from application.planning import Planner, PlanRequest
from application.ports import Clock
from application.schedules import FireOutcome, SchedulerService
from domain.context import Actor, acting_as, current_actor
from interface.waiting import wait_event
from projections.schedules import NextRunQuery

log = logging.getLogger("kasal.scheduler")


class SystemClock:
    """The real ``Clock``."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ThreadedPlanner:
    """The scheduler's ``ExecutionPlanner``: the same ``Planner`` that ``POST /executions`` uses.

    The planner reads read models through the async pool, which belongs to the
    service's event loop, while the scheduler fires from worker threads; so
    each plan is handed to the loop remembered by ``bind``.
    """

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self.token: Any = None

    def bind(self) -> None:
        """Remember the running event loop (call from it, at start-up)."""
        self.token = anyio.lowlevel.current_token()

    def plan(self, group_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        """What the schedule's definition runs, checked as a run is checked. The loop does not
        share this thread's context, so the actor the scheduler set (``system:scheduler`` in the
        schedule's group) is handed over with the request."""
        request = PlanRequest(
            crew_id=definition.get("crew_id"), agents_yaml=definition.get("agents_yaml"),
            tasks_yaml=definition.get("tasks_yaml"), inputs=dict(definition.get("inputs") or {}),
            model=definition.get("model"),
        )
        return anyio.from_thread.run(self._plan, current_actor(), request, token=self.token)

    async def _plan(self, actor: Actor, request: PlanRequest) -> dict[str, Any]:
        with acting_as(actor):
            return (await self.planner.plan(request)).fields()

    def check(self, definition: Mapping[str, Any]) -> None:
        """``ScheduleService``'s ``CrewCheck``: 422 unless the schedule's crew could run now, judged
        by ``Planner.check_schedule`` on the loop, as the actor of the command calling it."""
        anyio.from_thread.run(self._check, current_actor(), dict(definition), token=self.token)

    async def _check(self, actor: Actor, definition: dict[str, Any]) -> None:
        with acting_as(actor):
            await self.planner.check_schedule(definition)


class SchedulerLoop:
    """Runs ``SchedulerService.tick`` whenever something may be due."""

    def __init__(
        self, service: SchedulerService, next_run: NextRunQuery, clock: Clock, planner: ThreadedPlanner, *,
        max_sleep: float = 5.0,
    ) -> None:
        self.service = service
        self.planner = planner
        self.next_run = next_run
        self.clock = clock
        self.max_sleep = max_sleep
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def tick(self, now: datetime | None = None) -> list[FireOutcome]:
        """Fire what is due at ``now`` (default: the clock's now)."""
        return await anyio.to_thread.run_sync(self.service.tick, now)

    def bind(self) -> None:
        """Call from the service's event loop before the first tick (see ``ThreadedPlanner``)."""
        self.planner.bind()

    def wake(self) -> None:
        """A schedule changed: look again now instead of at the planned time."""
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kasal-scheduler")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
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
            await wait_event(self._changed, delay)

    async def _delay(self) -> float:
        earliest = await self.next_run.earliest()
        if earliest is None:
            return self.max_sleep
        wait = (earliest - self.clock.now()).total_seconds()
        # Still due right after a tick: the read model lags or the fire failed; don't spin.
        return min(self.max_sleep, wait if wait > 0 else 1.0)
