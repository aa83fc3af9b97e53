"""Idempotency keys: a retried request is answered, not processed again.

A client that sends ``Idempotency-Key`` with a write claims that key in its
group. The claim is an aggregate whose id is derived from (group, key), saved
in the same atomic write as the first events the request causes, so two
requests with one key can never both write: the event store's version check
lets exactly one claim be version 1. The claim records what the request was
(a fingerprint, never the body) and what it wrote; once the answer is sent it
records that answer too, its body encrypted, since some answers (a new access
token) are secrets. A claim older than ``KEY_LIFETIME`` may be claimed again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import KasalAggregate, event, stable_topics
from domain.errors import ConflictError

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class KeyClaimedError(ConflictError):
    """Another request holds this key: raised at save time so nothing of this request is written.

    Not the store's ``IntegrityError``, so a retry on conflict stops at once
    instead of writing again and again against a claim that will not go away.
    """

    type = "idempotency_key_in_use"


def valid_key(key: str) -> bool:
    """1–255 printable ASCII characters (space to tilde)."""
    return 0 < len(key) <= MAX_KEY_LENGTH and all(" " <= c <= "~" for c in key)


@stable_topics("idempotency_key")
class IdempotencyKey(KasalAggregate):
    """One group's use of one key: the request that claimed it, what it wrote, and its answer."""

    class Created(KasalAggregate.Created):
        key: str
        request: dict[str, Any]

    def __init__(self, group_id: str, key: str, request: dict[str, Any]) -> None:
        self.group_id = group_id
        self.key = key
        self.request = dict(request)
        self.answer: dict[str, Any] | None = None

    @staticmethod
    def id_for(group_id: str, key: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"kasal:idempotency-key:{group_id}:{key}")

    @classmethod
    def claim(cls, group_id: str, key: str, request: dict[str, Any]) -> IdempotencyKey:
        """A first claim. ``request``: fingerprint, method, path, saved, claimed_by, claimed_at."""
        return cls._create(cls.Created, id=cls.id_for(group_id, key), group_id=group_id, key=key, request=request)

    @property
    def fingerprint(self) -> str:
        return str(self.request["fingerprint"])

    @property
    def claimed_at(self) -> datetime:
        return datetime.fromisoformat(self.request["claimed_at"])

    @property
    def claimed_by(self) -> str:
        return str(self.request["claimed_by"])

    @property
    def saved(self) -> list[dict[str, Any]]:
        """What the claiming request wrote in the same save: ``{"topic", "id", "version"}`` each."""
        return list(self.request["saved"])

    def expired(self, now: datetime) -> bool:
        return now - self.claimed_at >= KEY_LIFETIME

    def claim_again(self, request: dict[str, Any], now: datetime) -> None:
        """Claim an expired key for a new request (its old answer is forgotten)."""
        if not self.expired(now):
            raise KeyClaimedError(f"Idempotency key {self.key!r} is in use")
        self._reclaim(request=request)

    def record_answer(self, answer: dict[str, Any]) -> None:
        """The answer the claiming request got: status, location, content_type, body (encrypted)."""
        self._answer(answer=answer)

    @event("Reclaimed")
    def _reclaim(self, request: dict[str, Any]) -> None:
        self.request = dict(request)
        self.answer = None

    @event("Answered")
    def _answer(self, answer: dict[str, Any]) -> None:
        self.answer = dict(answer)
