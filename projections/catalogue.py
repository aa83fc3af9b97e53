"""Read models of the catalogues (tools and models): built-in entries laid under each group's choices.

Built-in tools and models are stored once (group ``BUILTIN_GROUP``); a group
sees each with its own setting (enabled, config, tuning) laid over it, plus
the entries it created. The document tables are written only by their
``DocumentProjection``s; these views own the SQL that reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.model_config import effective_model, model_setting_id
from domain.tool import BUILTIN_GROUP, effective_tool, tool_setting_id
from projections.base import LogRows
from projections.documents import Page


class CatalogueView:
    """Built-in entries (shared) and a group's own, each as that group sees it.

    Reads the document table of the entries joined with the group's settings
    table; ``seen`` lays a setting over an entry. Both tables are written only
    by their ``DocumentProjection``.
    """

    def __init__(
        self, pool: AsyncConnectionPool, table: str, settings_table: str, link: str,
        seen: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]], order: str,
        setting_id: Callable[[str, UUID], UUID],
    ) -> None:
        self.pool = pool
        self.table, self.settings_table, self.setting_id = table, settings_table, setting_id
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

    def projected(self, group: str, item_id: UUID, version: int) -> dict[str, Any] | None:
        """Always None: an entry is a row joined with the group's setting, so a write is read back with ``get``."""
        return None

    def from_log(self, rows: LogRows, group: str, item_id: UUID) -> dict[str, Any] | None:
        """What ``get`` will answer once both tables have caught up with the log."""
        entry = rows(self.table, item_id)
        if entry is None or entry["group_id"] not in (group, BUILTIN_GROUP):
            return None
        return self.combined(entry, rows(self.settings_table, self.setting_id(group, item_id)))

    def combined(self, entry: dict[str, Any], setting: dict[str, Any] | None) -> dict[str, Any]:
        """An entry's row with the group's setting row laid over it, as ``get`` answers them joined."""
        setting = setting or {}
        return self.to_resource({
            **entry, "setting": setting.get("doc"), "setting_version": setting.get("version"),
            "setting_updated_at": setting.get("updated_at"), "setting_updated_by": setting.get("updated_by"),
        })


class ToolCatalogueView(CatalogueView):
    """The tools each group sees; the ``ToolCatalogue`` port."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        super().__init__(pool, "rm_tools", "rm_tool_settings", "tool_id", effective_tool,
                         order="lower(t.name), t.id", setting_id=tool_setting_id)

    async def tool_names(self, group_id: str) -> tuple[set[str], set[str]]:
        """``(enabled, disabled)`` names of the tools the group sees."""
        enabled: set[str] = set()
        disabled: set[str] = set()
        for tool in await self.all(group_id):
            (enabled if tool["enabled"] else disabled).add(tool["name"])
        return enabled, disabled

    async def find_tool(self, group_id: str, reference: str) -> dict[str, Any] | None:
        """The tool an agent's ``tools`` entry means: by id, else by name ignoring case."""
        try:
            tool = await self.get(group_id, UUID(reference))
        except ValueError:
            tool = None
        return tool or await self.find(group_id, "name", reference)


class ModelCatalogueView(CatalogueView):
    """The models each group sees; the ``ModelCatalogue`` and ``ModelResolver`` ports."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        super().__init__(pool, "rm_models", "rm_model_settings", "model_id", effective_model,
                         order="lower(t.doc->>'key'), t.id", setting_id=model_setting_id)

    async def model_names(self, group_id: str) -> set[str]:
        """What an enabled model may be called in ``llm:``: its key and its LiteLLM model string."""
        names: set[str] = set()
        for model in await self.all(group_id):
            if model["enabled"]:
                names.update((model["key"], model["litellm_model"]))
        return names

    async def resolve_model(self, group_id: str, name: str) -> dict[str, Any] | None:
        """The record an ``llm:`` value means, by key, else LiteLLM string, else provider model id.

        Disabled models are returned too (``enabled`` false) so callers can say
        "disabled" rather than "unknown". The record carries ``litellm_model``,
        ``provider`` and ``api_key_name`` for the call.
        """
        wanted = name.strip().casefold()
        models = await self.all(group_id)
        for field in ("key", "litellm_model", "name"):
            matches = [m for m in models if str(m[field]).casefold() == wanted]
            if matches:
                return min(matches, key=lambda m: (not m["enabled"], not m["builtin"]))
        return None
