"""Claiming an idempotency key in the same save as the request's first events.

The interface sets a ``Claim`` for a request that carries ``Idempotency-Key``
(``claiming``); the event store's ``record`` asks ``key_to_save`` for the key
aggregate to add to the save, and calls ``claimed`` once that save is
committed. The claim is a context variable, so it follows the request into the
worker threads commands run in, and it is used by one save only: a later save
of the same request, or a task the request started, writes nothing for it.
A save that finds the key held by another request raises ``KeyClaimedError``
and writes nothing; the interface then answers as for that other request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain.base import KasalAggregate
from domain.idempotency import IdempotencyKey, KeyClaimedError


@dataclass
class Claim:
    """What one request claims: its key in its group, and the fingerprint of what it asks."""

    group_id: str
    key: str
    fingerprint: str
    method: str
    path: str
    claimed_by: str
    now: Callable[[], datetime]
    version: int | None = None
    """The key's version this request's save left it at; None until that save is committed."""
    lost: bool = False
    """A save found the key held by another request (nothing of this request was written)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def key_id(self) -> UUID:
        return IdempotencyKey.id_for(self.group_id, self.key)

    @property
    def taken(self) -> bool:
        return self.version is not None

    def request(self, saved: Sequence[KasalAggregate]) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "method": self.method, "path": self.path,
            "saved": [{"topic": type(a).TOPIC, "id": str(a.id), "version": a.version} for a in saved],
            "claimed_by": self.claimed_by, "claimed_at": self.now().isoformat(),
        }


_pending: ContextVar[Claim | None] = ContextVar("kasal_idempotency_claim", default=None)


@contextmanager
def claiming(claim: Claim) -> Iterator[Claim]:
    """Let the first save in this context (and the threads it starts) claim ``claim``."""
    token = _pending.set(claim)
    try:
        yield claim
    finally:
        _pending.reset(token)


def key_to_save(aggregates: Sequence[KasalAggregate | None],
                find: Callable[[UUID], Any]) -> tuple[Claim, IdempotencyKey] | None:
    """The key aggregate to save with ``aggregates``, when this context has a claim not yet used.

    A save that writes nothing claims nothing. The key is looked up first, so
    a save that would lose to another request's claim raises ``KeyClaimedError``
    instead of the store's conflict (which callers retry).
    """
    claim = _pending.get()
    if claim is None or claim.taken:
        return None
    changed = [a for a in aggregates if a is not None and a.pending_events]
    if not changed:
        return None
    existing = find(claim.key_id)
    if existing is None:
        return claim, IdempotencyKey.claim(claim.group_id, claim.key, claim.request(changed))
    if not isinstance(existing, IdempotencyKey):
        raise TypeError(f"{claim.key_id} is not an idempotency key")
    try:
        existing.claim_again(claim.request(changed), claim.now())
    except KeyClaimedError:
        claim.lost = True
        raise
    return claim, existing


def claimed(claim: Claim, key: IdempotencyKey) -> None:
    """The save holding ``key`` is committed: this request owns the key now."""
    with claim._lock:
        claim.version = key.version


class KeyStore(Protocol):
    def find(self, aggregate_id: UUID) -> Any | None: ...

    def record(self, *aggregates: KasalAggregate | None) -> int | None: ...


def record_answer(store: KeyStore, claim: Claim, answer: dict[str, Any]) -> bool:
    """Add the answer to the key this request claimed; False if the key has moved on since."""
    key = store.find(claim.key_id)
    if not isinstance(key, IdempotencyKey) or key.version != claim.version or key.answer is not None:
        return False
    key.record_answer(answer)
    store.record(key)
    return True
