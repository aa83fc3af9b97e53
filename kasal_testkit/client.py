"""The kit's side of HTTP: who is calling, and a client that remembers every exchange.

The kit talks to a server only through ``httpx``: a base URL, or any
``httpx.Client`` (one over an in-process ASGI app, or one whose transport
rewrites answers to seed faults). ``Exchange`` records each request and a short
form of its answer, so a failure can show the sequence that led to it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

API = "/api/v1"


@dataclass(frozen=True)
class Identity:
    """One caller: the headers that make requests act as it, and a label for reports."""

    label: str
    headers: Mapping[str, str]


@dataclass
class Target:
    """A server speaking the Kasal REST API, and how to be two different callers on it.

    Without tokens the server is taken to be in local mode: every example acts
    in fresh groups of its own (``X-Group-Id: kit-<uuid>``), so nothing one
    example writes is in the next one's way. With ``token`` (and
    ``second_token`` for the tenancy rules) both identities are fixed, and the
    kit deletes what each example created when it ends.
    """

    base_url: str = "http://127.0.0.1:8000"
    token: str | None = None
    second_token: str | None = None
    client: httpx.Client | None = None
    timeout: float = 30.0
    execution_timeout: float = 120.0
    """Seconds an execution on ``offline/echo`` may take to end (the first one imports the crew library)."""

    @property
    def local_mode(self) -> bool:
        return self.token is None

    def identities(self) -> tuple[Identity, Identity | None]:
        """The two callers of one example: fresh groups in local mode, the tokens otherwise."""
        if self.token is None:
            return (Identity("A", {"X-Group-Id": f"kit-{uuid.uuid4().hex}"}),
                    Identity("B", {"X-Group-Id": f"kit-{uuid.uuid4().hex}"}))
        first = Identity("A", {"Authorization": f"Bearer {self.token}"})
        if self.second_token is None:
            return first, None
        return first, Identity("B", {"Authorization": f"Bearer {self.second_token}"})

    def open(self) -> httpx.Client:
        """The client to use: the one given, or a new one on ``base_url`` (the caller closes it)."""
        if self.client is not None:
            return self.client
        return httpx.Client(base_url=self.base_url, timeout=self.timeout)


@dataclass(frozen=True)
class Exchange:
    """One request and the gist of its answer, as a failure report shows it."""

    who: str
    method: str
    path: str
    params: Mapping[str, Any] | None
    headers: Mapping[str, str]
    body: Any
    status: int
    answer: str

    def __str__(self) -> str:
        query = "" if not self.params else "?" + "&".join(f"{k}={v}" for k, v in self.params.items())
        extra = "".join(f" {k}: {v}" for k, v in self.headers.items())
        sent = "" if self.body is None else " " + json.dumps(self.body, ensure_ascii=False)
        return f"[{self.who}] {self.method} {self.path}{query}{extra}{sent} -> {self.status} {self.answer}"


ANSWER_CHARS = 300


@dataclass
class Session:
    """An ``httpx.Client`` that acts as an ``Identity`` per call and keeps the exchanges."""

    client: httpx.Client
    exchanges: list[Exchange] = field(default_factory=list)

    def call(self, who: Identity, method: str, path: str, *, json_body: Any = None,
             params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send ``method`` to ``/api/v1`` + ``path`` as ``who``, with extra ``headers``."""
        response = self.client.request(
            method, API + path, json=json_body, params=dict(params) if params else None,
            headers={**who.headers, **(headers or {})},
        )
        text = response.text
        self.exchanges.append(Exchange(
            who=who.label, method=method, path=path, params=params, headers=dict(headers or {}), body=json_body,
            status=response.status_code, answer=text if len(text) <= ANSWER_CHARS else text[:ANSWER_CHARS] + "…",
        ))
        return response
