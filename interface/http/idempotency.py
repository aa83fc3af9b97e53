"""``Idempotency-Key`` on every ``POST`` under ``/api/v1``: a retry is answered, not processed again.

A keyed request is looked up first. Unknown (or older than 24 hours): it is
processed, and its first save that writes anything also claims the key
(``application.idempotency``), so the key and what the request wrote are one
atomic write. The 2xx answer is then recorded on the key, its body encrypted,
before it is sent. A repeat with the same fingerprint (method, path, query,
body; a JSON body compared as a value with its object keys sorted) gets that
answer again with ``Idempotent-Replayed: true``; another body is 422; a repeat
while the first is still being handled is 409 (in this process: a set of keys
in flight; in another: a claim without an answer whose claiming process is
alive and recent).

A claim without an answer whose process is gone (killed between its commit
and its answer) is answered from the log: ``rebuilt_answer`` renders what the
request wrote as the handler would have. An answer that cannot be rebuilt (a
new token is shown once) is a 409 that says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote
from uuid import UUID

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from application.executions import START_MESSAGE
from application.idempotency import Claim, claiming, record_answer
from domain.context import current_actor
from domain.errors import ConflictError
from domain.execution import ExecutionStatus
from domain.idempotency import IdempotencyKey, valid_key
from interface.http.common import invalid
from interface.http.input_rules import too_deep
from interface.http.versions import resource_at_version
from interface.wiring import Kasal

log = logging.getLogger("kasal.http")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
ANSWER_GRACE = timedelta(seconds=60)
"""How long after its claim (beyond the read-your-writes wait) a live process may still be answering."""

State = Literal["new", "replay", "other_request", "in_flight", "answer_lost"]

# Resource kinds by the topic prefix of the aggregate a create saves first.
_KINDS = {"agent": "agent", "task": "task", "crew": "crew", "tool": "tool", "model_config": "model",
          "api_key": "api_key", "template": "template", "schedule": "schedule"}
_RESTORE = re.compile(r"/versions/\d+/restore/?$")
_COLLECTION = re.compile(r"^/api/v1/(agents|tasks|crews|tools|models|templates|api-keys|scheduler/schedules"
                         r"|schedules)/?$")


@dataclass(frozen=True, slots=True)
class Found:
    state: State
    key: IdempotencyKey | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    location: str | None = None


def idempotent_writes(kasal: Kasal) -> Callable[..., ASGIApp]:
    """The middleware (after ``request_context``, which sets the caller)."""
    in_flight: set[UUID] = set()

    def around(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            key = key_of(scope)
            if key is None or scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            # The route's guards first: a replay must not answer a caller the route would refuse.
            await scope["route_handler"].authorize_connection(ASGIConnection(scope))
            body, receive = await read_body(receive, kasal.settings.max_body_bytes)
            if body is None:  # too large: the route refuses it, and it writes nothing
                await app(scope, receive, send)
                return
            group = current_actor().group_id
            key_id = IdempotencyKey.id_for(group, key)
            if key_id in in_flight:
                raise ConflictError(f"A request with {HEADER} {key!r} is still being processed; retry later")
            in_flight.add(key_id)
            try:
                signature = fingerprint(scope["method"], scope["path"], scope["query_string"], body)
                await _handle(kasal, app, scope, receive, send, Claim(
                    group_id=group, key=key, fingerprint=signature, method=scope["method"], path=scope["path"],
                    claimed_by=kasal.registry.runner_id, now=kasal.clock.now))
            finally:
                in_flight.discard(key_id)

        return middleware

    return around


def key_of(scope: Scope) -> str | None:
    """The request's key, for a POST under /api/v1 that sends one; 422 for one that is not valid."""
    if scope["type"] != ScopeType.HTTP:
        return None
    if scope["method"] != "POST" or not scope["path"].startswith("/api/v1/"):
        return None
    values = {v.decode("latin-1").strip() for k, v in scope.get("headers", []) if k.lower() == b"idempotency-key"}
    if not values:
        return None
    key = values.pop()
    if values or not valid_key(key):
        message = f"{HEADER} must be one value of 1 to 255 printable ASCII characters"
        raise invalid(HEADER, "header", message)
    return key


async def read_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole body (None if over ``limit``), and a ``receive`` that hands it to the app again."""
    messages: list[ReceiveMessage] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit or not message.get("more_body", False):
            break
    last = messages[-1]
    complete = last["type"] == "http.request" and not last.get("more_body", False) and size <= limit
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    pending = list(messages)

    async def again() -> ReceiveMessage:
        return pending.pop(0) if pending else await receive()

    return (body if complete else None), again


class _Number(str):
    """A JSON number kept as written, so big or precise numbers compare exactly."""


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(json.dumps(k) + ":" + _canonical(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, _Number):
        return str.__str__(value)
    return json.dumps(value)


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    """What makes two requests the same: method, path, query, and the body (JSON as a value
    with object keys sorted, anything else as bytes)."""
    digest = hashlib.sha256(f"{method}\n{path}\n".encode())
    digest.update(query + b"\n")
    try:
        if too_deep(body):  # refused unparsed later; decoding it here would recurse that deep
            raise ValueError("too deep")
        value = json.loads(body, parse_float=_Number, parse_int=_Number, parse_constant=_Number)
        digest.update(b"json:" + _canonical(value).encode())
    except ValueError:
        digest.update(b"bytes:" + body)
    return digest.hexdigest()


def look_up(kasal: Kasal, claim: Claim) -> Found:
    """What the log says about ``claim``'s key (blocking: run it in a thread)."""
    key = kasal.store.find(claim.key_id)
    now = kasal.clock.now()
    if not isinstance(key, IdempotencyKey) or key.expired(now):
        return Found("new")
    if key.fingerprint != claim.fingerprint:
        return Found("other_request", key)
    if key.answer is not None:
        return Found("replay", key)
    window = ANSWER_GRACE + timedelta(seconds=kasal.settings.read_your_writes_timeout)
    if now - key.claimed_at < window and kasal.registry.is_alive(key.claimed_by):
        return Found("in_flight", key)
    return Found("answer_lost", key)


async def _handle(kasal: Kasal, app: ASGIApp, scope: Scope, receive: Receive, send: Send, claim: Claim) -> None:
    found = await kasal.run(look_up, kasal, claim)
    if found.state != "new":
        await _send(send, await _earlier_answer(kasal, found, claim))
        return
    captured = _Captured()
    with claiming(claim):
        await app(scope, receive, captured)
    if claim.lost:  # another request claimed the key first; nothing of this one was written
        found = await kasal.run(look_up, kasal, claim)
        if found.state == "new":
            raise ConflictError(f"{HEADER} {claim.key!r} was in use; retry")
        await _send(send, await _earlier_answer(kasal, found, claim))
        return
    if claim.taken and 200 <= captured.status < 300:
        await _remember(kasal, claim, captured)
    await captured.forward(send)


async def _earlier_answer(kasal: Kasal, found: Found, claim: Claim) -> Answer:
    if found.state == "other_request":
        message = f"{HEADER} {claim.key!r} was already used for a different request"
        raise invalid(HEADER, "header", message)
    if found.state == "in_flight":
        raise ConflictError(f"A request with {HEADER} {claim.key!r} is still being processed; retry later")
    assert found.key is not None
    if found.state == "replay":
        return _decrypted(kasal, found.key)
    return await rebuilt_answer(kasal, found.key)


async def _remember(kasal: Kasal, claim: Claim, captured: _Captured) -> None:
    """Record the answer on the key; a failure is logged and the client still gets its answer."""
    box = kasal.secret_box.encrypt(base64.b64encode(captured.body).decode(), associated_data=claim.key_id.bytes)
    answer = {"status": captured.status, "location": captured.header(b"location"),
              "content_type": captured.header(b"content-type") or "application/json", "body": box}
    try:
        await kasal.run(record_answer, kasal.store, claim, answer)
    except Exception:
        log.exception("could not record the answer for an idempotency key; a retry is answered from the log")


def _decrypted(kasal: Kasal, key: IdempotencyKey) -> Answer:
    answer = key.answer or {}
    body = base64.b64decode(kasal.secret_box.decrypt(answer["body"], associated_data=key.id.bytes))
    return Answer(int(answer["status"]), body, str(answer["content_type"]), answer.get("location"))


async def rebuilt_answer(kasal: Kasal, key: IdempotencyKey) -> Answer:
    """The answer of a request whose process died after its commit, rendered from what it wrote."""
    path = str(key.request["path"])
    first = next(iter(key.saved), None)
    if first is None:
        raise ConflictError(f"The request with {HEADER} {key.key!r} was processed, but its answer was lost")
    topic, resource_id, version = str(first["topic"]).removesuffix(".v1"), UUID(first["id"]), int(first["version"])
    lost = ConflictError(
        f"The request with {HEADER} {key.key!r} was processed (it wrote {topic} {resource_id}), but its "
        "answer was lost and cannot be rebuilt: read that resource instead")
    if topic == "access_token":
        raise ConflictError(
            f"The request with {HEADER} {key.key!r} created token {resource_id}, but its answer was lost and "
            "a token's secret is shown only once: revoke it and create another")
    if topic == "execution" and path.rstrip("/") == "/api/v1/executions":
        return await _execution_accepted(kasal, path, resource_id)
    kind = _KINDS.get(topic)
    restore = bool(_RESTORE.search(path))
    if kind is None or not (restore or _COLLECTION.match(path)):
        raise lost
    body = await resource_at_version(kasal, kind, resource_id, version)
    if body is None:
        raise lost
    if restore:
        return Answer(200, msgspec.json.encode(body), "application/json")
    location = f"/api/v1/models/{quote(body['key'], safe='/:')}" if kind == "model" else \
        f"{path.rstrip('/')}/{resource_id}"
    return Answer(201, msgspec.json.encode(body), "application/json", location)


async def _execution_accepted(kasal: Kasal, path: str, execution_id: UUID) -> Answer:
    """``POST /executions``' answer, from the execution's first event."""
    events = await kasal.run(kasal.store.history, execution_id)
    body = {"execution_id": str(execution_id), "status": ExecutionStatus.PENDING.value,
            "message": START_MESSAGE, "run_name": events[0].run_name}
    return Answer(201, msgspec.json.encode(body), "application/json", f"{path.rstrip('/')}/{execution_id}")


async def _send(send: Send, answer: Answer) -> None:
    headers = [(b"content-type", answer.content_type.encode("latin-1")), (REPLAYED.lower().encode(), b"true"),
               (b"content-length", str(len(answer.body)).encode())]
    if answer.location:
        headers.append((b"location", answer.location.encode("latin-1")))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})


class _Captured:
    """A ``send`` that holds the route's answer, so it can be recorded before the client gets it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return next((int(m["status"]) for m in self.messages if m["type"] == "http.response.start"), 500)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    def header(self, name: bytes) -> str | None:
        for message in self.messages:
            if message["type"] == "http.response.start":
                for key, value in message.get("headers", []):
                    if key.lower() == name:
                        return bytes(value).decode("latin-1")
        return None

    async def forward(self, send: Send) -> None:
        for message in self.messages:
            await send(message)
