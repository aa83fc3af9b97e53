"""Reading the log back: ``GET /usage`` and ``GET /events`` with ~100k events in the log.

The log is written straight through the event store, many aggregates per
save: one group's 10,000 executions (requested over 90 days by a few actors
for a few crews, each with LLM-call progress over two models, then
completed), and agents created and updated in that group and others until
the log holds ~100k events. The projector catches up in this process (timed),
then a real server answers the queries, one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import httpx

from bench.http_load import AGENT
from bench.loadgen import LoadResult, client, run_load
from bench.registry import Context, Target, scenario
from bench.server import ServerProcess

GROUP = "bench-audit"
OTHER_GROUPS = ("bench-audit-other-1", "bench-audit-other-2")
EXECUTIONS_PER_SAVE = 200
AGENTS_PER_SAVE = 1000
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "offline/echo")
ACTORS = ("alice@example.com", "bob@example.com", "system:scheduler", "carol@example.com")
DAY0 = datetime(2025, 3, 1, tzinfo=UTC)
DAYS = 90


@contextmanager
def requested_at(at: datetime) -> Iterator[None]:
    """Executions requested at ``at`` rather than now, so the history spans many days."""
    from domain.execution import Execution

    with mock.patch.object(Execution.Requested, "create_timestamp", staticmethod(lambda: at)):
        yield


def an_execution(i: int) -> Any:
    """One completed execution with two progress batches calling two models."""
    from domain.context import Actor, acting_as
    from domain.execution import Execution
    from domain.execution_progress import LlmCall, LogLine, TextRef

    at = DAY0 + timedelta(days=i % DAYS, seconds=(i * 7919) % 86_400)
    with acting_as(Actor(group_id=GROUP, actor=ACTORS[i % len(ACTORS)])), requested_at(at):
        execution = Execution.request(GROUP, run_name=f"Run {i}", model=MODELS[i % len(MODELS)], inputs={"n": i},
                                      snapshot={"agents": {"a": {"role": "R"}}, "tasks": {"t": {"agent": "a"}}},
                                      crew_id=f"crew-{i % 20}")
    now = at.timestamp()
    with acting_as(Actor(group_id=GROUP, actor="runner:bench")):
        execution.mark_preparing()
        execution.start()
        for batch in range(2):
            model = MODELS[(i + batch) % len(MODELS)]
            execution.record_progress([
                LogLine(at=now + batch, message=f"step {batch}"),
                *(LlmCall(at=now + batch + c / 10, model=model, prompt="Summarise the facts", response="Done.",
                          prompt_tokens=200 + i % 97, completion_tokens=40 + c, latency_ms=300.0,
                          cost=round(0.0001 * (1 + (i + c) % 7), 4)) for c in range(3)),
            ])
        execution.complete(TextRef.inline(f"result {i}"))
    return execution


def seed(url: str, events: int, executions: int) -> tuple[int, float, list[str]]:
    """Write the log; (events written, seconds, a few execution ids)."""
    from application.store import KasalStore, postgres_env
    from domain.agent import Agent
    from domain.context import Actor, acting_as

    store = KasalStore(postgres_env(url, pool_size=2))
    began = time.perf_counter()
    ids: list[str] = []
    try:
        for start in range(0, executions, EXECUTIONS_PER_SAVE):
            batch = [an_execution(i) for i in range(start, min(start + EXECUTIONS_PER_SAVE, executions))]
            ids.extend(str(e.id) for e in batch[:1])
            store.record(*batch)
        written = store.max_position()
        i = 0
        while written < events:
            agents = []
            for _ in range(min(AGENTS_PER_SAVE, (events - written + 1) // 2)):
                group = (GROUP, *OTHER_GROUPS)[i % 3]
                with acting_as(Actor(group_id=group, actor=ACTORS[i % len(ACTORS)])):
                    agent = Agent.new(group, {**AGENT, "name": f"Agent {i}"})
                    agent.change({"goal": f"Goal {i}"})
                agents.append(agent)
                i += 1
            store.record(*agents)
            written = store.max_position()
        return written, time.perf_counter() - began, ids
    finally:
        store.close()


def catch_up(url: str) -> tuple[float, int]:
    """Fold the whole log into every read model in this process; (seconds, events read)."""
    from interface.settings import Settings
    from interface.wiring import wire

    core = wire(Settings(database_url=url, secret_key="bench-secret-key", log_level="WARNING"))
    try:
        began = time.perf_counter()
        read = core.projector.catch_up()
        return time.perf_counter() - began, read
    finally:
        core.store.close()


def report_latency(ctx: Context, label: str, result: LoadResult, p99: Target) -> None:
    note = (f"{result.requests} req, {result.errors} errors; CPU ms/req: server {result.server_cpu_ms}, "
            f"postgres {result.per_request(result.db_cpu)}")
    ctx.report(f"{label} p50", result.p(50), "ms", note=note)
    ctx.report(f"{label} p95", result.p(95), "ms")
    ctx.report(f"{label} p99", result.p(99), "ms", target=p99)
    ctx.report(f"{label} server CPU", result.server_cpu_ms, "ms/req")
    ctx.detail(label, result.summary())
    if result.errors:
        raise RuntimeError(f"{label}: {result.errors} failed requests, first: {result.first_error}")


Query = tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]


def usage_queries(executions: int) -> list[Query]:
    def whole(body: dict[str, Any]) -> bool:
        return bool(body["total"]["executions"] == executions)

    queries: list[Query] = [(f"GET /usage?group_by={g}", {"group_by": g}, whole)
                            for g in ("model", "crew", "day", "actor")]
    month = {"group_by": "day", "since": "2025-04-01", "until": "2025-05-01"}
    queries.append(("GET /usage?group_by=day, one month", month, lambda body: 0 < len(body["items"]) <= 30))
    return queries


def events_queries(deep_after: int, execution_id: str) -> list[Query]:
    def page(body: dict[str, Any]) -> bool:
        return bool(body["items"])

    return [
        ("GET /events?limit=100", {"limit": 100}, page),
        ("GET /events?limit=100, deep after", {"limit": 100, "after": deep_after}, page),
        ("GET /events?aggregate_id", {"limit": 100, "aggregate_id": execution_id}, page),
        ("GET /events?type=execution.", {"limit": 100, "type": "execution."}, page),
    ]


async def measure(ctx: Context, server: ServerProcess, path: str, queries: list[Query]) -> None:
    async with client(server.base_url, 1, {"X-Group-Id": GROUP}) as http:
        for label, params, sane in queries:
            first = await http.get(path, params=params)
            if first.status_code != 200 or not sane(first.json()):
                raise RuntimeError(f"{label}: unexpected answer {first.status_code}: {first.text[:300]}")
            ctx.detail(f"{label} response bytes", len(first.content))

            def send(h: httpx.AsyncClient, i: int, params: dict[str, Any] = params) -> Any:
                return h.get(path, params=params)

            await run_load(http, send, total=ctx.n(30, 5), concurrency=1)  # warm-up
            result = await run_load(http, send, total=ctx.n(300, 40), concurrency=1, server=server)
            report_latency(ctx, label, result, Target("<", 50))


async def events_served(server: ServerProcess) -> bool:
    async with client(server.base_url, 1, {"X-Group-Id": GROUP}) as http:
        return (await http.get("/api/v1/events", params={"limit": 1})).status_code == 200


@scenario("audit", order=60)
def audit(ctx: Context) -> None:
    """GET /usage (each group_by) and GET /events pages with ~100k events and 10k executions in the log."""
    url = ctx.databases.create()
    executions = ctx.n(10_000, 500)
    events, seconds, ids = seed(url, ctx.n(100_000, 8_000), executions)
    ctx.report("seed via store.record (not a target)", round(events / seconds), "ev/s",
               note=f"{events} events ({executions} executions in {GROUP}) in {seconds:.1f}s")
    folded_s, read = catch_up(url)
    ctx.report("projector catch-up", round(read / folded_s), "ev/s", note=f"{read} events in {folded_s:.1f}s")

    server = ServerProcess(url, name="audit", env={"KASAL_RUN_WORKERS": "false", "KASAL_RUN_SCHEDULER": "false"})
    try:
        server.start()
        asyncio.run(measure(ctx, server, "/api/v1/usage", usage_queries(executions)))
        if asyncio.run(events_served(server)):
            deep = int(events * 0.9)
            asyncio.run(measure(ctx, server, "/api/v1/events", events_queries(deep, ids[-1])))
        else:
            ctx.detail("events", "GET /api/v1/events is not served here: skipped")
    finally:
        server.stop()
        server.cleanup()
