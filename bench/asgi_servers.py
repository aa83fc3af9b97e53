"""Would another ASGI server pay? The floor and our app under uvicorn and under granian.

Granian is not a dependency: without it (``pip install granian`` into the venv) this
scenario measures the uvicorn variants only. uvicorn runs as ``kasal serve`` runs it
(``http``/``loop`` on auto, which picks httptools and uvloop when installed) and, for
comparison, on its pure-Python h11 parser and the asyncio loop.
"""

from __future__ import annotations

import importlib.util

from bench.floor import Floor
from bench.http_load import PAGE, agents_page, group, post_agent, report_load
from bench.loadgen import LoadResult, Request, measure
from bench.registry import Context, scenario
from bench.server import ServerProcess

FLOORS: dict[str, tuple[str, ...]] = {
    "uvicorn": (),
    "uvicorn h11+asyncio": ("--http", "h11", "--loop", "asyncio"),
    "granian": ("--server", "granian"),
}


def has_granian() -> bool:
    return importlib.util.find_spec("granian") is not None


def ours(ctx: Context, server: ServerProcess, name: str,
         against: dict[str, LoadResult] | None = None) -> dict[str, LoadResult]:
    """Our app's health, list and write figures under the ASGI server ``name``."""
    requests = {
        "GET /health c=1": (Request("GET", "/health"), 1),
        "GET list c=1": (Request("GET", PAGE, headers=group(ctx, "list")), 1),
        "GET list c=32": (Request("GET", PAGE, headers=group(ctx, "list")), 32),
        "POST c=16": (post_agent(ctx), 16),
    }
    results = {}
    for label, (request, concurrency) in requests.items():
        result = measure(server.base_url, request, concurrency=concurrency, seconds=ctx.http_seconds(),
                         server=server)
        base = against.get(label) if against else None
        report_load(ctx, f"ours {name} {label}", result, {}, {}, base, versus="uvicorn" if base else "floor")
        results[label] = result
    return results


@scenario("asgi-servers", order=40)
def asgi_servers(ctx: Context) -> None:
    """The floor app and ours under uvicorn (auto; h11+asyncio) and granian, at c=1 and c=32."""
    server = ctx.server()
    body = agents_page(ctx, server)
    floors = {name: args for name, args in FLOORS.items() if has_granian() or "granian" not in args}
    uvicorn_floor: dict[int, LoadResult] = {}
    for name, args in floors.items():
        floor = Floor(body, seconds=ctx.http_seconds(), args=args).start()
        try:
            for concurrency in (1, 32):
                result = floor.measure(concurrency)
                base = uvicorn_floor.get(concurrency)
                report_load(ctx, f"floor {name} c={concurrency}", result, {}, {}, base,
                            versus="uvicorn" if base else "floor")
                uvicorn_floor.setdefault(concurrency, result)
        finally:
            floor.close()
    uvicorn = ours(ctx, server, "uvicorn")
    if not has_granian():
        ctx.report("granian", None, "", note="not installed: pip install granian into the venv to compare")
        return
    database_url = server.database_url
    ctx.stop_server()  # one server at a time on the 2 cores; the database (and its agents) stays
    granian = ServerProcess(database_url, name="granian", module=("bench.granian_app",),
                            env={"KASAL_RUN_WORKERS": "false"})
    granian.start()
    try:
        ours(ctx, granian, "granian", against=uvicorn)
    finally:
        granian.stop()
        granian.cleanup()


