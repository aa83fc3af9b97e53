"""HTTP scenarios against the shared service: write, list, write-to-visible, memory."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.loadgen import LoadResult, client, ms, percentile, run_load
from bench.registry import Context, Target, scenario

AGENTS = "/api/v1/agents"
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


def post_agent(http: httpx.AsyncClient, i: int) -> Any:
    return http.post(f"{AGENTS}/", json=AGENT)


def report_load(ctx: Context, label: str, result: LoadResult, targets: dict[str, Target],
                kasal: dict[str, str]) -> None:
    """Report req/s, p50 and p99 of one load phase (targets/kasal keyed by rps, p50, p99)."""
    note = (f"{result.requests} req, {result.errors} errors; CPU ms/req: server {result.server_cpu_ms}, "
            f"postgres {result.per_request(result.db_cpu)}, client {result.per_request(result.client_cpu)} "
            f"(server busy {result.server_cpu} cores)")
    ctx.report(f"{label} req/s", round(result.rps, 1), "req/s", target=targets.get("rps"),
               kasal=kasal.get("rps"), note=note)
    ctx.report(f"{label} p50", result.p(50), "ms", target=targets.get("p50"), kasal=kasal.get("p50"))
    ctx.report(f"{label} p99", result.p(99), "ms", target=targets.get("p99"), kasal=kasal.get("p99"))
    ctx.detail(label, result.summary())
    if result.errors:
        raise RuntimeError(f"{label}: {result.errors} failed requests, first: {result.first_error}")


@scenario("baseline", order=5)
def baseline(ctx: Context) -> None:
    """GET /health at concurrency 1: the floor of this HTTP stack (client + uvicorn) on this machine."""
    server = ctx.server()

    async def main() -> None:
        async with client(server.base_url, 1) as http:
            def health(h: httpx.AsyncClient, i: int) -> Any:
                return h.get("/health")

            await run_load(http, health, total=50, concurrency=1)
            result = await run_load(http, health, total=ctx.n(500, 100), concurrency=1, server=server)
            report_load(ctx, "GET /health c=1", result, {}, {})

    asyncio.run(main())


@scenario("write", order=10)
def write(ctx: Context) -> None:
    """POST /api/v1/agents at concurrency 1 and 16."""
    server = ctx.server()

    async def main() -> None:
        headers = group(ctx, "write")
        async with client(server.base_url, 16, headers) as http:
            await run_load(http, post_agent, total=ctx.n(100, 20), concurrency=4)  # warm-up
            c1 = await run_load(http, post_agent, total=ctx.n(300, 50), concurrency=1, server=server)
            report_load(ctx, "POST c=1", c1, {"p50": Target("<", 8)},
                        {"rps": "47–125", "p50": "7–21"})
            c16 = await run_load(http, post_agent, total=ctx.n(2000, 200), concurrency=16, server=server)
            report_load(ctx, "POST c=16", c16, {"rps": Target(">=", 500), "p99": Target("<", 50)},
                        {"rps": "55", "p99": "> 1000"})

    asyncio.run(main())


@scenario("list", order=20)
def list_agents(ctx: Context) -> None:
    """GET /api/v1/agents?limit=100 with 1,000 agents present, at concurrency 1 and 32."""
    server = ctx.server()
    present = 1000

    async def main() -> None:
        headers = group(ctx, "list")
        async with client(server.base_url, 32, headers) as http:
            seeded = await run_load(http, post_agent, total=present, concurrency=16)
            if seeded.errors:
                raise RuntimeError(f"seeding failed: {seeded.first_error}")
            page = (await http.get(AGENTS, params={"limit": 100})).json()
            if page.get("total") != present or len(page.get("items", [])) != 100:
                raise RuntimeError(f"expected {present} agents and a page of 100, got "
                                   f"total={page.get('total')} items={len(page.get('items', []))}")
            ctx.detail("response bytes", len((await http.get(AGENTS, params={"limit": 100})).content))

            def get_page(h: httpx.AsyncClient, i: int) -> Any:
                return h.get(AGENTS, params={"limit": 100})

            await run_load(http, get_page, total=ctx.n(100, 20), concurrency=4)  # warm-up
            c1 = await run_load(http, get_page, total=ctx.n(1000, 100), concurrency=1, server=server)
            report_load(ctx, "GET list c=1", c1, {"rps": Target(">=", 1000)}, {"rps": "34–55"})
            c32 = await run_load(http, get_page, total=ctx.n(3000, 300), concurrency=32, server=server)
            report_load(ctx, "GET list c=32", c32, {"p99": Target("<", 100)}, {})

    asyncio.run(main())


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


@scenario("visible", order=30)
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


@scenario("rss", order=90)
def memory(ctx: Context) -> None:
    """Server RSS (process + children) after the run."""
    server = ctx.server()
    rss = server.rss() / 2**20
    ctx.report("server RSS", round(rss, 1), "MiB", target=Target("<", 300), kasal="~630",
               note="uvicorn process + children (the database server is external)")
