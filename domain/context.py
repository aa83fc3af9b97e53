"""Who is acting, for which tenant, in which request.

Commands read this instead of taking it as arguments so every event gets the
same metadata whatever code path triggered it. The interface layer sets it per
request; the runner, scheduler, recovery, seeding and CLI set explicit system
actors (``system:scheduler``, ``runner:<id>``, …). There is no default: code
that reads the actor where none was set fails with ``NoActorError`` instead
of quietly acting as someone. Context variables follow
``anyio.to_thread.run_sync`` into the event-store thread.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Actor:
    group_id: str
    actor: str
    role: str = "admin"
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class NoActorError(RuntimeError):
    """Something read the actor in a context that never set one (a bug, not a user error)."""


_current: ContextVar[Actor] = ContextVar("kasal_actor")


def current_actor() -> Actor:
    try:
        return _current.get()
    except LookupError:
        raise NoActorError(
            "no actor is set: wrap the call in acting_as(Actor(...)) naming who acts"
        ) from None


def system_actor(name: str, group_id: str, correlation_id: str | None = None) -> Actor:
    """The service itself acting (``system:<name>``) in one group, e.g. recovery or the CLI."""
    return Actor(group_id=group_id, actor=f"system:{name}", role="admin",
                 correlation_id=correlation_id or uuid.uuid4().hex)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def set_actor(actor: Actor) -> None:
    """Set the actor for the rest of this context (a request task)."""
    _current.set(actor)
