"""The background health answer: fresh while the monitor checks, unhealthy once it stops checking."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from interface.health import STALE_AFTER_S, HealthMonitor

pytestmark = pytest.mark.anyio


class Pool:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.queries = 0

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        if not self.up:
            raise OSError("connection refused")
        pool = self

        class Conn:
            async def execute(self, sql: str) -> None:
                pool.queries += 1

        yield Conn()


def projector() -> Any:
    return SimpleNamespace(last_error=None, position=41, leader=True, lag=lambda: 0,
                           notifications=SimpleNamespace(connected=True))


async def run(fn: Any, *args: Any) -> Any:
    return fn(*args)


async def test_the_answer_is_the_last_check_and_asks_the_database_nothing() -> None:
    pool = Pool()
    monitor = HealthMonitor(pool, projector(), run)  # type: ignore[arg-type]
    await monitor.check()
    queries = pool.queries

    bodies = [monitor.answer() for _ in range(100)]

    assert pool.queries == queries
    assert all(healthy for _, healthy in bodies)
    body = bodies[-1][0]
    assert body["checks"]["projections"] == {"status": "ok", "position": 41, "lag": 0, "leader": True,
                                             "listening": True}


async def test_a_database_that_is_gone_is_unhealthy_at_the_next_check() -> None:
    pool = Pool()
    monitor = HealthMonitor(pool, projector(), run)  # type: ignore[arg-type]
    await monitor.check()
    pool.up = False

    body, healthy = await monitor.check()

    assert not healthy and body["checks"]["database"] == {"status": "failing", "error": "OSError"}


async def test_an_answer_nobody_refreshed_is_unhealthy(monkeypatch) -> None:
    monitor = HealthMonitor(Pool(), projector(), run)  # type: ignore[arg-type]
    await monitor.check()
    later = time.monotonic() + STALE_AFTER_S + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)

    body, healthy = monitor.answer()

    assert not healthy and "no health check for" in body["checks"]["database"]["error"]
