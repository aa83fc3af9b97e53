"""``kasal tokens create|list|revoke``: service access tokens from the command line.

This is how the first token of a group comes to be (in token mode nothing
else can authenticate yet). The plaintext is printed once; only its hash is
recorded. ``interface/cli.py`` registers the command and provides the database.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from domain.access_token import ROLES
from domain.context import acting_as, system_actor
from domain.errors import DomainError
from interface.settings import Settings

CLI_ACTOR = "cli"


def add_tokens_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("tokens", help="create, list and revoke service access tokens")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it (shown only once)")
    create.add_argument("--group", required=True, help="the group the token acts in")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", help="a label to tell tokens apart")
    listing = actions.add_parser("list", help="list a group's live tokens (no secrets)")
    listing.add_argument("--group", required=True)
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("--group", required=True)
    revoke.add_argument("id", type=uuid.UUID)


def run_tokens(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``kasal tokens`` action against ``settings.database_url``, as ``system:cli``."""
    from interface.wiring import wire

    if args.action == "list":
        return _list(settings.database_url or "", args.group)
    kasal = wire(settings)
    service = kasal.services.tokens
    try:
        with acting_as(system_actor(CLI_ACTOR, args.group)):
            if args.action == "create":
                issued = service.issue(args.role, args.name)
                print(f"token id: {issued.id}")
                print(f"token:    {issued.token}")
                print("Store the token now: it is not shown again.")
            else:
                service.revoke(args.id)
                print(f"revoked {args.id}")
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        kasal.store.close()
    return 0


def _list(url: str, group: str) -> int:
    """Read the token read model; a running server's projector keeps it current."""
    import psycopg

    from projections.access_tokens import live_tokens

    with psycopg.connect(url) as conn:
        rows = live_tokens(conn, group)
    for row in rows:
        print(f"{row['id']}  {row['role']:<8}  {row['hint']}…  {row['created_at']:%Y-%m-%d %H:%M}  {row['name']}")
    return 0
