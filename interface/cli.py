"""The ``kasal`` command: serve, worker, projections, tokens, events."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType

from interface.cli_events import add_events_parser, run_events
from interface.cli_tokens import add_tokens_parser, run_tokens
from interface.settings import Settings, quiet_libraries

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
    """Serve the API with projector, runner and scheduler in this process."""
    import uvicorn

    from interface.app import create_app
    from interface.wiring import wire

    settings = settings.with_(
        host=args.host or settings.host, port=args.port or settings.port
    )
    if settings.auth_mode == "local" and not is_loopback(settings.host):
        log.error(
            "refusing to serve local mode (no authentication) on %s; bind to 127.0.0.1 "
            "or set KASAL_AUTH_MODE=token", settings.host,
        )
        return 2
    with database(settings) as ready:
        app = create_app(wire(ready))
        # uvicorn has shut down gracefully by the time it re-raises SIGTERM (it swallows
        # Ctrl-C itself): either way the server's work is done and the database stops next.
        with suppress(StopRequested):
            uvicorn.run(app, host=ready.host, port=ready.port, log_level=ready.log_level.lower(),
                        lifespan="on", access_log=False)
    return 0


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
    sub.add_parser("worker", help="run crews for a shared database (no HTTP)")
    p = sub.add_parser("projections", help="maintain read models")
    p.add_argument("action", choices=["rebuild"])
    for extend in PARSER_EXTENSIONS:
        extend(sub)
    return root


PARSER_EXTENSIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []
PARSER_EXTENSIONS.append(add_tokens_parser)
PARSER_EXTENSIONS.append(add_events_parser)


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
