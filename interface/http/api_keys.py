"""API keys API: ``/api/v1/api-keys``.

Responses never carry a secret: they say ``value: "Set"`` / ``"Not set"``
(Kasal's convention) and at most a hint of the last characters. The body
structs declare no required fields on purpose: a missing-field 422 echoes the
request body back, and the body holds the key; the domain checks those rules
instead and answers without echoing.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put

from interface.http.common import (
    IfMatch,
    Limit,
    Offset,
    etag,
    expected_version,
    group_id,
    location,
    settle,
    settled_resource,
)
from interface.http.history import AsOf, read
from interface.http.structs import UNSET, Page, Resource, UnsetType, sent_fields, to_struct
from interface.wiring import Kasal


class ApiKeyWrite(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Create: ``name`` and ``key`` (or Kasal's ``value``) are required. Update: any subset."""

    name: str | UnsetType = UNSET
    service: str | None | UnsetType = UNSET
    description: str | None | UnsetType = UNSET
    key: str | None | UnsetType = UNSET
    value: str | None | UnsetType = UNSET


class ApiKeyRead(Resource, kw_only=True):
    name: str
    service: str
    description: str
    value: str
    hint: str


class ApiKeyPage(Page[ApiKeyRead]):
    items: list[ApiKeyRead]


def api_key_read(row: dict[str, Any]) -> ApiKeyRead:
    return to_struct({**row, "value": "Set" if row.get("is_set") else "Not set"}, ApiKeyRead)


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["api-keys"]

    @get("/", summary="List API keys")
    async def list_keys(self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0) -> ApiKeyPage:
        """The group's provider keys, newest first. ``value`` is "Set" or "Not set", never the secret."""
        page = await kasal.views.api_keys.list(group_id(), limit=limit, offset=offset)
        return to_struct({**page, "items": [api_key_read(item) for item in page["items"]]}, ApiKeyPage)

    @post("/", summary="Store an API key")
    async def create(self, request: Request[Any, Any, Any], kasal: Kasal, data: ApiKeyWrite) -> Response[ApiKeyRead]:
        """Store a provider key, encrypted. Needs ``name`` (unique in the group, else 409) and
        ``key`` (Kasal clients may send ``value``); ``service`` defaults from the name
        (``OPENAI_API_KEY`` → ``openai``). The answer never contains the key."""
        written = await kasal.run(kasal.services.api_keys.create, sent_fields(data))
        row, headers = await settled_resource(kasal, written, kasal.views.api_keys, "api key")
        headers["Location"] = location(request, written.id)
        return Response(api_key_read(row), status_code=201, headers=headers)

    @get("/{key_id:uuid}", summary="Get an API key")
    async def get_key(self, kasal: Kasal, key_id: UUID, as_of: AsOf = None) -> Response[ApiKeyRead]:
        """One key's metadata (never its secret); other groups' keys are 404. ``?as_of=`` answers it as it
        was then."""
        row = await read(kasal, "api_key", key_id, as_of)
        return Response(api_key_read(row), headers=etag(row))

    @put("/{key_id:uuid}", summary="Update an API key")
    async def update(
        self, kasal: Kasal, key_id: UUID, data: ApiKeyWrite, if_match: IfMatch = None
    ) -> Response[ApiKeyRead]:
        """Change the fields sent. A new ``key`` is encrypted afresh; ``""`` clears it."""
        written = await kasal.run(kasal.services.api_keys.change, key_id, sent_fields(data), expected_version(if_match))
        row, headers = await settled_resource(kasal, written, kasal.views.api_keys, "api key")
        return Response(api_key_read(row), headers=headers)

    @delete("/{key_id:uuid}", summary="Delete an API key", status_code=204)
    async def remove(self, kasal: Kasal, key_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete a key; its name becomes free again."""
        written = await kasal.run(kasal.services.api_keys.delete, key_id, expected_version(if_match))
        headers = await settle(kasal, written)
        return Response(None, status_code=204, headers=headers)
