"""Service access tokens API: ``/api/v1/tokens`` (admins only).

The plaintext token is in the creation response and nowhere else: the log and
the read model hold its hash, the list shows a short hint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post

from application.documents import Written
from interface.http.common import Limit, Offset, found, group_id, location, settle, settled_resource
from interface.http.structs import Page, to_struct
from interface.wiring import Kasal

Role = Literal["auditor", "operator", "editor", "admin"]
ADMIN_ONLY = {"min_role": "admin"}


class TokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Role
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class TokenRead(msgspec.Struct, kw_only=True):
    id: str
    group_id: str
    name: str
    role: str
    hint: str
    created_at: datetime
    created_by: str


class TokenCreated(TokenRead, kw_only=True):
    token: str


class TokenPage(Page[TokenRead]):
    items: list[TokenRead]


class TokenController(Controller):
    path = "/api/v1/tokens"
    tags = ["tokens"]

    @post("/", summary="Create an access token", opt=ADMIN_ONLY)
    async def create(self, request: Request[Any, Any, Any], kasal: Kasal, data: TokenCreate) -> Response[TokenCreated]:
        """Create a token for your group with the given role. The ``token`` field of
        this response is the only time the secret is shown: store it now."""
        issued = await kasal.run(kasal.services.tokens.issue, data.role, data.name)
        written = Written(issued.id, issued.version, issued.position)
        row, headers = await settled_resource(kasal, written, kasal.views.tokens, "token")
        headers.pop("ETag")  # a token has no version a client could send back
        headers["Location"] = location(request, issued.id)
        return Response(to_struct({**row, "token": issued.token}, TokenCreated), status_code=201, headers=headers)

    @get("/", summary="List access tokens", opt=ADMIN_ONLY)
    async def list_tokens(self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0) -> TokenPage:
        """Your group's live tokens, newest first, without their secrets."""
        page = await kasal.views.tokens.list(group_id(), limit=limit, offset=offset)
        return to_struct(page, TokenPage)

    @get("/{token_id:uuid}", summary="Get an access token", opt=ADMIN_ONLY)
    async def get_token(self, kasal: Kasal, token_id: UUID) -> TokenRead:
        """One live token of your group, without its secret; revoked ones are 404."""
        row = found(await kasal.views.tokens.get(group_id(), token_id), "token", token_id)
        return to_struct(row, TokenRead)

    @delete("/{token_id:uuid}", summary="Revoke an access token", status_code=204, opt=ADMIN_ONLY)
    async def revoke(self, kasal: Kasal, token_id: UUID) -> Response[None]:
        """Revoke a token at once: requests bearing it are answered 401 from now on."""
        written = await kasal.run(kasal.services.tokens.revoke, token_id)
        # Before settling: the read model may still hold the token when this is answered.
        kasal.token_lookup.revoked(str(token_id), written.position)
        headers = await settle(kasal, written)
        headers.pop("ETag", None)
        return Response(None, status_code=204, headers=headers)
