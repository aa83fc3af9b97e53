"""The composition root's product: everything a request or job needs, built once.

``Core`` holds the shared infrastructure; each feature (agents, tasks, …) is a
``Feature`` object built on top of it and found by type with ``core.get``.
Nothing here is a module-level singleton: tests build as many cores as they like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import anyio.to_thread
from psycopg_pool import AsyncConnectionPool

from application.store import KasalStore
from interface.settings import Settings
from projections.base import Projection
from projections.engine import Projector

log = logging.getLogger("kasal")
F = TypeVar("F", bound="Feature")
T = TypeVar("T")


class Feature:
    """One capability of the service: its read models, routes and start-up work."""

    name: ClassVar[str]

    def __init__(self, core: Core) -> None:
        self.core = core

    def projections(self) -> list[Projection]:
        return []

    def route_handlers(self) -> list[Any]:
        return []

    async def start(self) -> None:
        """Runs once the projector is up (seed built-ins, start background work)."""

    async def stop(self) -> None:
        """Runs at shutdown, before the projector and pools close."""


@dataclass
class Core:
    settings: Settings
    store: KasalStore
    pool: AsyncConnectionPool
    projector: Projector
    database_url: str
    services: dict[str, Any] = field(default_factory=dict)
    features: dict[type[Feature], Feature] = field(default_factory=dict)

    def get(self, feature: type[F]) -> F:
        found = self.features.get(feature)
        if found is None:
            raise LookupError(f"feature {feature.__name__} is not installed")
        return found  # type: ignore[return-value]

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous event-store command off the event loop."""
        return await anyio.to_thread.run_sync(fn, *args)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Core]:
        """Pool, projector (caught up) and every feature, started in order and stopped in reverse."""
        await self.pool.open(wait=True, timeout=30)
        self.projector.start()
        await self.projector.wait_for(await self.run(self.store.max_position), 60)
        started: list[Feature] = []
        try:
            for feature in self.features.values():
                await feature.start()
                started.append(feature)
            yield self
        finally:
            for feature in reversed(started):
                try:
                    await feature.stop()
                except Exception:
                    log.exception("feature %s failed to stop", feature.name)
            self.projector.stop()
            await self.pool.close()
            self.store.close()
