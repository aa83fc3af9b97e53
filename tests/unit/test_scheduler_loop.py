"""The scheduler loop stops when asked, whatever it was waiting for."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import anyio
import pytest

from interface.scheduler import SchedulerLoop
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


class CountingScheduler:
    def __init__(self) -> None:
        self.ticks = 0

    def tick(self, now: datetime | None = None) -> list[Any]:
        self.ticks += 1
        return []


class NoNextRun:
    async def earliest(self) -> datetime | None:
        return None


async def test_a_stop_that_arrives_with_a_schedule_change_fires_nothing_more() -> None:
    scheduler = CountingScheduler()
    loop = SchedulerLoop(scheduler, NoNextRun(), FakeClock(), planner=None, max_sleep=5)  # type: ignore[arg-type]
    loop.start()
    await asyncio.sleep(0.05)  # the loop ticked once and now waits for a change or its next due time
    ticks = scheduler.ticks
    loop.wake()                # a schedule changed ...
    await asyncio.sleep(0)     # ... the wait has its answer but the loop has not resumed yet
    with anyio.fail_after(3):
        await loop.stop()
    assert scheduler.ticks == ticks
