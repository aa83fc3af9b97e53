"""``kasal events export``: the audit log as JSON lines, the very records ``GET /api/v1/events`` serves.

It reads the audit read model through the same view as the API, so a
group's export and the API's pages cannot disagree. The read model is
brought up to the log's end first, by this process's own projector: with a
service running, that projector only follows the service's (which holds the
projector lock) until it is there; with none, it takes the lock and folds
what is missing itself. Either way nothing needs to stop.
``interface/cli.py`` registers the command and provides the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import BinaryIO

import msgspec
from psycopg_pool import AsyncConnectionPool

from interface.settings import Settings
from projections.audit import KINDS, AuditQuery, AuditView
from projections.engine import Projector

EXPORT_PAGE = 1000
STALL_S = 30.0
"""How long the read model may stand still, short of the log's end, before the export gives up."""


def add_events_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = sub.add_parser("events", help="read the audit log")
    actions = events.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write audit records as JSON lines to stdout")
    export.add_argument("--group", help="only this group's events (default: every group)")
    export.add_argument("--since", help="ISO 8601; only events at or after it (without a zone, UTC)")
    export.add_argument("--until", help="ISO 8601; only events before it (without a zone, UTC)")
    export.add_argument("--kind", choices=sorted(set(KINDS.values())))
    export.add_argument("--type", help="an exact type (agent.updated.v1) or a prefix ending in '.' (agent.)")


def run_events(args: argparse.Namespace, settings: Settings, out: BinaryIO | None = None) -> int:
    """Export the records ``args`` select from ``settings.database_url`` to ``out`` (stdout)."""
    from interface.http.common import parse_instant
    from interface.wiring import wire

    try:
        since = parse_instant(args.since) if args.since else None
        until = parse_instant(args.until) if args.until else None
    except ValueError:
        print("error: --since and --until take ISO 8601 dates or date-times", file=sys.stderr)
        return 2
    query = AuditQuery(group_id=args.group, kind=args.kind, type=args.type or None, since=since, until=until)
    kasal = wire(settings)
    try:
        if not caught_up(kasal.projector, kasal.store.max_position()):
            print(f"error: the read models stopped short of the log's end ({kasal.projector.last_error or 'stalled'})",
                  file=sys.stderr)
            return 1
        written = asyncio.run(export(kasal.views.audit, kasal.pool, query, out or sys.stdout.buffer))
    finally:
        kasal.store.close()
    print(f"exported {written} events", file=sys.stderr)
    return 0


def caught_up(projector: Projector, target: int) -> bool:
    """Run a projector until the read models reach ``target``; False if they stop moving short of it."""
    projector.start()
    try:
        last = projector.position
        while not projector.wait_sync(target, STALL_S):
            if projector.position == last:
                return False
            last = projector.position
        return True
    finally:
        projector.stop()


async def export(view: AuditView, pool: AsyncConnectionPool, query: AuditQuery, out: BinaryIO) -> int:
    """Write every record of ``query`` as one JSON line each, in log order; returns how many."""
    await pool.open(wait=True, timeout=30)
    written = 0
    try:
        while True:
            records, more = await view.page(query, EXPORT_PAGE)
            out.write(b"".join(msgspec.json.encode(record) + b"\n" for record in records))
            written += len(records)
            if not more:
                out.flush()
                return written
            query = query.after_position(records[-1]["position"])
    finally:
        await pool.close()
