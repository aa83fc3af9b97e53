"""``kasal worker``: the crew runner without HTTP.

``kasal serve`` runs the runner next to the HTTP API when ``run_workers`` is
on. ``kasal worker`` runs the same ``Kasal`` object (built by
``interface.wiring.wire``) with only its runner and a projector that follows
or leads, for deployments that scale crews separately.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from interface.settings import Settings
from interface.wiring import Kasal

log = logging.getLogger("kasal.worker")


async def run_worker(kasal: Kasal) -> None:
    """Run projector and runner until SIGINT/SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with kasal.running():
        log.info("worker running; Ctrl-C to stop")
        await stopping.wait()


def worker_settings(settings: Settings) -> Settings:
    return settings.with_(run_workers=True, run_scheduler=False)
