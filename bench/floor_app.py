"""The floor: a bare Litestar app whose one route returns a page of agents already encoded.

``python -m bench.floor_app [--server uvicorn|granian] [--http ...] [--loop ...]`` serves
``GET /page`` on ``KASAL_HOST:KASAL_PORT`` with the bytes of the file ``BENCH_FLOOR_BODY``
(a real ``GET /api/v1/agents?limit=100`` answer of ours). It does no work per request
beyond routing and sending, so its req/s is what this machine's Python HTTP stack can
do at all; our figures divided by its figures stay comparable across noisy machines.
uvicorn runs with the options ``kasal serve`` passes it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from litestar import Litestar, Response, get

BODY_ENV = "BENCH_FLOOR_BODY"
PATH = "/page"


def create() -> Litestar:
    """The floor app over the body file named by ``BENCH_FLOOR_BODY``."""
    body = Path(os.environ[BODY_ENV]).read_bytes()

    @get(PATH, sync_to_thread=False)
    def page() -> Response[bytes]:
        return Response(body, media_type="application/json")

    return Litestar(route_handlers=[page], openapi_config=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_app", description=__doc__)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--http", default="auto", help="uvicorn's http implementation (auto, h11, httptools)")
    parser.add_argument("--loop", default="auto", help="event loop (auto, asyncio, uvloop)")
    args = parser.parse_args(argv)
    host, port = os.environ.get("KASAL_HOST", "127.0.0.1"), int(os.environ["KASAL_PORT"])
    if args.server == "granian":
        serve_granian("bench.floor_app:create", host, port, loop=args.loop)
        return
    import uvicorn

    uvicorn.run(create(), host=host, port=port, log_level="warning", lifespan="on", access_log=False,
                http=args.http, loop=args.loop)


def serve_granian(target: str, host: str, port: int, *, loop: str = "auto") -> None:
    """Serve the ASGI app factory ``target`` with granian: one worker, one runtime thread."""
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    Granian(target, address=host, port=port, interface=Interfaces.ASGI, workers=1, factory=True,
            loop=Loops(loop), log_level=LogLevels.warning).serve()


if __name__ == "__main__":
    main()
