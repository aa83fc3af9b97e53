"""Rebuild speed: seed ~100k events, then ``kasal projections rebuild`` (CLI and in-process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import psycopg

from bench.http_load import AGENT
from bench.registry import Context, Target, scenario
from bench.server import ROOT

BATCH = 1000  # aggregates per store.record(...) transaction
CHANGE_EVERY = 4  # every 4th agent also gets an update, so the log is not creates only


def seed(url: str, events: int) -> tuple[int, float]:
    """Write ``events`` agent events straight through the event store; (written, seconds)."""
    from application.store import KasalStore, postgres_env
    from domain.agent import Agent
    from domain.context import Actor, acting_as

    store = KasalStore(postgres_env(url, pool_size=2))
    written = 0
    began = time.perf_counter()
    try:
        with acting_as(Actor(group_id="bench-rebuild", actor="bench:seed")):
            i = 0
            while written < events:
                batch = []
                for _ in range(BATCH):
                    if written >= events:
                        break
                    agent = Agent.new("bench-rebuild", {**AGENT, "name": f"Agent {i}"})
                    written += 1
                    if i % CHANGE_EVERY == 0 and written < events:
                        agent.change({"goal": f"Goal {i}"})
                        written += 1
                    batch.append(agent)
                    i += 1
                store.record(*batch)
        return written, time.perf_counter() - began
    finally:
        store.close()


def cli_rebuild(url: str) -> tuple[float, int, str]:
    """Run the ``kasal projections rebuild`` CLI; (seconds, events it reported, its output)."""
    with tempfile.TemporaryDirectory(prefix="kasal-bench-rebuild-") as home:
        env = {**os.environ, "KASAL_DATABASE_URL": url, "KASAL_HOME": home, "KASAL_LOG_LEVEL": "WARNING",
               "KASAL_SECRET_KEY": "bench-secret-key"}
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "interface.cli", "projections", "rebuild"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=900, check=False)
        seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"kasal projections rebuild failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found = re.search(r"from (\d+) events", proc.stdout)
    return seconds, int(found.group(1)) if found else -1, proc.stdout.strip()


def in_process_rebuild(url: str, profile: bool) -> tuple[float, int]:
    """``Projector.rebuild()`` in this process; (seconds, events read). Optionally cProfiled."""
    from interface.settings import Settings
    from interface.wiring import wire

    core = wire(Settings(database_url=url, secret_key="bench-secret-key", log_level="WARNING"))
    try:
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            began = time.perf_counter()
            read = profiler.runcall(core.projector.rebuild)
            seconds = time.perf_counter() - began
            out = ROOT / "bench" / "results" / "rebuild.prof"
            out.parent.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(out)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            return seconds, read
        began = time.perf_counter()
        read = core.projector.rebuild()
        return time.perf_counter() - began, read
    finally:
        core.store.close()


@scenario("rebuild", order=50)
def rebuild(ctx: Context) -> None:
    """Rebuild every read model from ~100k events (no server running on that database)."""
    url = ctx.databases.create()
    events, seconds = seed(url, ctx.n(100_000, 10_000))
    ctx.report("seed via store.record (not a target)", round(events / seconds), "ev/s",
               note=f"{events} events in {seconds:.1f}s, {BATCH} aggregates per transaction")

    cli_s, cli_events, output = cli_rebuild(url)
    ctx.report("CLI `kasal projections rebuild`", round(cli_events / cli_s), "ev/s", target=Target(">", 20_000),
               note=f"{cli_events} events in {cli_s:.2f}s wall incl. interpreter start and imports")
    ctx.detail("cli_output", output)

    profile = bool(os.environ.get("KASAL_BENCH_PROFILE"))
    ip_s, ip_events = in_process_rebuild(url, profile)
    ctx.report("in-process Projector.rebuild()", round(ip_events / ip_s), "ev/s", target=Target(">", 20_000),
               note=f"{ip_events} events in {ip_s:.2f}s" + (" (under cProfile)" if profile else ""))
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM rm_agents").fetchone()
    ctx.detail("rm_agents rows after rebuild", rows[0] if rows else None)
