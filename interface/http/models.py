"""Models API: ``/api/v1/models``, addressed by model key.

Keys may contain slashes (``offline/echo``), so the key is the rest of the
path; ``PATCH /models/{key}/toggle`` is recognised by its last segment. Writes
need the admin role.

Two request shapes name a model. Kasal's: ``key`` (the handle) and ``name``
(the provider's model id). The contract's: ``name`` (the handle) and ``model``
(the provider's model id). So on create: ``key`` if sent, else ``name``, is
the key; ``model`` if sent, else (with a ``key``) ``name``, is the provider
model id, defaulting to the key. On update ``key`` renames, and ``model`` or
``name`` sets the provider model id. Records answer ``key``, ``name`` and
``model`` (the last two both the provider model id) and ``litellm_model``,
the string LiteLLM routes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put

from domain.context import current_actor
from domain.errors import ForbiddenError, NotFoundError
from interface.http.common import (
    IfMatch,
    Offset,
    expected_version,
    group_id,
    group_page,
    instant_param,
    settle,
    settled_resource,
)
from interface.http.history import (
    AsOf,
    page_params,
    resource_as_of,
    timeline,
    version_number,
    version_resource,
    versions_page,
)
from interface.http.structs import UNSET, Page, UnsetType, sent_fields, to_struct
from interface.http.tools import CatalogueLimit
from interface.identity import role_at_least
from interface.wiring import Kasal

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ADMIN = {"min_role": "admin"}
AUDITOR = {"min_role": "auditor"}


class ModelFields(msgspec.Struct, kw_only=True):
    key: Key | UnsetType = UNSET
    name: Key | UnsetType = UNSET
    model: Key | UnsetType = UNSET
    provider: str | UnsetType = UNSET
    temperature: float | None | UnsetType = UNSET
    context_window: int | None | UnsetType = UNSET
    max_output_tokens: int | None | UnsetType = UNSET
    api_key_name: str | None | UnsetType = UNSET
    parameters: dict[str, Any] | None | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    extended_thinking: bool | UnsetType = UNSET
    api_base: str | None | UnsetType = UNSET
    extra_headers: dict[str, str] | None | UnsetType = UNSET


def model_fields(data: ModelFields, *, creating: bool) -> dict[str, Any]:
    """Fold either request shape into stored fields (see the module docstring)."""
    fields = sent_fields(data)
    provider_model = fields.pop("model", None)
    if creating and "key" not in fields:
        name = fields.pop("name", None)
        if name is not None:
            fields["key"] = name
    if provider_model is not None:
        fields["name"] = provider_model
    return fields


class ModelToggle(msgspec.Struct, kw_only=True):
    enabled: bool | UnsetType = UNSET


class ModelRead(msgspec.Struct, kw_only=True):
    key: str
    name: str
    model: str
    provider: str
    litellm_model: str
    temperature: float | None
    context_window: int | None
    max_output_tokens: int | None
    api_key_name: str | None
    parameters: dict[str, Any]
    enabled: bool
    extended_thinking: bool
    builtin: bool
    id: str
    group_id: str | None
    api_base: str | None = None
    extra_headers: dict[str, str] = {}
    created_at: datetime
    updated_at: datetime
    version: int
    created_by: str | None = None
    updated_by: str | None = None


class ModelPage(Page[ModelRead]):
    items: list[ModelRead]


def model_read(model: dict[str, Any]) -> ModelRead:
    return to_struct({**model, "model": model["name"]}, ModelRead)


def _key(model_name: str) -> str:
    key = model_name.strip("/")
    if not key:
        raise NotFoundError("Model key missing")
    return key


async def _respond(kasal: Kasal, written: Any, status_code: int = 200) -> Response[ModelRead]:
    model, headers = await settled_resource(kasal, written, kasal.views.models, "model")
    headers["ETag"] = f'"{model["version"]}"'
    if status_code == 201:
        headers["Location"] = f"/api/v1/models/{quote(model['key'], safe='/:')}"
    return Response(model_read(model), status_code=status_code, headers=headers)


_VERSIONS = re.compile(r"(?P<key>.+)/versions(?:/(?P<version>[^/]+))?")
_RESTORE = re.compile(r"(?P<key>.+)/versions/(?P<version>[^/]+)/restore")


def _versions_path(key: str) -> tuple[str, str | None] | None:
    """``(model key, version or None)`` when a GET path names a model's versions."""
    match = _VERSIONS.fullmatch(key)
    return None if match is None else (match["key"], match["version"])


async def _model_id(kasal: Kasal, key: str) -> UUID | None:
    """The id of the model a key names for the caller's group (also a deleted one); None if none."""
    try:
        return await kasal.run(kasal.services.models.id_for_key, key)
    except NotFoundError:
        return None


async def _versions_answer(
    kasal: Kasal, model_id: UUID, version: str | None, limit: int, offset: int,
) -> Response[Any]:
    past = await timeline(kasal, "model", model_id)
    if version is None:
        return Response(versions_page(past, model_read, limit, offset))
    resource = version_resource(past, version_number(version))
    return Response(model_read(resource), headers={"ETag": f'"{resource["version"]}"'})


def model_page(page: dict[str, Any]) -> ModelPage:
    return to_struct({**page, "items": [model_read(m) for m in page["items"]]}, ModelPage)


class ModelController(Controller):
    path = "/api/v1/models"
    tags = ["models"]

    @get("/", summary="List models")
    async def list_models(
        self, kasal: Kasal, limit: CatalogueLimit = 100, offset: Offset = 0,
    ) -> Response[ModelPage]:
        """Built-in models (``group_id`` null) as the caller's group has set them, and the group's own."""
        async def render() -> ModelPage:
            return model_page(await kasal.views.models.page(group_id(), limit=limit, offset=offset))

        return await group_page(kasal, "models", limit, offset, render)

    @get("/enabled", summary="List enabled models")
    async def list_enabled(
        self, kasal: Kasal, limit: CatalogueLimit = 100, offset: Offset = 0,
    ) -> Response[ModelPage]:
        """The models the caller's group may run."""
        async def render() -> ModelPage:
            return model_page(await kasal.views.models.page(group_id(), limit=limit, offset=offset, enabled=True))

        return await group_page(kasal, "models/enabled", limit, offset, render)

    @post("/", summary="Create a model configuration", opt=ADMIN)
    async def create(self, request: Request[Any, Any, Any], kasal: Kasal, data: ModelFields) -> Response[ModelRead]:
        """Create a model of the caller's group (admin). The key is unique in the group and may not be
        a built-in's (409); ``provider`` must be one LiteLLM knows, or ``offline`` (else 422).
        ``api_base`` (an http/https URL), ``extra_headers`` (plain values; credential-looking ones
        are 422) and ``parameters`` (LiteLLM completion arguments) go with every request."""
        written = await kasal.run(kasal.services.models.create, model_fields(data, creating=True))
        return await _respond(kasal, written, 201)

    @get("/{model_name:path}", summary="Get a model configuration, or its versions", opt=AUDITOR)
    async def get_model(
        self, request: Request[Any, Any, Any], kasal: Kasal, model_name: str, as_of: AsOf = None,
    ) -> Response[Any]:
        """One model by key (keys may contain ``/``, e.g. ``offline/echo``); ``?as_of=`` answers it as it
        was then. ``GET /models/{key}/versions`` (paged by ``limit`` and ``offset``, as every list) lists
        its versions and ``…/versions/{n}`` answers it at version ``n``, as for every definition
        (auditors may read those)."""
        key = _key(model_name)
        addressed = _versions_path(key)
        if addressed is not None:
            model_id = await _model_id(kasal, addressed[0])
            if model_id is not None:
                limit, offset = page_params(request.query_params)
                return await _versions_answer(kasal, model_id, addressed[1], limit, offset)
        if not role_at_least(current_actor().role, "operator"):
            raise ForbiddenError(f"This action needs the operator role; you are {current_actor().role}")
        moment = instant_param(as_of, "as_of")
        if moment is not None:
            model_id = await _model_id(kasal, key)
            if model_id is None:
                raise NotFoundError(f"Model with key {key} not found")
            model = await resource_as_of(kasal, "model", model_id, moment)
        else:
            found = await kasal.views.models.find(group_id(), "key", key)
            if found is None:
                raise NotFoundError(f"Model with key {key} not found")
            model = found
        return Response(model_read(model), headers={"ETag": f'"{model["version"]}"'})

    @post("/{model_name:path}", summary="Restore a version of a model configuration", status_code=200, opt=ADMIN)
    async def restore(self, kasal: Kasal, model_name: str, if_match: IfMatch = None) -> Response[ModelRead]:
        """``POST /models/{key}/versions/{n}/restore`` (admin): a new version holding version ``n``'s
        fields, bringing a deleted model back (409 if its key was taken since). For a built-in, the
        group's own choices (enabled, tuning) as they were then come back; the shared definition stays."""
        match = _RESTORE.fullmatch(_key(model_name))
        model_id = None if match is None else await _model_id(kasal, match["key"])
        if match is None or model_id is None:
            raise NotFoundError(f"No such route: POST /api/v1/models/{model_name}; "
                                "use /models/{key}/versions/{n}/restore")
        version = version_number(match["version"])
        written = await kasal.run(kasal.services.models.restore, model_id, version, expected_version(if_match))
        model, headers = await settled_resource(kasal, written, kasal.views.models, "model", model_id)
        headers["ETag"] = f'"{model["version"]}"'
        return Response(model_read(model), headers=headers)

    @put("/{model_name:path}", summary="Update a model configuration", opt=ADMIN)
    async def update(
        self, kasal: Kasal, model_name: str, data: ModelFields, if_match: IfMatch = None,
    ) -> Response[ModelRead]:
        """Change the fields sent (admin). For a built-in only its tuning (enabled, temperature,
        context_window, max_output_tokens, api_key_name, parameters, api_base, extra_headers) changes,
        for this group alone. A new ``api_base`` sent without ``api_key_name`` drops the key."""
        written = await kasal.run(kasal.services.models.change, _key(model_name), model_fields(data, creating=False),
                                 expected_version(if_match))
        return await _respond(kasal, written)

    @delete("/{model_name:path}", summary="Delete a model configuration", status_code=204, opt=ADMIN)
    async def remove(self, kasal: Kasal, model_name: str, if_match: IfMatch = None) -> Response[None]:
        """Delete one of the group's models (admin). Built-in models cannot be deleted (409)."""
        written = await kasal.run(kasal.services.models.delete, _key(model_name), expected_version(if_match))
        return Response(None, status_code=204, headers=await settle(kasal, written))

    @patch("/{model_name:path}", summary="Enable or disable a model", opt=ADMIN)
    async def toggle(
        self, kasal: Kasal, model_name: str, data: ModelToggle | None = None, if_match: IfMatch = None
    ) -> Response[ModelRead]:
        """``PATCH /models/{key}/toggle`` (admin): set ``enabled`` from the body, or flip it when the
        body is empty, for the caller's group. Offline models cannot be disabled (409)."""
        key = _key(model_name)
        if not key.endswith("/toggle"):
            raise NotFoundError(f"No such route: PATCH /api/v1/models/{key}; use /models/{{key}}/toggle")
        enabled = data.enabled if data is not None and data.enabled is not UNSET else None
        written = await kasal.run(kasal.services.models.toggle, _key(key.removesuffix("/toggle")), enabled,
                                 expected_version(if_match))
        return await _respond(kasal, written)
