"""Tools API: ``/api/v1/tools``.

Each group sees the built-in tools (``group_id: null``) with its own choices
laid over them, plus the tools it created. Kasal names a tool ``title``; the
contract says ``name``: both are accepted and both are answered, as are
``config`` and ``configuration``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.params import Parameter

from application.catalogue_seed import BUILTIN_TOOL_HINTS
from application.tool_access import ToolAccess, required_keys
from domain.errors import NotFoundError
from domain.tool import config_schema
from interface.http.common import (
    IfMatch,
    Offset,
    expected_version,
    group_id,
    group_page,
    location,
    settle,
    settled_resource,
)
from interface.http.history import AsOf, read
from interface.http.structs import UNSET, Page, UnsetType, sent_fields, to_struct
from interface.wiring import Kasal

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
CatalogueLimit = Annotated[
    int, Parameter(ge=1, le=100, default=100, description="Page size (max 100; catalogues are small)")
]


class ToolFields(msgspec.Struct, kw_only=True):
    name: Name | UnsetType = UNSET
    title: Name | UnsetType = UNSET
    description: str | None | UnsetType = UNSET
    tool_type: str | None | UnsetType = UNSET
    icon: str | None | UnsetType = UNSET
    config: dict[str, Any] | None | UnsetType = UNSET
    configuration: dict[str, Any] | None | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


def tool_fields(data: ToolFields) -> dict[str, Any]:
    """The wire's aliases folded into the stored names: ``title`` → name, ``configuration`` → config."""
    fields = sent_fields(data)
    title = fields.pop("title", None)
    if title is not None and "name" not in fields:
        fields["name"] = title
    configuration = fields.pop("configuration", None)
    if configuration is not None and "config" not in fields:
        fields["config"] = configuration
    return fields


class ToolRead(msgspec.Struct, kw_only=True):
    id: str
    title: str
    name: str
    description: str
    tool_type: str
    icon: str | None
    config: dict[str, Any]
    configuration: dict[str, Any]
    enabled: bool
    builtin: bool
    group_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    created_by: str | None = None
    updated_by: str | None = None
    available: bool | UnsetType = UNSET
    """Whether this service can run the tool (past versions leave it out)."""
    unavailable_reason: str | None | UnsetType = UNSET
    required_api_keys: list[str] | UnsetType = UNSET
    """The API key names the tool reads; a crew using it cannot start until the group has stored them."""


class ToolToggled(ToolRead, kw_only=True):
    message: str


class ToolPage(Page[ToolRead]):
    items: list[ToolRead]


def tool_read(tool: dict[str, Any], access: ToolAccess | None = None) -> ToolRead:
    """The API's view of a tool; with ``access``, whether this deployment can run it."""
    shown = {**tool, "title": tool["name"], "configuration": tool["config"]}
    if access is not None:
        reason = access.refusal(tool)
        shown |= {"available": reason is None, "unavailable_reason": reason, "required_api_keys": required_keys(tool)}
    return to_struct(shown, ToolRead)


def tool_page(kasal: Kasal, page: dict[str, Any]) -> ToolPage:
    return to_struct({**page, "items": [tool_read(t, kasal.services.tool_access) for t in page["items"]]}, ToolPage)


async def _written(kasal: Kasal, written: Any, tool_id: UUID) -> tuple[dict[str, Any], dict[str, str]]:
    tool, headers = await settled_resource(kasal, written, kasal.views.tools, "tool", tool_id)
    headers["ETag"] = f'"{tool["version"]}"'
    return tool, headers


class ToolController(Controller):
    path = "/api/v1/tools"
    tags = ["tools"]

    @get("/", summary="List tools")
    async def list_tools(self, kasal: Kasal, limit: CatalogueLimit = 100, offset: Offset = 0) -> Response[ToolPage]:
        """Built-in tools (``group_id`` null) as the caller's group has set them, and the group's own tools."""
        async def render() -> ToolPage:
            return tool_page(kasal, await kasal.views.tools.page(group_id(), limit=limit, offset=offset))

        return await group_page(kasal, "tools", limit, offset, render)

    @get("/enabled", summary="List enabled tools")
    async def list_enabled(
        self, kasal: Kasal, limit: CatalogueLimit = 100, offset: Offset = 0,
    ) -> Response[ToolPage]:
        """The tools the caller's group has enabled: what its agents may use."""
        async def render() -> ToolPage:
            return tool_page(kasal, await kasal.views.tools.page(group_id(), limit=limit, offset=offset, enabled=True))

        return await group_page(kasal, "tools/enabled", limit, offset, render)

    @get("/{tool_id:uuid}", summary="Get a tool")
    async def get_tool(self, kasal: Kasal, tool_id: UUID, as_of: AsOf = None) -> Response[ToolRead]:
        """One tool: a built-in, or one of the caller's group's (other groups' tools are 404).
        ``?as_of=`` answers it as the group saw it then."""
        tool = await read(kasal, "tool", tool_id, as_of)
        return Response(tool_read(tool, kasal.services.tool_access), headers={"ETag": f'"{tool["version"]}"'})

    @post("/", summary="Create a tool")
    async def create(self, request: Request[Any, Any, Any], kasal: Kasal, data: ToolFields) -> Response[ToolRead]:
        """Create a tool of the caller's group (``POST /tools`` and ``/tools/`` both work).

        ``name`` or ``title`` is required and unique in the group (a duplicate,
        or a built-in's name, is 409); ``configuration`` is accepted for ``config``.
        """
        written = await kasal.run(kasal.services.tools.create, tool_fields(data))
        tool, headers = await _written(kasal, written, written.id)
        headers["Location"] = location(request, written.id)
        return Response(tool_read(tool, kasal.services.tool_access), status_code=201, headers=headers)

    @put("/{tool_id:uuid}", summary="Update a tool")
    async def update(
        self, kasal: Kasal, tool_id: UUID, data: ToolFields, if_match: IfMatch = None
    ) -> Response[ToolRead]:
        """Change the fields sent. For a built-in only ``enabled`` and ``config`` change, for the
        caller's group alone (a sent config replaces the group's overrides; defaults fill the rest)."""
        written = await kasal.run(kasal.services.tools.change, tool_id, tool_fields(data), expected_version(if_match))
        tool, headers = await _written(kasal, written, tool_id)
        return Response(tool_read(tool, kasal.services.tool_access), headers=headers)

    @delete("/{tool_id:uuid}", summary="Delete a tool", status_code=204)
    async def remove(self, kasal: Kasal, tool_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete one of the group's tools. Built-ins cannot be deleted (409): disable them instead."""
        written = await kasal.run(kasal.services.tools.delete, tool_id, expected_version(if_match))
        return Response(None, status_code=204, headers=await settle(kasal, written))

    @patch("/{tool_id:uuid}/toggle-enabled", summary="Enable or disable a tool")
    async def toggle(self, kasal: Kasal, tool_id: UUID, if_match: IfMatch = None) -> Response[ToolToggled]:
        """Flip whether the caller's group may use the tool; other groups are unaffected."""
        written = await kasal.run(kasal.services.tools.toggle, tool_id, expected_version(if_match))
        tool, headers = await _written(kasal, written, tool_id)
        message = f"Tool {tool['name']} {'enabled' if tool['enabled'] else 'disabled'}"
        read = msgspec.structs.asdict(tool_read(tool, kasal.services.tool_access))
        return Response(ToolToggled(**read, message=message), headers=headers)

    @get("/configurations/{tool_name:str}/schema", summary="Get a tool's configuration schema")
    async def config_schema(self, kasal: Kasal, tool_name: str) -> dict[str, Any]:
        """A JSON Schema (draft 2020-12) of the named tool's configuration, with the caller's
        group's current values as defaults. Unknown tool → 404."""
        tool = await kasal.views.tools.find_tool(group_id(), tool_name)
        if tool is None:
            raise NotFoundError(f"Schema for tool {tool_name} not found")
        hints = BUILTIN_TOOL_HINTS.get(tool["name"].casefold(), {}) if tool["builtin"] else {}
        return config_schema(tool["name"], tool["config"], hints)
