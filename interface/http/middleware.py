"""Per-request context: request id, identity, roles, and min-position reads."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from domain.context import current_actor, set_actor
from domain.errors import ForbiddenError
from interface.identity import Authenticator, role_at_least
from projections.engine import Projector

PUBLIC_PATHS = ("/health", "/api-docs", "/api-redoc", "/api-openapi.json", "/schema")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def request_context(
    authenticator: Authenticator, projector: Projector, read_timeout: float,
) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware that sets the actor for each request (public paths have none), waits for
    ``X-Kasal-Min-Position`` (``X-Kasal-Stale: true`` if it is not reached within
    ``read_timeout``), and echoes ``X-Request-ID`` on the response."""

    def around(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            headers = _headers(scope)
            given = headers.get("x-request-id", "")
            request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
            stale = False
            if not is_public(scope["path"]):
                set_actor(await authenticator.authenticate(headers, request_id))
                wanted = headers.get("x-kasal-min-position", "")
                if wanted.isdigit():
                    # Gave up waiting: answer what the read models hold, and say they lag.
                    stale = not await projector.wait_for(int(wanted), read_timeout)

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    response_headers = MutableScopeHeaders.from_message(message)
                    response_headers["X-Request-ID"] = request_id
                    if stale:
                        response_headers["X-Kasal-Stale"] = "true"
                await send(message)

            await app(scope, receive, send_with_id)

        return middleware

    return around


def is_public(path: str) -> bool:
    """Health and documentation answer anyone, and act as no one."""
    return path.startswith(PUBLIC_PATHS)


async def role_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Auditors read the audit log, versions and usage (handlers with ``min_role: auditor``);
    operators read everything (and run what handlers allow); editors write; admins administer.

    A coroutine although it never awaits: Litestar runs a plain function guard
    in a worker thread, a thread hop on every request for a dictionary lookup.
    """
    if is_public(connection.scope["path"]):
        return
    minimum = handler.opt.get("min_role")
    if minimum is None:
        minimum = "operator" if connection.scope.get("method", "GET") in SAFE_METHODS else "editor"
    role = current_actor().role
    if not role_at_least(role, minimum):
        raise ForbiddenError(f"This action needs the {minimum} role; you are {role}")
