"""A service whose start fails part-way leaves nothing running behind it."""

from __future__ import annotations

from datetime import datetime

import pytest

from interface.settings import Settings
from interface.wiring import wire

pytestmark = pytest.mark.anyio


class BrokenClock:
    """Fails the scheduler's catch-up pass, the last step of a start."""

    def now(self) -> datetime:
        raise RuntimeError("clock unavailable")


async def test_a_start_that_fails_late_closes_the_pools_and_stops_the_projector(settings: Settings) -> None:
    kasal = wire(settings.with_(run_scheduler=True), clock=BrokenClock())

    with pytest.raises(RuntimeError, match="clock unavailable"):
        await kasal.start()

    assert kasal.pool.closed and kasal.sync_pool.closed
    assert not kasal.projector.running
