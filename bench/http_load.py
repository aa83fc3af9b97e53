"""HTTP scenarios against the shared service: health, write, list, write-to-visible, memory.

Throughput and latency come from ``bench.loadgen.measure`` (``wrk``, or a generator in its
own process), for a fixed time after a warm-up, and each figure is set beside the floor:
a bare Litestar app serving the same page bytes on the same uvicorn settings, measured in
the same run at the same concurrency. The ratio (our req/s / the floor's) is what to
compare between machines and runs; CPU ms per request of the server is the other steady one.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from bench.floor import Floor
from bench.loadgen import LoadResult, Request, client, measure, ms, percentile
from bench.registry import Context, Target, scenario
from bench.server import ServerProcess

AGENTS = "/api/v1/agents"
PAGE = f"{AGENTS}?limit=100"
PAGE_SIZE = 100
AGENT = {
    "name": "Research Agent",
    "role": "Senior Researcher",
    "goal": "Conduct thorough research on given topics",
    "backstory": "You are an experienced researcher with expertise in gathering and analyzing information",
    "llm": "gpt-4",
    "tools": ["search_tool", "browser_tool"],
    "allow_delegation": False,
    "verbose": True,
}


def group(ctx: Context, name: str) -> dict[str, str]:
    """Each scenario writes into its own tenant (local mode honours X-Group-Id)."""
    return {"X-Group-Id": f"bench-{name}-{ctx.run_id}"}


def agents_page(ctx: Context, server: ServerProcess) -> bytes:
    """The bytes of ``GET /agents?limit=100`` in the list group, seeding it with 100 agents first."""
    headers = group(ctx, "list")
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30.0) as http:
        present = http.get(AGENTS, params={"limit": 1}).raise_for_status().json()["total"]
        for _ in range(PAGE_SIZE - present):
            http.post(f"{AGENTS}/", json=AGENT).raise_for_status()
        response = http.get(PAGE).raise_for_status()
    page = response.json()
    if page.get("total") != PAGE_SIZE or len(page.get("items", [])) != PAGE_SIZE:
        raise RuntimeError(f"expected {PAGE_SIZE} agents and a page of them, got "
                           f"total={page.get('total')} items={len(page.get('items', []))}")
    return response.content


def floor(ctx: Context, label: str, concurrency: int) -> LoadResult:
    """The floor at ``concurrency``, measured now (the process starts on our real page bytes on first use)."""
    if ctx.floor is None:
        ctx.floor = Floor(agents_page(ctx, ctx.server()), seconds=ctx.http_seconds()).start()
    result = ctx.floor.measure(concurrency)
    ctx.detail(f"{label} floor", result.summary())
    if result.errors:
        raise RuntimeError(f"floor c={concurrency}: {result.errors} failed requests, first: {result.first_error}")
    return result


def describe(result: LoadResult) -> str:
    return (f"{result.requests} req in {result.seconds:.1f} s by {result.generator}, {result.errors} errors; "
            f"CPU ms/req: server {result.server_cpu_ms}, postgres {result.per_request(result.db_cpu)}, "
            f"client {result.per_request(result.client_cpu)} (server busy {result.server_cpu} cores)")


def report_load(ctx: Context, label: str, result: LoadResult, targets: dict[str, Target],
                kasal: dict[str, str], base: LoadResult | None = None, versus: str = "floor") -> None:
    """Report req/s, its ratio to ``base`` (the floor), p50, p99 and server CPU ms/req of one load phase.

    ``targets``/``kasal`` are keyed by rps, p50, p99; ``versus`` names ``base`` if it is not the floor.
    """
    answered = result.requests > 0
    ctx.report(f"{label} req/s", round(result.rps, 1) if answered else None, "req/s",
               target=targets.get("rps"), kasal=kasal.get("rps"), note=describe(result))
    if not answered:
        base = None
    if base is not None and base.rps and versus != "floor":
        ctx.report(f"{label} / {versus}", round(result.rps / base.rps, 3), "x",
                   note=f"{versus}: {base.rps:,.0f} req/s, server CPU {base.server_cpu_ms} ms/req")
    elif base is not None and base.rps:
        ctx.report(f"{label} / floor", round(result.rps / base.rps, 3), "x",
                   note=f"floor (bare Litestar app serving our {PAGE_SIZE}-agent page bytes, same uvicorn "
                        f"settings) at c={base.concurrency} just before: {base.rps:,.0f} req/s, "
                        f"p50 {base.p(50)} ms, p99 {base.p(99)} ms, server CPU {base.server_cpu_ms} ms/req")
    ctx.report(f"{label} p50", result.p(50), "ms", target=targets.get("p50"), kasal=kasal.get("p50"))
    ctx.report(f"{label} p99", result.p(99), "ms", target=targets.get("p99"), kasal=kasal.get("p99"))
    ctx.report(f"{label} server CPU", result.server_cpu_ms, "ms/req",
               note=f"postgres backends {result.per_request(result.db_cpu)} ms/req")
    ctx.detail(label, result.summary())
    if not answered:
        raise RuntimeError(f"{label}: no request was answered in {result.seconds:.1f} s (is the server stuck?)")
    if result.errors:
        raise RuntimeError(f"{label}: {result.errors} failed requests, first: {result.first_error}")


def load(ctx: Context, label: str, request: Request, concurrency: int, targets: dict[str, Target],
         kasal: dict[str, str]) -> None:
    """Measure ``request`` at ``concurrency`` against the shared service and report it beside the floor."""
    base = floor(ctx, label, concurrency)
    server = ctx.server()
    result = measure(server.base_url, request, concurrency=concurrency, seconds=ctx.http_seconds(), server=server)
    report_load(ctx, label, result, targets, kasal, base)


@scenario("baseline", order=5, web=True)
def baseline(ctx: Context) -> None:
    """GET /health at concurrency 1: the floor of our own HTTP stack (middleware, no database)."""
    load(ctx, "GET /health c=1", Request("GET", "/health"), 1, {"rps": Target(">=", 2500)}, {})


def post_agent(ctx: Context) -> Request:
    headers = {**group(ctx, "write"), "Content-Type": "application/json"}
    return Request("POST", f"{AGENTS}/", json.dumps(AGENT).encode(), headers, expect=201)


@scenario("write", order=10, web=True)
def write(ctx: Context) -> None:
    """POST /api/v1/agents at concurrency 1 and 16 (every answer must be 201)."""
    load(ctx, "POST c=1", post_agent(ctx), 1, {"p50": Target("<", 5)}, {"rps": "47–125", "p50": "7–21"})
    load(ctx, "POST c=16", post_agent(ctx), 16, {"rps": Target(">=", 800), "p99": Target("<", 40)},
         {"rps": "55", "p99": "> 1000"})


@scenario("list", order=20, web=True)
def list_agents(ctx: Context) -> None:
    """GET /api/v1/agents?limit=100 with 100 agents present, at concurrency 1 and 32."""
    ctx.detail("response bytes", len(agents_page(ctx, ctx.server())))
    page = Request("GET", PAGE, headers=group(ctx, "list"))
    load(ctx, "GET list c=1", page, 1, {"rps": Target(">=", 2000)}, {"rps": "34–55"})
    load(ctx, "GET list c=32", page, 32, {"rps": Target(">=", 2000), "p99": Target("<", 30)}, {})


async def _post_then_list(http: httpx.AsyncClient) -> float:
    """Seconds from sending a POST until a GET list (by the same client) includes it."""
    t0 = time.perf_counter()
    created = (await http.post(f"{AGENTS}/", json=AGENT)).raise_for_status().json()
    items = (await http.get(AGENTS, params={"limit": 1})).raise_for_status().json()["items"]
    elapsed = time.perf_counter() - t0
    if not items or items[0]["id"] != created["id"]:
        raise RuntimeError("read-your-writes broken: the list after a POST lacks the new agent")
    return elapsed


async def _seen_by_poller(writer: httpx.AsyncClient, poller: httpx.AsyncClient) -> tuple[float, float, int]:
    """(seconds until a second client's poll saw the new agent, seconds until the POST answered, polls)."""
    baseline = (await poller.get(AGENTS, params={"limit": 1})).json()["items"]
    before = baseline[0]["id"] if baseline else None
    posted = asyncio.Event()
    sent_at = 0.0
    polls = 0

    async def poll() -> tuple[float, str]:
        nonlocal polls
        await posted.wait()
        limit = time.perf_counter() + 5.0
        while polls < 5000 and time.perf_counter() < limit:
            polls += 1
            items = (await poller.get(AGENTS, params={"limit": 1})).json()["items"]
            if items and items[0]["id"] != before:
                return time.perf_counter(), items[0]["id"]
        raise RuntimeError("the poller did not see the new agent within 5 s")

    async def post() -> tuple[float, str]:
        nonlocal sent_at
        sent_at = time.perf_counter()
        posted.set()
        created = (await writer.post(f"{AGENTS}/", json=AGENT)).raise_for_status().json()
        return time.perf_counter(), created["id"]

    (seen_at, seen_id), (answered_at, new_id) = await asyncio.gather(poll(), post())
    if seen_id != new_id:
        raise RuntimeError("the poller saw a different agent than the one posted")
    return seen_at - sent_at, answered_at - sent_at, polls


@scenario("visible", order=30, web=True)
def write_to_visible(ctx: Context) -> None:
    """Write-to-visible-in-list latency, two ways (see the metric notes)."""
    server = ctx.server()
    rounds = ctx.n(200, 30)

    async def main() -> None:
        headers = group(ctx, "visible")
        async with client(server.base_url, 1, headers) as writer, client(server.base_url, 1, headers) as poller:
            for _ in range(5):
                await _post_then_list(writer)  # warm-up
            rw = sorted([await _post_then_list(writer) for _ in range(rounds)])
            ctx.report("POST→GET list (same client) p50", ms(percentile(rw, 50)), "ms",
                       note="client-observed: POST answered (read-your-writes), then GET ?limit=1 includes it")
            ctx.report("POST→GET list (same client) p99", ms(percentile(rw, 99)), "ms", target=Target("<", 25))
            seen, answered, polls, early = [], [], 0, 0
            for _ in range(rounds):
                s, a, p = await _seen_by_poller(writer, poller)
                seen.append(s)
                answered.append(a)
                polls += p
                early += s < a
            seen.sort()
            answered.sort()
            ctx.report("POST sent→seen by 2nd client poll p50", ms(percentile(seen, 50)), "ms",
                       note=f"server-side visibility: independent client polls GET ?limit=1; "
                            f"{early}/{rounds} seen before the POST response, {polls / rounds:.1f} polls/round")
            ctx.report("POST sent→seen by 2nd client poll p99", ms(percentile(seen, 99)), "ms",
                       target=Target("<", 25))
            ctx.detail("post_response_while_polled_ms", {"p50": ms(percentile(answered, 50)),
                                                           "p99": ms(percentile(answered, 99))})
            ctx.detail("rounds", rounds)

    asyncio.run(main())


@scenario("rss", order=35, web=True)
def memory(ctx: Context) -> None:
    """API processes' RSS after the HTTP scenarios: their sum and the largest one."""
    server = ctx.server()
    sizes = server.rss_each()
    if not sizes:
        raise RuntimeError(f"the service is not running:\n{server.tail()}")
    ctx.detail("api_processes", len(sizes))
    ctx.report("API RSS (sum)", round(sum(sizes) / 2**20, 1), "MiB", target=Target("<", 300), kasal="~630",
               note=f"{len(sizes)} process(es): the serve process and its children (the database is external)")
    ctx.report("API RSS (largest process)", round(max(sizes, default=0) / 2**20, 1), "MiB")
