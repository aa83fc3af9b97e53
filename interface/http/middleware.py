"""Per-request context: request id, identity, roles, and min-position reads."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from domain.context import set_actor
from domain.errors import ForbiddenError
from interface.http.auth import role_at_least

PUBLIC_PATHS = ("/health", "/api-docs", "/api-redoc", "/api-openapi.json", "/schema")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Sets the actor for the request and echoes ``X-Request-ID`` on the response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        headers = _headers(scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        core = scope["litestar_app"].state.kasal
        if not scope["path"].startswith(PUBLIC_PATHS):
            set_actor(await core.authenticator.authenticate(headers, request_id))
            wanted = headers.get("x-kasal-min-position", "")
            if wanted.isdigit():
                await core.projector.wait_for(int(wanted), core.settings.read_your_writes_timeout)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware


def role_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Operators read (and run what handlers allow); editors write; admins administer."""
    from domain.context import current_actor

    minimum = handler.opt.get("min_role")
    if minimum is None:
        minimum = "operator" if connection.scope.get("method", "GET") in SAFE_METHODS else "editor"
    role = current_actor().role
    if not role_at_least(role, minimum):
        raise ForbiddenError(f"This action needs the {minimum} role; you are {role}")
