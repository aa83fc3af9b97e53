"""Hand-written fakes of the application's ports; shared by the test tiers."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from application.store import KasalStore
from domain.errors import InvalidError
from domain.execution import PENDING, UNFINISHED, Execution


class FakeClock:
    """A ``Clock`` that stands still until a test moves it."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = (now or datetime(2025, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> datetime:
        """Stand at ``now`` (aware; any zone)."""
        if now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        with self._lock:
            self._now = now.astimezone(UTC)
            return self._now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``."""
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


@dataclass(frozen=True)
class ModelCall:
    """One call a fake model client saw."""

    model: str
    messages: list[dict[str, Any]]
    credentials: dict[str, str]
    mock_response: str | None
    call: Any = None
    """The model's configuration the caller passed (``domain.model_config.ModelCall``), if any."""


@dataclass(frozen=True)
class FakeCompletion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class FakeModelClient:
    """A ``ModelClient`` answering scripted replies in order; an exception in the script is raised.

    Every call is recorded, so tests can read what the model was asked.
    """

    def __init__(self, *replies: str | Exception) -> None:
        self.replies = list(replies)
        self.calls: list[ModelCall] = []

    def complete(
        self, model: str, messages: Sequence[Mapping[str, Any]], credentials: Mapping[str, str], *,
        mock_response: str | None = None, call: Any = None,
    ) -> FakeCompletion:
        self.calls.append(ModelCall(model, [dict(m) for m in messages], dict(credentials), mock_response, call))
        if not self.replies:
            raise AssertionError("the model was called more often than the test scripted")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return FakeCompletion(reply)


class ScriptedCompletion:
    """Stands in for ``llm_gateway.complete`` and answers each call with the next scripted text
    through the real function (LiteLLM's mock-response path), so a real provider's model name is
    routed, and its credentials are checked and passed, exactly as in production."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[ModelCall] = []

    def __call__(
        self, model: str, messages: Sequence[Mapping[str, Any]], credentials: Mapping[str, str], *,
        mock_response: str | None = None, **params: Any,
    ) -> Any:
        from interface.llm_gateway import complete

        self.calls.append(ModelCall(model, [dict(m) for m in messages], dict(credentials), mock_response,
                                    params.get("call")))
        if not self.replies:
            raise AssertionError("the model was called more often than the test scripted")
        return complete(model, messages, credentials, mock_response=self.replies.pop(0), **params)


class FakeSecretBox:
    """A ``SecretBox`` whose tokens hide the plaintext (reversed, base64) and check the associated
    data, so a test can tell a sealed value from a leaked one without real cryptography. Like the
    real box, sealing the same text twice gives different tokens (a random nonce)."""

    PREFIX = "fake:"
    NONCE_BYTES = 8

    def encrypt(self, plaintext: str, *, associated_data: bytes = b"") -> str:
        sealed = os.urandom(self.NONCE_BYTES) + associated_data + b"\x00" + plaintext.encode()[::-1]
        return self.PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def decrypt(self, token: str, *, associated_data: bytes = b"") -> str:
        if not token.startswith(self.PREFIX):
            raise ValueError("not a fake token")
        opened = base64.urlsafe_b64decode(token[len(self.PREFIX):])[self.NONCE_BYTES:]
        bound, _, body = opened.rpartition(b"\x00")
        if bound != associated_data:
            raise ValueError("sealed for somewhere else")
        return body[::-1].decode()

    def hint(self, plaintext: str) -> str:
        return ""


class NoReferences:
    """``AgentDirectory`` and ``TaskDirectory`` over an empty catalogue (in-memory store tests)."""

    def agent_id_for(self, group_id: str, reference: str) -> UUID | None:
        return None

    def tasks_assigned_to(self, group_id: str, agent_id: UUID) -> list[UUID]:
        return []


class ListedExecutionIndex:
    """The executions read model as a fixed list: what a runner sees, stale or not."""

    def __init__(self, ids: Sequence[UUID] = ()) -> None:
        self.ids = list(ids)

    def pending(self, limit: int, now: float) -> list[UUID]:
        return self.ids[:limit]

    def unfinished(self) -> list[UUID]:
        return []


class FakeCrewCheck:
    """``CrewCheck`` that lets every crew run except the ids in ``unknown``; records what it judged."""

    def __init__(self) -> None:
        self.unknown: set[str] = set()
        self.checked: list[dict[str, Any]] = []

    def check(self, definition: Mapping[str, Any]) -> None:
        self.checked.append(dict(definition))
        crew_id = definition.get("crew_id")
        if crew_id in self.unknown:
            raise InvalidError(f"Unknown crew: {crew_id!r}", errors=[("crew_id", "no such crew in this group")])


class EventLogIndex:
    """A fake of the executions read model, answered from the aggregates themselves."""

    def __init__(self, store: KasalStore) -> None:
        self.store = store

    def _executions(self) -> list[Execution]:
        found = []
        for notification in self.store.recorder.select_notifications(start=1, limit=100_000):
            if notification.topic == Execution.Requested.TOPIC:  # type: ignore[attr-defined]
                found.append(self.store.repository.get(notification.originator_id))
        return found

    def pending(self, limit: int, now: float) -> list[UUID]:
        return [e.id for e in self._executions()
                if e.status is PENDING and (e.claimed_by is None or e.lease_until < now)][:limit]

    def unfinished(self) -> list[UUID]:
        return [e.id for e in self._executions() if e.status in UNFINISHED]
