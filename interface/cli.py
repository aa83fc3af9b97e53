"""The ``kasal`` command: serve, worker, projections, tokens, events."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING

from interface.cli_events import add_events_parser, run_events
from interface.cli_tokens import add_tokens_parser, run_tokens
from interface.settings import Settings, quiet_libraries

if TYPE_CHECKING:
    from litestar import Litestar

log = logging.getLogger("kasal")
Command = Callable[[argparse.Namespace, Settings], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StopRequested(BaseException):
    """SIGTERM, raised in the main thread so the stack unwinds and every ``finally`` runs.

    Python's default SIGTERM ends the process on the spot, and uvicorn re-raises
    the signal once its graceful shutdown is done: without this, ``kasal serve``
    stopped by systemd, Docker or CI would leave its embedded PostgreSQL running.
    A BaseException, like KeyboardInterrupt, so ``except Exception`` cannot swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises StopRequested (Ctrl-C already raises KeyboardInterrupt)."""

    def raise_stop(signum: int, frame: FrameType | None) -> None:
        raise StopRequested(signum)

    previous = signal.signal(signal.SIGTERM, raise_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """Settings with a database URL: the given one, or an embedded PostgreSQL under home."""
    if settings.database_url:
        yield settings
        return
    from interface.embedded_pg import EmbeddedPostgres

    settings.home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(settings.home / "pgdata")
    url = server.start()
    log.info("embedded PostgreSQL running for %s", settings.home / "pgdata")
    try:
        yield settings.with_(database_url=url)
    finally:
        server.stop()


@command("serve")
def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the API with projector, runner and scheduler in this process, or in
    ``KASAL_WEB_CONCURRENCY`` (``--workers``) processes on one address."""
    settings = settings.with_(
        host=args.host or settings.host, port=args.port or settings.port,
        web_concurrency=settings.web_concurrency if args.workers is None else args.workers,
    )
    if settings.auth_mode == "local" and not is_loopback(settings.host):
        log.error(
            "refusing to serve local mode (no authentication) on %s; bind to 127.0.0.1 "
            "or set KASAL_AUTH_MODE=token", settings.host,
        )
        return 2
    if settings.web_concurrency < 1:
        log.error("KASAL_WEB_CONCURRENCY must be at least 1, not %d", settings.web_concurrency)
        return 2
    with database(settings) as ready:
        if ready.web_concurrency > 1:
            return serve_processes(ready)
        import uvicorn

        from interface.app import create_app
        from interface.wiring import wire

        app = create_app(wire(ready))
        tune_collector()
        # uvicorn has shut down gracefully by the time it re-raises SIGTERM (it swallows
        # Ctrl-C itself): either way the server's work is done and the database stops next.
        with suppress(StopRequested):
            uvicorn.run(app, host=ready.host, port=ready.port, log_level=ready.log_level.lower(),
                        lifespan="on", access_log=False)
    return 0


def serve_processes(settings: Settings) -> int:
    """Run ``settings.web_concurrency`` API processes on one listening socket, under uvicorn's supervisor.

    The database is brought up to date here first (``prepare_database``), so the processes, which
    start side by side, find it ready. Each builds the whole service (``api_process``) from the
    environment, which carries the database URL (an embedded server stays this process's) and its
    share of the pool size, so N processes fit the server's connections as one did. The supervisor
    restarts a process that dies; SIGTERM or SIGINT makes it stop every process gracefully and
    return, and the caller then stops the embedded database.
    """
    import uvicorn

    prepare_database(settings)
    os.environ.update({
        "KASAL_DATABASE_URL": str(settings.database_url),
        "KASAL_HOST": settings.host,
        "KASAL_PORT": str(settings.port),
        "KASAL_POOL_SIZE": str(process_pool_size(settings)),
        "KASAL_WEB_CONCURRENCY": "1",
    })
    uvicorn.run(f"{__name__}:api_process", factory=True, host=settings.host, port=settings.port,
                workers=settings.web_concurrency, log_level=settings.log_level.lower(), lifespan="on",
                access_log=False)
    return 0


def prepare_database(settings: Settings) -> None:
    """Start the service once without runner or scheduler, and stop it: tables, read models and built-ins.

    Processes starting side by side on a new database would race: two ``CREATE TABLE IF NOT EXISTS``
    of one table can both go ahead, and the second fails its process's start.
    """
    import asyncio

    from interface.wiring import wire

    async def start_and_stop() -> None:
        async with wire(settings.with_(run_workers=False, run_scheduler=False, pool_size=2)).running():
            pass

    asyncio.run(start_and_stop())


def process_pool_size(settings: Settings) -> int:
    """One API process's ``pool_size``: ``KASAL_POOL_SIZE`` shared out among the processes (2 at least)."""
    return max(2, settings.pool_size // settings.web_concurrency)


def api_process() -> Litestar:
    """The app of one of ``serve_processes``'s children: the whole service, built from the environment."""
    from interface.app import create_app
    from interface.wiring import wire

    stop_with_parent()
    quiet_libraries()
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(wire(settings))
    tune_collector()
    return app


COLLECTOR_THRESHOLDS = (20_000, 50, 100)
"""Python's are (700, 10, 10): a young collection every 700 allocations, a full one every 100 of those."""


def tune_collector() -> None:
    """Keep the garbage collector out of request latency in a long-lived API process.

    Everything built so far (modules, the app, its routes and schemas) lives as
    long as the process: frozen, the collector no longer walks it. Requests
    allocate thousands of short-lived objects each, so young collections are
    made rarer too. POST /agents at 16 connections: p99 53–78 ms with Python's
    defaults, 35–38 ms with these (the same throughput).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def stop_with_parent() -> None:
    """On Linux, have the kernel send this process SIGTERM when its parent dies.

    uvicorn's supervisor stops its processes when it is asked to; killed outright (SIGKILL, OOM),
    it cannot, and they would go on serving its socket with nobody to restart or stop them.
    """
    if sys.platform != "linux":
        return
    import ctypes
    import multiprocessing

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


@command("worker")
def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run crews (claim and execute PENDING executions) without serving HTTP."""
    import asyncio

    from interface.wiring import wire
    from interface.worker import run_worker, worker_settings

    if not settings.database_url:
        log.error("kasal worker runs crews for a shared database: set KASAL_DATABASE_URL")
        return 2
    asyncio.run(run_worker(wire(worker_settings(settings))))
    return 0


@command("projections")
def projections(args: argparse.Namespace, settings: Settings) -> int:
    """``kasal projections rebuild``: fold every read model again from the event log."""
    from interface.wiring import wire
    from projections.engine import ProjectorBusyError

    if args.action != "rebuild":
        return 2
    with database(settings) as ready:
        kasal = wire(ready)
        total = kasal.store.max_position()

        def progress(done: int, of: int) -> None:
            width = 40
            filled = int(width * done / of) if of else width
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{of} events")
            sys.stderr.flush()

        try:
            read = kasal.projector.rebuild(progress)
        except ProjectorBusyError as exc:
            print(f"kasal: {exc}", file=sys.stderr)
            return 1
        finally:
            kasal.store.close()
        sys.stderr.write("\n")
        print(f"rebuilt {len(kasal.projector.projections)} read models from {read} events (log position {total})")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kasal", description="Kasal-ES: event-sourced AI agent workflows")
    sub = root.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve the HTTP API (embedded PostgreSQL unless KASAL_DATABASE_URL)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, help="API processes on the address (default: KASAL_WEB_CONCURRENCY, 1)")
    sub.add_parser("worker", help="run crews for a shared database (no HTTP)")
    p = sub.add_parser("projections", help="maintain read models")
    p.add_argument("action", choices=["rebuild"])
    for extend in PARSER_EXTENSIONS:
        extend(sub)
    return root


PARSER_EXTENSIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []
PARSER_EXTENSIONS.append(add_tokens_parser)
PARSER_EXTENSIONS.append(add_events_parser)


def add_conformance_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from kasal_testkit.conformance import add_arguments

    add_arguments(sub.add_parser("conformance", help="check a server speaking the Kasal REST API (kasal_testkit)"))


PARSER_EXTENSIONS.append(add_conformance_parser)


@command("conformance")
def conformance(args: argparse.Namespace, settings: Settings) -> int:
    """``kasal conformance --base-url URL``: the property-based test kit against a running server."""
    from kasal_testkit.conformance import main as check

    return check(args)


@command("events")
def events(args: argparse.Namespace, settings: Settings) -> int:
    """``kasal events export``: the audit log as JSON lines, while the service runs or not."""
    with database(settings) as ready:
        return run_events(args, ready)


@command("tokens")
def tokens(args: argparse.Namespace, settings: Settings) -> int:
    """``kasal tokens create|list|revoke`` against the configured (or embedded) database."""
    with database(settings) as ready:
        return run_tokens(args, ready)


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        with sigterm_unwinds():
            return COMMANDS[args.command](args, settings)
    except StopRequested as stopped:
        log.warning("kasal %s interrupted by signal %d", args.command, stopped.signum)
        return 128 + stopped.signum


if __name__ == "__main__":
    sys.exit(main())
