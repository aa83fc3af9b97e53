"""A bounded HTTP load generator: N keep-alive connections, a fixed request count, a time cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from bench.server import ServerProcess

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

    def p(self, q: float) -> float | None:
        return ms(percentile(self.latencies, q))

    def summary(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency, "requests": self.requests, "errors": self.errors,
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
