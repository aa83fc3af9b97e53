"""The service's health, checked in the background so that ``GET /health`` costs nothing.

Load balancers and orchestrators poll ``/health`` often; a database round
trip and a lag query per poll made it one of the slowest routes. The monitor
runs the full check once a second and keeps the answer; ``/health`` serves
it, with the projector's live state (position, leader, listening) read from
memory. An answer older than ``STALE_AFTER_S`` (the monitor itself stuck) is
unhealthy. ``/health?deep=true`` runs the check for that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from psycopg_pool import AsyncConnectionPool

from projections.engine import Projector

log = logging.getLogger(__name__)
INTERVAL_S = 1.0
STALE_AFTER_S = 5.0
DATABASE_TIMEOUT_S = 2.0


class HealthMonitor:
    def __init__(
        self, pool: AsyncConnectionPool, projector: Projector, run: Callable[..., Awaitable[Any]],
        *, interval_s: float = INTERVAL_S,
    ) -> None:
        """``run`` calls a blocking function off the event loop (``Kasal.run``)."""
        self.pool = pool
        self.projector = projector
        self.run = run
        self.interval_s = interval_s
        self._database: dict[str, Any] = {"status": "unknown"}
        self._lag: int | None = None
        self._checked_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> tuple[dict[str, Any], bool]:
        """The full check now: a database round trip and the projector's lag behind the log."""
        healthy = True
        try:
            with anyio.fail_after(DATABASE_TIMEOUT_S):
                async with self.pool.connection() as conn:
                    await conn.execute("SELECT 1")
            self._database = {"status": "ok"}
        except Exception as exc:  # any failure to reach the database is the answer itself
            healthy = False
            self._database = {"status": "failing", "error": type(exc).__name__}
        try:
            self._lag = await self.run(self.projector.lag) if healthy else None
        except Exception:
            self._lag = None
        self._checked_at = time.monotonic()
        return self.answer()

    def answer(self) -> tuple[dict[str, Any], bool]:
        """The last check's answer (body, healthy), with the projector's state as it is now."""
        age = time.monotonic() - self._checked_at
        database = dict(self._database)
        if age > STALE_AFTER_S:
            database = {"status": "failing", "error": f"no health check for {age:.0f} s"}
        healthy = database["status"] == "ok"
        projections = {
            "status": "ok" if self.projector.last_error is None else "failing",
            "position": self.projector.position,
            "lag": self._lag,
            "leader": self.projector.leader,
            "listening": self.projector.notifications.connected,
            **({"error": self.projector.last_error} if self.projector.last_error else {}),
        }
        body = {"status": "healthy" if healthy else "unhealthy", "checked_s_ago": round(min(age, 1e6), 3),
                "checks": {"database": database, "projections": projections}}
        return body, healthy

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # the answer goes stale, and so unhealthy: say why once here
                log.exception("health check failed")
