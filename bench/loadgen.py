"""HTTP load: ``measure`` drives a server from another process; ``run_load`` from this one.

``measure`` (the HTTP scenarios) runs ``wrk`` when it is on PATH, else ``bench.rawload``
in a subprocess, for a fixed time after a warm-up: the generator never shares an
interpreter (or, with ``wrk``, much CPU) with the server it measures. ``run_load`` is the
older in-process httpx client with a fixed request count, kept for scenarios that time
single requests at concurrency 1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.server import ROOT, ServerProcess

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False)
    server_cpu: float | None = None  # CPU seconds per wall second (1.0 = one core busy)
    db_cpu: float | None = None  # the same for the PostgreSQL backends of the server's database
    client_cpu: float | None = None
    first_error: str | None = None
    quantiles: dict[int, float] = field(default_factory=dict)  # seconds, when there are no latencies
    generator: str = "httpx"

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def per_request(self, cores: float | None) -> float | None:
        """CPU ms per request from a cores figure (less sensitive to other load than latency)."""
        if cores is None or not self.requests:
            return None
        return round(cores * self.seconds / self.requests * 1000, 2)

    @property
    def server_cpu_ms(self) -> float | None:
        return self.per_request(self.server_cpu)

    def p(self, q: int) -> float | None:
        if not self.latencies:
            return ms(self.quantiles.get(q))
        return ms(percentile(self.latencies, q))

    def summary(self) -> dict[str, object]:
        return {
            "generator": self.generator, "concurrency": self.concurrency, "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3), "rps": round(self.rps, 1),
            "p50_ms": self.p(50), "p90_ms": self.p(90), "p99_ms": self.p(99), "max_ms": self.p(100),
            "server_cpu_cores": self.server_cpu, "client_cpu_cores": self.client_cpu,
            "server_cpu_ms_per_request": self.server_cpu_ms, "db_cpu_cores": self.db_cpu,
            "db_cpu_ms_per_request": self.per_request(self.db_cpu),
            "client_cpu_ms_per_request": self.per_request(self.client_cpu),
            "first_error": self.first_error,
        }


def client(base_url: str, concurrency: int, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """HTTP/1.1 keep-alive client with at most ``concurrency`` connections."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0, headers=headers, http2=False)


async def run_load(
    http: httpx.AsyncClient, send: Send, *, total: int, concurrency: int, max_seconds: float = 120.0,
    server: ServerProcess | None = None, ok: Callable[[httpx.Response], bool] = lambda r: r.is_success,
) -> LoadResult:
    """Send ``total`` requests from ``concurrency`` workers (stopping early after ``max_seconds``)."""
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    issued = 0
    cpu0 = server.cpu_seconds() if server else None
    db0 = server.db_cpu() if server else {}
    own0 = time.process_time()
    began = time.perf_counter()
    deadline = began + max_seconds

    async def worker() -> None:
        nonlocal issued, errors, first_error
        while issued < total and time.perf_counter() < deadline:
            i = issued
            issued += 1
            t0 = time.perf_counter()
            try:
                response = await send(http, i)
                good = ok(response)
                problem = None if good else f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as exc:
                good, problem = False, f"{type(exc).__name__}: {exc}"
            latencies.append(time.perf_counter() - t0)
            if not good:
                errors += 1
                first_error = first_error or problem

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    latencies.sort()
    server_cpu = db_cpu = None
    if server is not None and cpu0 is not None:
        server_cpu = round((server.cpu_seconds() - cpu0) / wall, 3)
        db_cpu = round(sum(t - db0.get(pid, 0.0) for pid, t in server.db_cpu().items()) / wall, 3)
    return LoadResult(
        concurrency=concurrency, requests=len(latencies), errors=errors, seconds=wall,
        latencies=latencies, server_cpu=server_cpu, db_cpu=db_cpu,
        client_cpu=round((time.process_time() - own0) / wall, 3), first_error=first_error,
    )


@dataclass(frozen=True)
class Request:
    """What every connection sends over and over; ``expect`` an exact status (else any 2xx)."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    expect: int | None = None


def generator() -> str:
    """``wrk`` when on PATH (``KASAL_BENCH_LOADGEN=python`` forces the Python one), else ``python``."""
    if os.environ.get("KASAL_BENCH_LOADGEN", "wrk") == "wrk" and shutil.which("wrk"):
        return "wrk"
    return "python"


def measure(base_url: str, request: Request, *, concurrency: int, seconds: int, warmup: int = 1,
            server: ServerProcess | None = None) -> LoadResult:
    """Warm up for ``warmup`` s, then load for ``seconds`` s from another process.

    With ``server``, its process tree's CPU (and its PostgreSQL backends') over the load
    phase is divided by the requests served: CPU ms per request, which other load on the
    machine disturbs far less than req/s or latency.
    """
    run = _wrk if generator() == "wrk" else _rawload
    if warmup:
        run(base_url, request, concurrency, warmup, None)
    return run(base_url, request, concurrency, seconds, server)


class _Window:
    """Server, database and client CPU seconds from ``begin()`` to ``end()``."""

    def __init__(self, server: ServerProcess | None) -> None:
        self.server = server
        self.cpu0 = 0.0
        self.db0: dict[int, float] = {}
        self.children0 = 0.0
        self.server_cpu: float | None = None
        self.db_cpu: float | None = None
        self.client_cpu = 0.0

    @staticmethod
    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def begin(self) -> None:
        self.children0 = self.children_cpu()
        if self.server is not None:
            self.cpu0 = self.server.cpu_seconds()
            self.db0 = self.server.db_cpu()

    def end(self) -> None:
        if self.server is not None:
            self.server_cpu = self.server.cpu_seconds() - self.cpu0
            self.db_cpu = sum(t - self.db0.get(pid, 0.0) for pid, t in self.server.db_cpu().items())

    def result(self, concurrency: int, requests: int, errors: int, duration: float,
               quantiles: dict[int, float], first_error: str | None, name: str) -> LoadResult:
        """A ``LoadResult`` whose cores figures times ``duration`` give the CPU seconds measured."""

        def cores(cpu: float | None) -> float | None:
            return None if cpu is None or duration <= 0 else round(cpu / duration, 3)

        return LoadResult(
            concurrency=concurrency, requests=requests, errors=errors, seconds=duration, latencies=[],
            server_cpu=cores(self.server_cpu), db_cpu=cores(self.db_cpu), client_cpu=cores(self.client_cpu),
            first_error=first_error, quantiles=quantiles, generator=name,
        )


_WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
bad = 0
first = nil
function response(status, headers, body)
  if {bad_status} then
    bad = bad + 1
    if first == nil then first = "HTTP " .. status .. ": " .. string.sub(body, 1, 300) end
  end
end
function done(summary, latency, requests)
  local total, problem = 0, ""
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
    problem = problem == "" and (t:get("first") or "") or problem
  end
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f\\n", summary.requests,
    summary.duration, total, e.connect, e.read, e.write, e.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
  io.write("BENCH_FIRST " .. string.gsub(problem, "\\n", " ") .. "\\n")
end
"""


def _lua(text: str | bytes) -> str:
    """A Lua string literal for any bytes (decimal escapes for everything but plain ASCII)."""
    raw = text.encode() if isinstance(text, str) else text
    plain = set(range(0x20, 0x7F)) - {ord("\\"), ord('"')}
    return '"' + "".join(chr(b) if b in plain else f"\\{b}" for b in raw) + '"'


def _wrk(base_url: str, request: Request, concurrency: int, seconds: int,
         server: ServerProcess | None) -> LoadResult:
    headers = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in request.headers.items())
    bad_status = f"status ~= {request.expect}" if request.expect else "status < 200 or status > 299"
    script = _WRK_SCRIPT.format(method=_lua(request.method), body=_lua(request.body) if request.body else "nil",
                                headers=headers, bad_status=bad_status)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="kasal-bench-") as lua:
        lua.write(script)
        lua.flush()
        window = _Window(server)
        window.begin()
        done = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "--latency",
             "-s", lua.name, base_url + request.path],
            capture_output=True, text=True, timeout=seconds + 60, check=False,
        )
        window.end()
        window.client_cpu = window.children_cpu() - window.children0
    lines = {line.split(" ", 1)[0]: line for line in done.stdout.splitlines() if line.startswith("BENCH")}
    if done.returncode != 0 or "BENCH" not in lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-2000:]}")
    counts = [int(x) for x in lines["BENCH"].split()[1:8]]
    requests, duration_us, bad, sockets = counts[0], counts[1], counts[2], counts[3:]
    p50, p90, p99, top = (float(x) / 1e6 for x in lines["BENCH"].split()[8:])
    first = lines.get("BENCH_FIRST", "BENCH_FIRST ").split(" ", 1)[1].strip() or None
    if sum(sockets):
        first = (f"socket errors: connect {sockets[0]}, read {sockets[1]}, write {sockets[2]}, "
                 f"timeout {sockets[3]}" + (f"; {first}" if first else ""))
    quantiles = {50: p50, 90: p90, 99: p99, 100: top} if requests else {}
    return window.result(concurrency, requests, bad + sum(sockets), duration_us / 1e6, quantiles, first, "wrk")


def _rawload(base_url: str, request: Request, concurrency: int, seconds: int,
             server: ServerProcess | None) -> LoadResult:
    url = urlsplit(base_url)
    spec: dict[str, Any] = {
        "host": url.hostname, "port": url.port, "method": request.method, "path": request.path,
        "body": base64.b64encode(request.body).decode(), "headers": request.headers,
        "concurrency": concurrency, "seconds": seconds, "expect": request.expect,
    }
    window = _Window(server)
    with subprocess.Popen([sys.executable, "-m", "bench.rawload"], cwd=ROOT, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
        if child.stdout.readline().strip() != "go":
            raise RuntimeError("bench.rawload did not start")
        window.begin()
        out = child.stdout.read()
        child.wait(seconds + 60)
        window.end()
    if child.returncode != 0 or not out.strip():
        raise RuntimeError(f"bench.rawload failed ({child.returncode}): {out[-2000:]}")
    got = json.loads(out)
    window.client_cpu = got["client_cpu"]
    quantiles = {int(q): v for q, v in got["quantiles"].items() if v is not None}
    return window.result(concurrency, got["requests"], got["bad_status"] + got["socket_errors"],
                         got["duration"], quantiles, got["first_error"], "python")

