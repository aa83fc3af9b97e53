"""Tools API: ``/api/v1/tools``, and the catalogue view tools and models share.

Each group sees the built-in tools (``group_id: null``) with its own choices
laid over them, plus the tools it created. Kasal names a tool ``title``; the
contract says ``name``: both are accepted and both are answered, as are
``config`` and ``configuration``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.params import Parameter
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from application.catalogue_seed import BUILTIN_TOOL_HINTS, seed_tools
from application.tools import ToolsService
from domain.errors import NotFoundError
from domain.tool import BUILTIN_GROUP, Tool, ToolSetting, config_schema, effective_tool
from interface.core import Core, Feature
from interface.http.common import IfMatch, Offset, expected_version, found, group_id, location, settle
from interface.http.structs import UNSET, UnsetType, page_type, sent_fields, to_struct
from projections.documents import DocumentProjection, Page

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


class ToolToggled(ToolRead, kw_only=True):
    message: str


ToolPage = page_type(ToolRead, "ToolPage")


class CatalogueView:
    """Built-in entries (shared) and a group's own, each as that group sees it.

    Reads the document table of the entries joined with the group's settings
    table; ``seen`` lays a setting over an entry. Both tables are written only
    by their ``DocumentProjection``.
    """

    def __init__(
        self, pool: AsyncConnectionPool, table: str, settings_table: str, link: str,
        seen: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]], order: str,
    ) -> None:
        self.pool = pool
        self.seen = seen
        self.order = order
        self.select = (
            "SELECT t.*, s.doc AS setting, s.version AS setting_version, s.updated_at AS setting_updated_at,"
            f" s.updated_by AS setting_updated_by FROM {table} t LEFT JOIN {settings_table} s"
            f" ON s.group_id = %(group)s AND s.doc->>'{link}' = t.id::text"
            " WHERE t.group_id IN (%(group)s, %(builtin)s)"
        )

    def to_resource(self, row: dict[str, Any]) -> dict[str, Any]:
        builtin = row["group_id"] == BUILTIN_GROUP
        setting = row["setting"]
        resource = self.seen(dict(row["doc"]), dict(setting) if setting is not None else None)
        newer = setting is not None and row["setting_updated_at"] > row["updated_at"]
        resource.update(
            id=str(row["id"]), group_id=None if builtin else row["group_id"], builtin=builtin,
            version=row["version"] + (row["setting_version"] or 0),
            created_at=row["created_at"], created_by=row["created_by"],
            updated_at=row["setting_updated_at"] if newer else row["updated_at"],
            updated_by=row["setting_updated_by"] if newer else row["updated_by"],
        )
        return resource

    async def query(
        self, group: str, where: str = "", params: dict[str, Any] | None = None, *,
        limit: int | None = None, offset: int = 0, prefer_builtin: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        values = {"group": group, "builtin": BUILTIN_GROUP, "limit": limit, "offset": offset, **(params or {})}
        order = f"(t.group_id = %(builtin)s) DESC, {self.order}" if prefer_builtin else self.order
        sql = (f"SELECT *, count(*) OVER () AS total FROM ({self.select} {where}) t"
               f" ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s")
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, values)
            rows = await cur.fetchall()
        total = rows[0]["total"] if rows else 0
        return [self.to_resource(r) for r in rows], total

    async def page(self, group: str, *, limit: int, offset: int, enabled: bool | None = None) -> Page:
        where, params = "", {}
        if enabled is not None:
            where = ("AND COALESCE((s.doc->>'enabled')::boolean, (t.doc->>'enabled')::boolean)"
                     " = %(enabled)s")
            params = {"enabled": enabled}
        items, total = await self.query(group, where, params, limit=limit, offset=offset)
        if not items and offset:
            total = len((await self.query(group, where, params))[0])
        return Page(items=items, total=total, limit=limit, offset=offset, has_more=offset + len(items) < total)

    async def get(self, group: str, item_id: UUID) -> dict[str, Any] | None:
        items, _ = await self.query(group, "AND t.id = %(id)s", {"id": item_id})
        return items[0] if items else None

    async def find(self, group: str, field: str, value: str) -> dict[str, Any] | None:
        """The entry whose ``field`` equals ``value`` ignoring case (a built-in wins a tie)."""
        items, _ = await self.query(
            group, f"AND lower(t.doc->>'{field}') = lower(%(value)s)", {"value": value},
            limit=1, prefer_builtin=True,
        )
        return items[0] if items else None

    async def all(self, group: str) -> list[dict[str, Any]]:
        return (await self.query(group))[0]


class ToolsFeature(Feature):
    name = "tools"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.service = ToolsService(core.store)
        self.view = CatalogueView(core.pool, "rm_tools", "rm_tool_settings", "tool_id", effective_tool,
                                  order="lower(t.name), t.id")

    def projections(self) -> list[Any]:
        return [DocumentProjection.for_aggregate(Tool, "rm_tools"),
                DocumentProjection.for_aggregate(ToolSetting, "rm_tool_settings")]

    def route_handlers(self) -> list[Any]:
        return [ToolController]

    async def start(self) -> None:
        """Record the built-in catalogue (idempotent) and wait until it can be read."""
        position = await self.core.run(seed_tools, self.core.store)
        await self.core.projector.wait_for(position, max(30.0, self.core.settings.read_your_writes_timeout))

    async def tool_names(self, group_id: str) -> tuple[set[str], set[str]]:
        """``(enabled, disabled)`` names of the tools the group sees."""
        enabled: set[str] = set()
        disabled: set[str] = set()
        for tool in await self.view.all(group_id):
            (enabled if tool["enabled"] else disabled).add(tool["name"])
        return enabled, disabled

    async def find_tool(self, group_id: str, reference: str) -> dict[str, Any] | None:
        """The tool an agent's ``tools`` entry means: by id, else by name ignoring case."""
        try:
            tool = await self.view.get(group_id, UUID(reference))
        except ValueError:
            tool = None
        return tool or await self.view.find(group_id, "name", reference)


def _read(tool: dict[str, Any]) -> ToolRead:
    return to_struct({**tool, "title": tool["name"], "configuration": tool["config"]}, ToolRead)


async def _written(core: Core, written: Any, tool_id: UUID) -> tuple[dict[str, Any], dict[str, str]]:
    headers = await settle(core, written)
    tool = found(await core.get(ToolsFeature).view.get(group_id(), tool_id), "tool", tool_id)
    headers["ETag"] = f'"{tool["version"]}"'
    return tool, headers


class ToolController(Controller):
    path = "/api/v1/tools"
    tags = ["tools"]

    @get("/", summary="List tools")
    async def list_tools(self, core: Core, limit: CatalogueLimit = 100, offset: Offset = 0) -> ToolPage:  # type: ignore[valid-type]
        """Built-in tools (``group_id`` null) as the caller's group has set them, and the group's own tools."""
        page = await core.get(ToolsFeature).view.page(group_id(), limit=limit, offset=offset)
        return to_struct({**page, "items": [_read(t) for t in page["items"]]}, ToolPage)

    @get("/enabled", summary="List enabled tools")
    async def list_enabled(self, core: Core, limit: CatalogueLimit = 100, offset: Offset = 0) -> ToolPage:  # type: ignore[valid-type]
        """The tools the caller's group has enabled: what its agents may use."""
        page = await core.get(ToolsFeature).view.page(group_id(), limit=limit, offset=offset, enabled=True)
        return to_struct({**page, "items": [_read(t) for t in page["items"]]}, ToolPage)

    @get("/{tool_id:uuid}", summary="Get a tool")
    async def get_tool(self, core: Core, tool_id: UUID) -> Response[ToolRead]:
        """One tool: a built-in, or one of the caller's group's (other groups' tools are 404)."""
        tool = found(await core.get(ToolsFeature).view.get(group_id(), tool_id), "tool", tool_id)
        return Response(_read(tool), headers={"ETag": f'"{tool["version"]}"'})

    @post("/", summary="Create a tool")
    async def create(self, request: Request[Any, Any, Any], core: Core, data: ToolFields) -> Response[ToolRead]:
        """Create a tool of the caller's group (``POST /tools`` and ``/tools/`` both work).

        ``name`` or ``title`` is required and unique in the group (a duplicate,
        or a built-in's name, is 409); ``configuration`` is accepted for ``config``.
        """
        written = await core.run(core.get(ToolsFeature).service.create, tool_fields(data))
        tool, headers = await _written(core, written, written.id)
        headers["Location"] = location(request, written.id)
        return Response(_read(tool), status_code=201, headers=headers)

    @put("/{tool_id:uuid}", summary="Update a tool")
    async def update(
        self, core: Core, tool_id: UUID, data: ToolFields, if_match: IfMatch = None
    ) -> Response[ToolRead]:
        """Change the fields sent. For a built-in only ``enabled`` and ``config`` change, for the
        caller's group alone (a sent config replaces the group's overrides; defaults fill the rest)."""
        service = core.get(ToolsFeature).service
        written = await core.run(service.change, tool_id, tool_fields(data), expected_version(if_match))
        tool, headers = await _written(core, written, tool_id)
        return Response(_read(tool), headers=headers)

    @delete("/{tool_id:uuid}", summary="Delete a tool", status_code=204)
    async def remove(self, core: Core, tool_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete one of the group's tools. Built-ins cannot be deleted (409): disable them instead."""
        written = await core.run(core.get(ToolsFeature).service.delete, tool_id, expected_version(if_match))
        return Response(None, status_code=204, headers=await settle(core, written))

    @patch("/{tool_id:uuid}/toggle-enabled", summary="Enable or disable a tool")
    async def toggle(self, core: Core, tool_id: UUID, if_match: IfMatch = None) -> Response[ToolToggled]:
        """Flip whether the caller's group may use the tool; other groups are unaffected."""
        service = core.get(ToolsFeature).service
        written = await core.run(service.toggle, tool_id, expected_version(if_match))
        tool, headers = await _written(core, written, tool_id)
        message = f"Tool {tool['name']} {'enabled' if tool['enabled'] else 'disabled'}"
        read = msgspec.structs.asdict(_read(tool))
        return Response(ToolToggled(**read, message=message), headers=headers)

    @get("/configurations/{tool_name:str}/schema", summary="Get a tool's configuration schema")
    async def config_schema(self, core: Core, tool_name: str) -> dict[str, Any]:
        """A JSON Schema (draft 2020-12) of the named tool's configuration, with the caller's
        group's current values as defaults. Unknown tool → 404."""
        tool = await core.get(ToolsFeature).find_tool(group_id(), tool_name)
        if tool is None:
            raise NotFoundError(f"Schema for tool {tool_name} not found")
        hints = BUILTIN_TOOL_HINTS.get(tool["name"].casefold(), {}) if tool["builtin"] else {}
        return config_schema(tool["name"], tool["config"], hints)
