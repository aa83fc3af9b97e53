"""API keys API: ``/api/v1/api-keys``, and the credentials executions run with.

Responses never carry a secret: they say ``value: "Set"`` / ``"Not set"``
(Kasal's convention) and at most a hint of the last characters. The body
structs declare no required fields on purpose: a missing-field 422 echoes the
request body back, and the body holds the key; the domain checks those rules
instead and answers without echoing.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from litestar import Controller, Request, Response, delete, get, post, put

from application.api_keys import ApiKeyService
from domain.api_key import SECRET_FIELD, ApiKey
from interface.core import Core, Feature
from interface.http.common import IfMatch, Limit, Offset, etag, expected_version, found, group_id, location, settle
from interface.http.structs import UNSET, Resource, UnsetType, page_type, sent_fields, to_struct
from interface.secret_box import SecretBox
from interface.settings import Settings
from projections.documents import DocumentProjection, DocumentView

log = logging.getLogger("kasal.api_keys")

TABLE = "rm_api_keys"
KEY_FILE = "secret.key"


class ApiKeyProjection(DocumentProjection):
    """The document read model minus the ciphertext: rows keep only whether a key is set."""

    def prepare_event(self, event: Any) -> Any:
        for attr in ("fields", "changes"):
            data = getattr(event, attr, None)
            if isinstance(data, dict) and SECRET_FIELD in data:
                redacted = {k: v for k, v in data.items() if k != SECRET_FIELD}
                redacted["is_set"] = bool(data[SECRET_FIELD])
                event = dataclasses.replace(event, **{attr: redacted})
        return event


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


ApiKeyPage = page_type(ApiKeyRead, "ApiKeyPage")


def _read(row: dict[str, Any]) -> ApiKeyRead:
    return to_struct({**row, "value": "Set" if row.get("is_set") else "Not set"}, ApiKeyRead)


def open_secret_box(settings: Settings) -> tuple[SecretBox, str]:
    """The box from KASAL_SECRET_KEY, else from a key file under the home directory."""
    box, message = SecretBox.from_setting(settings.secret_key, key_file=settings.home / KEY_FILE)
    if settings.secret_key is None and settings.auth_mode != "local":
        message += (
            "; set KASAL_SECRET_KEY for shared deployments: every process (api and workers) "
            "must use the same key, and the file must be backed up"
        )
    return box, message


class ApiKeysFeature(Feature):
    """Provider credentials, encrypted at rest; ``credentials_for`` hands them to executions."""

    name = "api_keys"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        box, self.key_source = open_secret_box(core.settings)
        self.service = ApiKeyService(core.store, box)
        self.view = DocumentView(core.pool, TABLE)

    def projections(self) -> list[Any]:
        return [ApiKeyProjection.for_aggregate(ApiKey, TABLE)]

    def route_handlers(self) -> list[Any]:
        return [ApiKeyController]

    async def start(self) -> None:
        log.info("API keys: %s", self.key_source)

    def credentials_for(self, group_id: str) -> dict[str, str]:
        """Plaintext credentials of a group, for one execution or generation call.

        Synchronous (run it in a worker thread). Maps each key's name (e.g.
        ``OPENAI_API_KEY``) and its service (e.g. ``openai``) to the plaintext;
        a name always wins over another key's service, and of two keys for one
        service the most recently updated wins. Keys with no value are left
        out. Raises ``application.api_keys.ApiKeyDecryptionError`` naming the
        key when one cannot be decrypted; it never returns an empty secret.
        Pass the result to the model client per call, never via ``os.environ``.
        """
        with psycopg.connect(self.core.database_url) as conn:
            rows = conn.execute(
                f"SELECT id FROM {TABLE} WHERE group_id = %s ORDER BY updated_at, id", (group_id,)
            ).fetchall()
        return self.service.credentials(group_id, [row[0] for row in rows])

    async def credentials(self, group_id: str) -> dict[str, str]:
        """``credentials_for`` from async code (pooled connection, decryption in a thread)."""
        async with self.core.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT id FROM {TABLE} WHERE group_id = %s ORDER BY updated_at, id", (group_id,)
            )
            ids = [row[0] for row in await cur.fetchall()]
        return await self.core.run(self.service.credentials, group_id, ids)


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["api-keys"]

    @get("/", summary="List API keys")
    async def list_keys(self, core: Core, limit: Limit = 20, offset: Offset = 0) -> ApiKeyPage:  # type: ignore[valid-type]
        """The group's provider keys, newest first. ``value`` is "Set" or "Not set", never the secret."""
        page = await core.get(ApiKeysFeature).view.list(group_id(), limit=limit, offset=offset)
        return ApiKeyPage(**{**page, "items": [_read(item) for item in page["items"]]})  # type: ignore[operator]

    @post("/", summary="Store an API key")
    async def create(self, request: Request[Any, Any, Any], core: Core, data: ApiKeyWrite) -> Response[ApiKeyRead]:
        """Store a provider key, encrypted. Needs ``name`` (unique in the group, else 409) and
        ``key`` (Kasal clients may send ``value``); ``service`` defaults from the name
        (``OPENAI_API_KEY`` → ``openai``). The answer never contains the key."""
        keys = core.get(ApiKeysFeature)
        written = await core.run(keys.service.create, sent_fields(data))
        headers = await settle(core, written)
        row = found(await keys.view.get(group_id(), written.id), "api key", written.id)
        headers["Location"] = location(request, written.id)
        return Response(_read(row), status_code=201, headers=headers)

    @get("/{key_id:uuid}", summary="Get an API key")
    async def get_key(self, core: Core, key_id: UUID) -> Response[ApiKeyRead]:
        """One key's metadata (never its secret); other groups' keys are 404."""
        row = found(await core.get(ApiKeysFeature).view.get(group_id(), key_id), "api key", key_id)
        return Response(_read(row), headers=etag(row))

    @put("/{key_id:uuid}", summary="Update an API key")
    async def update(
        self, core: Core, key_id: UUID, data: ApiKeyWrite, if_match: IfMatch = None
    ) -> Response[ApiKeyRead]:
        """Change the fields sent. A new ``key`` is encrypted afresh; ``""`` clears it."""
        keys = core.get(ApiKeysFeature)
        written = await core.run(keys.service.change, key_id, sent_fields(data), expected_version(if_match))
        headers = await settle(core, written)
        row = found(await keys.view.get(group_id(), key_id), "api key", key_id)
        return Response(_read(row), headers=headers)

    @delete("/{key_id:uuid}", summary="Delete an API key", status_code=204)
    async def remove(self, core: Core, key_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete a key; its name becomes free again."""
        keys = core.get(ApiKeysFeature)
        written = await core.run(keys.service.delete, key_id, expected_version(if_match))
        headers = await settle(core, written)
        return Response(None, status_code=204, headers=headers)
