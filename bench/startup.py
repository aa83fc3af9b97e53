"""Cold start of ``kasal serve`` to a healthy ``/health``: given database, and embedded PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.registry import Context, Target, scenario
from bench.server import ROOT, ServerProcess

TARGET = Target("<", 3)


def import_seconds() -> float:
    """How long the interpreter takes just to import the app (a floor for any start)."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import interface.app, interface.wiring"], cwd=ROOT,
                   check=True, timeout=120, capture_output=True)
    return time.perf_counter() - began


def timed_start(server: ServerProcess) -> float:
    try:
        return server.start(timeout=120)
    finally:
        server.stop()


@scenario("startup", order=60)
def startup(ctx: Context) -> None:
    """Process start → /health 200, with KASAL_DATABASE_URL and with the embedded PostgreSQL."""
    ctx.detail("import interface.app (s)", round(import_seconds(), 3))
    url = ctx.databases.create()
    first = ServerProcess(url, name="start-url-1")
    try:
        ctx.report("given DB URL, empty database", round(timed_start(first), 3), "s", target=TARGET, kasal="~44")
        again = ServerProcess(url, name="start-url-2", home=first.home)
        ctx.report("given DB URL, existing schema", round(timed_start(again), 3), "s", target=TARGET)
    finally:
        first.cleanup()

    embedded = ServerProcess(None, name="start-embedded-1")
    try:
        ctx.report("embedded PG, fresh home (initdb)", round(timed_start(embedded), 3), "s", target=TARGET,
                   kasal="~44")
        warm = ServerProcess(None, name="start-embedded-2", home=embedded.home)
        ctx.report("embedded PG, warm (same home)", round(timed_start(warm), 3), "s", target=TARGET)
    finally:
        embedded.cleanup()
