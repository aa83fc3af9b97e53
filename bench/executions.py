"""Execution scenarios: POST→COMPLETED latency, bursts, runner log throughput, live-log latency.

They run on a service of their own (crews need the runner warm), with the
offline model, so the numbers are the service's overhead, not a model's.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
import time
from datetime import datetime
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.loadgen import ms, percentile
from bench.registry import Context, Target, scenario
from bench.server import ServerProcess

CREW = {
    "agents_yaml": {
        "writer": {"role": "Writer", "goal": "Write about {topic}", "backstory": "Terse", "llm": "offline/echo"},
    },
    "tasks_yaml": {
        "note": {"description": "Write one line about {topic}", "expected_output": "One line", "agent": "writer"},
    },
    "inputs": {"topic": "benchmarks"},
}
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
_servers: dict[str, ServerProcess] = {}


def crew_server(ctx: Context) -> ServerProcess:
    """A service with a warm runner and room for 20 crews at once."""
    if "crews" not in _servers:
        server = ServerProcess(ctx.databases.create(), name="crews", env={"KASAL_MAX_CONCURRENT_EXECUTIONS": "20"})
        server.start()
        with httpx.Client(base_url=server.base_url, timeout=120) as http:
            run_to_end(http, warmup=True)  # the first run waits for the forkserver to import crewai
        _servers["crews"] = server
        atexit.register(_stop_crew_server)
    return _servers["crews"]


def _stop_crew_server() -> None:
    server = _servers.pop("crews", None)
    if server is not None:
        server.stop()
        server.cleanup()


def run_to_end(http: httpx.Client, *, warmup: bool = False, body: dict[str, Any] | None = None) -> float:
    began = time.perf_counter()
    execution_id = http.post("/api/v1/executions", json=body or CREW).json()["execution_id"]
    deadline = began + (180 if warmup else 60)
    while time.perf_counter() < deadline:
        status = http.get(f"/api/v1/executions/{execution_id}/status").json()["status"]
        if status in TERMINAL:
            if status != "COMPLETED":
                raise RuntimeError(f"execution ended {status}")
            return time.perf_counter() - began
        time.sleep(0.005)
    raise RuntimeError("execution did not finish in time")


@scenario("exec-latency", order=60)
def execution_latency(ctx: Context) -> None:
    """POST /executions to COMPLETED for a one-agent one-task crew on the offline model."""
    server = crew_server(ctx)
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        times = sorted(run_to_end(http) for _ in range(ctx.n(20, 5)))
    ctx.report("POST→COMPLETED p50", ms(percentile(times, 50)), "ms", target=Target("<", 500), kasal="30–45 s")
    ctx.report("POST→COMPLETED p99", ms(percentile(times, 99)), "ms")


def _peak_memory(server: ServerProcess, stop: threading.Event, peak: list[int], peak_rss: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], server.pss())
        peak_rss[0] = max(peak_rss[0], server.rss())
        stop.wait(0.02)


@scenario("exec-burst", order=61)
def execution_burst(ctx: Context) -> None:
    """4 and 20 executions submitted at once: total time and peak memory of the service and its children."""
    server = crew_server(ctx)
    for count, target_s in ((4, 2.0), (ctx.n(20, 8), None)):
        peak, peak_rss = [server.pss()], [server.rss()]
        stop = threading.Event()
        sampler = threading.Thread(target=_peak_memory, args=(server, stop, peak, peak_rss))
        sampler.start()
        began = time.perf_counter()
        with httpx.Client(base_url=server.base_url, timeout=120) as http:
            ids = [http.post("/api/v1/executions", json=CREW).json()["execution_id"] for _ in range(count)]
            pending = set(ids)
            while pending and time.perf_counter() - began < 120:
                for execution_id in list(pending):
                    if http.get(f"/api/v1/executions/{execution_id}/status").json()["status"] in TERMINAL:
                        pending.discard(execution_id)
                time.sleep(0.01)
        total = time.perf_counter() - began
        stop.set()
        sampler.join()
        ctx.report(f"{count} at once: total", round(total, 2), "s",
                   target=Target("<", target_s) if target_s else None, kasal="81 s" if count == 4 else None)
        ctx.report(f"{count} at once: peak memory (PSS)", round(peak[0] / 2**20), "MiB",
                   target=Target("<", 1024) if count == 4 else None, kasal="2.8 GiB" if count == 4 else None,
                   note=f"summed RSS, which counts shared copy-on-write pages once per child: "
                        f"{round(peak_rss[0] / 2**20)} MiB")


@scenario("log-throughput", order=62)
def log_throughput(ctx: Context) -> None:
    """Log lines appended per second through the runner's path (batches of 200 into ProgressRecorded)."""
    from psycopg_pool import ConnectionPool

    from application.executions import ExecutionService
    from application.store import KasalStore, postgres_env
    from domain.context import Actor, acting_as
    from domain.execution_progress import LogLine
    from interface.content_store import PostgresContentStore
    from projections.executions import ExecutionIndexQueries

    url = ctx.databases.create()
    store = KasalStore(postgres_env(url))
    pool = ConnectionPool(url, min_size=1, max_size=2, open=True)
    content = PostgresContentStore(pool)
    content.create_table()
    service = ExecutionService(store, content, ExecutionIndexQueries(pool))
    lines, batch = ctx.n(20_000, 2_000), 200
    with acting_as(Actor("bench", "bench")):
        execution_id = service.request_execution(agents=CREW["agents_yaml"], tasks=CREW["tasks_yaml"],
                                                 model="offline/echo").execution_id
        service.mark_preparing(execution_id)
        service.mark_running(execution_id)
        began = time.perf_counter()
        for start in range(0, lines, batch):
            now = time.time()
            service.record_progress(execution_id, [LogLine(at=now, message=f"line {start + i} of the benchmark")
                                                   for i in range(batch)])
        elapsed = time.perf_counter() - began
    store.close()
    pool.close()
    ctx.report("log lines appended", round(lines / elapsed), "lines/s", target=Target(">", 5000))


@scenario("ws-latency", order=63)
def websocket_latency(ctx: Context) -> None:
    """Time from a log line in the crew's child process to a WebSocket client (includes runner batching)."""
    server = crew_server(ctx)
    slow = {**CREW, "agents_yaml": {"writer": {**CREW["agents_yaml"]["writer"], "llm": "offline/slow"}}}

    async def main() -> list[float]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            execution_id = (await http.post("/api/v1/executions", json=slow)).json()["execution_id"]
        delays: list[float] = []
        url = server.base_url.replace("http", "ws") + f"/api/v1/execution-logs/{execution_id}/stream"
        async with connect(url) as socket:
            async for raw in socket:
                message = json.loads(raw)
                if message.get("type") != "log":
                    break
                sent = datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")).timestamp()
                delays.append(time.time() - sent)
        return delays

    delays: list[float] = []
    for _ in range(ctx.n(5, 2)):
        delays += asyncio.run(main())
    delays.sort()
    ctx.report("log line → WebSocket p50", ms(percentile(delays, 50)), "ms", target=Target("<", 50),
               note=f"{len(delays)} lines; after a quiet spell a line is appended at once, then at most every 0.2 s")
    ctx.report("log line → WebSocket p99", ms(percentile(delays, 99)), "ms")
    ctx.report("service RSS after crews", round(server.rss() / 2**20), "MiB")
    _stop_crew_server()


@scenario("crew-runtime", order=64)
def crew_runtime(ctx: Context) -> None:
    """Crew children on their own (no service): start, cancel, kill, time out, death noticed."""
    import tempfile
    from pathlib import Path

    import anyio

    from domain.execution_progress import OUTCOMES, LlmCall, TaskStarted
    from interface.crew_runtime import CrewJob, CrewProcess, CrewRuntime
    from tests.hostile_tools import HostileToolFactory, end_orphan

    def job(model: str = "offline/echo", timeout_s: float | None = None, tools: tuple[str, ...] = (),
            task: str = "Write one line about benchmarks") -> CrewJob:
        return CrewJob(execution_id="bench", agents={"w": {"role": "Writer", "goal": "Write", "backstory": "Terse",
                                                           "tools": list(tools)}},
                       tasks={"t": {"description": task, "expected_output": "One line", "agent": "w"}},
                       model=model, timeout_s=timeout_s)

    async def first_and_end(process: CrewProcess, since: float) -> tuple[float, float]:
        first = -1.0
        async for _ in process.messages():
            first = time.perf_counter() - since if first < 0 else first
        return first, time.perf_counter() - since

    async def cancel_on(process: CrewProcess, kind: type) -> float:
        async for observation in process.messages():
            if isinstance(observation, kind):
                began = time.perf_counter()
                await process.acancel()
                return time.perf_counter() - began
        raise RuntimeError(f"the crew ended before a {kind.__name__}")

    async def outcome_after(process: CrewProcess, since: float) -> float:
        async for observation in process.messages():
            if isinstance(observation, OUTCOMES):
                return time.perf_counter() - since
        raise RuntimeError("no outcome")

    with CrewRuntime() as runtime:
        runtime.warm()
        starts = []
        for _ in range(ctx.n(10, 4)):
            began = time.perf_counter()
            starts.append(anyio.run(first_and_end, runtime.run(job()), began)[0])
        cancel = anyio.run(cancel_on, runtime.run(job("offline/slow")), TaskStarted)
        began = time.perf_counter()
        timed_out = anyio.run(outcome_after, runtime.run(job("offline/slow", timeout_s=0.3)), began)
    with CrewRuntime(tool_factory=HostileToolFactory()) as runtime:
        killed = anyio.run(cancel_on, runtime.run(job(tools=("stubborn",), task="Hang [use stubborn: ]")), LlmCall)
    with tempfile.TemporaryDirectory() as scratch:
        orphan = Path(scratch) / "orphan.pid"
        with CrewRuntime(tool_factory=HostileToolFactory(orphan_pid_file=orphan)) as runtime:
            began = time.perf_counter()
            process = runtime.run(job(tools=("exit_now",), task="Stop [use exit_now: ]", timeout_s=60))
            died = anyio.run(outcome_after, process, began)
        end_orphan(orphan)
    starts.sort()
    ctx.report("run() → first observation p50", ms(percentile(starts, 50)), "ms", target=Target("<", 3000),
               note=f"{len(starts)} runs on a warm forkserver")
    ctx.report("cancel → child stopped", ms(cancel), "ms", target=Target("<", 2000), note="a slow crew, SIGTERM")
    ctx.report("cancel → child killed", ms(killed), "ms", target=Target("<", 2000),
               note="ignores SIGTERM: SIGKILL after the 1.5 s grace")
    ctx.report("timeout 0.3 s → outcome", ms(timed_out), "ms", target=Target("<", 2500))
    ctx.report("child exits mid-task → FAILED outcome", ms(died), "ms", target=Target("<", 5000),
               note="exit code 7 while a process it forked still holds its pipe (so no EOF)")
