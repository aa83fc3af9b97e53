"""Who is acting, for which tenant, in which request.

Commands read this instead of taking it as arguments so every event gets the
same metadata whatever code path triggered it. The interface layer sets it per
request (or per job for the runner and scheduler); context variables follow
``anyio.to_thread.run_sync`` into the event-store thread.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator


@dataclass(frozen=True, slots=True)
class Actor:
    group_id: str
    actor: str
    role: str = "admin"
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)


_SYSTEM = Actor(group_id="system", actor="system", role="admin", correlation_id="system")
_current: ContextVar[Actor] = ContextVar("kasal_actor", default=_SYSTEM)


def current_actor() -> Actor:
    return _current.get()


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
