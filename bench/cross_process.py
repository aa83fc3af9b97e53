"""The compose layout: two API processes (no runner) and one worker on one database.

What one process writes must reach the others at once (LISTEN/NOTIFY, not
polls): a write through API A read through API B with
``X-Kasal-Min-Position``, and log lines written outside the API processes
reaching a Server-Sent Events stream served by API B. API A starts first, so
it leads the projector; B and the worker follow it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from bench.executions import CREW, run_to_end
from bench.loadgen import ms, percentile
from bench.registry import Context, Target, scenario
from bench.server import ServerProcess

API_ONLY = {"KASAL_RUN_WORKERS": "false", "KASAL_RUN_SCHEDULER": "false"}
WRITE_SPACING_S = 0.02


@scenario("cross-process", order=66)
def cross_process(ctx: Context) -> None:
    """Two API processes and a worker: write via A → read via B, log line → SSE via B (p50/p99)."""
    url = ctx.databases.create()
    a = ServerProcess(url, name="api-a", env=API_ONLY)
    a.start()
    b = ServerProcess(url, name="api-b", env=API_ONLY)
    b.start()
    worker = ServerProcess(url, name="worker", command="worker")
    try:
        visible = read_your_writes(a, b, ctx.n(300, 50))
        ctx.report("write via A → read via B p50", ms(percentile(visible, 50)), "ms")
        ctx.report("write via A → read via B p99", ms(percentile(visible, 99)), "ms", target=Target("<", 25),
                   note="from A's 201 to B's 200 for a GET with X-Kasal-Min-Position (one HTTP request included)")
        delays, committed = asyncio.run(recorded_line_to_sse(a, b, url, ctx.n(200, 40)))
        ctx.report("log line recorded → SSE via B p50", ms(percentile(delays, 50)), "ms")
        ctx.report("log line recorded → SSE via B p99", ms(percentile(delays, 99)), "ms", target=Target("<", 25),
                   note="from just before the line is recorded, through the runner's path "
                        "(ExecutionService.record_progress), by a process of their own")
        ctx.report("log line committed → SSE via B p50", ms(percentile(committed, 50)), "ms")
        ctx.report("log line committed → SSE via B p99", ms(percentile(committed, 99)), "ms",
                   note="from the return of record_progress: the notification, projection and stream hops only")
        worker.start()
        with httpx.Client(base_url=a.base_url, timeout=180) as http:
            run_to_end(http, warmup=True)  # the worker's first crew waits for its CrewAI import
        said: list[float] = []
        for _ in range(ctx.n(5, 2)):
            said += asyncio.run(crew_lines_to_sse(a, b))
        said.sort()
        ctx.report("crew's log line → SSE via B p50", ms(percentile(said, 50)), "ms",
                   note=f"{len(said)} lines of crews the worker ran; includes the runner's batching "
                        "(a line after a quiet spell at once, then at most every 0.2 s)")
        ctx.report("crew's log line → SSE via B p99", ms(percentile(said, 99)), "ms")
    finally:
        for process in (worker, b, a):
            process.stop()
            process.cleanup()


def read_your_writes(a: ServerProcess, b: ServerProcess, count: int) -> list[float]:
    took: list[float] = []
    with httpx.Client(base_url=a.base_url, timeout=30) as writer, httpx.Client(base_url=b.base_url,
                                                                                timeout=30) as reader:
        for i in range(count + 5):
            created = writer.post("/api/v1/agents", json={
                "name": f"Cross {i}", "role": "Researcher", "goal": "Find facts", "backstory": "Curious"})
            created.raise_for_status()
            began = time.perf_counter()
            read = reader.get(f"/api/v1/agents/{created.json()['id']}",
                              headers={"X-Kasal-Min-Position": created.headers["x-kasal-position"]})
            elapsed = time.perf_counter() - began
            if read.status_code != 200 or read.headers.get("x-kasal-stale"):
                raise RuntimeError(f"B did not see A's write: {read.status_code} {read.headers}")
            if i >= 5:  # the first few warm both processes' pools
                took.append(elapsed)
    return sorted(took)


async def sse_lines(base_url: str, execution_id: str, seen: list[tuple[float, dict[str, Any]]],
                    ready: threading.Event | None = None) -> None:
    """Collect ``(arrival, log message)`` from B's stream until its ``status`` event."""
    async with httpx.AsyncClient(base_url=base_url, timeout=None) as http, http.stream(
        "GET", f"/api/v1/execution-logs/{execution_id}/stream", headers={"Accept": "text/event-stream"},
    ) as response:
        response.raise_for_status()
        if ready is not None:
            ready.set()
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "log":
                seen.append((time.time(), json.loads(line.split(":", 1)[1])))
            elif line.startswith("data:") and event == "status":
                return


def said_at(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")).timestamp()


async def recorded_line_to_sse(
    a: ServerProcess, b: ServerProcess, url: str, count: int,
) -> tuple[list[float], list[float]]:
    """This process plays the worker's part for one execution requested through A (no runner runs it):
    it appends one line at a time, each stamped just before it is recorded, while B streams them."""
    from psycopg_pool import ConnectionPool

    from application.executions import ExecutionService
    from application.store import KasalStore, postgres_env
    from domain.context import Actor, acting_as
    from domain.execution_progress import LogLine
    from interface.content_store import PostgresContentStore
    from projections.executions import ExecutionIndexQueries

    async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as http:
        requested = await http.post("/api/v1/executions", json=CREW)
        requested.raise_for_status()
    execution_id = UUID(requested.json()["execution_id"])
    store = KasalStore(postgres_env(url, pool_size=2))
    pool = ConnectionPool(url, min_size=1, max_size=2, open=True)
    service = ExecutionService(store, PostgresContentStore(pool), ExecutionIndexQueries(pool))
    seen: list[tuple[float, dict[str, Any]]] = []
    ready = threading.Event()
    returned: dict[str, float] = {}

    def write() -> None:
        ready.wait(30)
        with acting_as(Actor("local", "bench-worker", "admin", "bench")):
            service.mark_preparing(execution_id, "bench-worker")
            service.mark_running(execution_id, "bench-worker")
            for i in range(count):
                time.sleep(WRITE_SPACING_S)
                service.record_progress(execution_id, [LogLine(at=time.time(), message=f"line {i}")])
                returned[f"line {i}"] = time.time()
            service.complete(execution_id, "done")

    try:
        await asyncio.gather(sse_lines(b.base_url, str(execution_id), seen, ready), asyncio.to_thread(write))
    finally:
        store.close()
        pool.close()
    ours = [(arrived, message) for arrived, message in seen if message["message"] in returned]
    if len(ours) != count:
        raise RuntimeError(f"B streamed {len(ours)} of {count} lines")
    delays = sorted(arrived - said_at(message) for arrived, message in ours)
    return delays, sorted(arrived - returned[message["message"]] for arrived, message in ours)


async def crew_lines_to_sse(a: ServerProcess, b: ServerProcess) -> list[float]:
    """A crew on the slow offline model, requested through A, run by the worker, streamed by B."""
    slow = {**CREW, "agents_yaml": {"writer": {**CREW["agents_yaml"]["writer"], "llm": "offline/slow"}}}
    async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as http:
        requested = await http.post("/api/v1/executions", json=slow)
        requested.raise_for_status()
    execution_id = requested.json()["execution_id"]
    seen: list[tuple[float, dict[str, Any]]] = []
    await asyncio.wait_for(sse_lines(b.base_url, execution_id, seen), 120)
    async with httpx.AsyncClient(base_url=b.base_url, timeout=30) as http:
        status = (await http.get(f"/api/v1/executions/{execution_id}/status")).json()["status"]
    if status != "COMPLETED":
        raise RuntimeError(f"the worker's crew ended {status}")
    return [arrived - said_at(message) for arrived, message in seen]
