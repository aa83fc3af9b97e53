"""Tool commands: a group's own tools are documents; its choices about built-ins are settings.

Every command takes a tool id. A built-in (found by id, whoever asks) is
never changed itself: the caller's group records a ``ToolSetting`` instead,
so toggling SerperDevTool in one group leaves every other group's view alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from application.documents import DocumentService, ExpectedVersions, Written
from application.store import KasalStore, retry_on_conflict
from domain.base import Document
from domain.context import current_actor
from domain.errors import ConflictError
from domain.tool import Tool, ToolSetting, builtin_tool_id, effective_tool, tool_setting_id

Decide = Callable[[dict[str, Any]], dict[str, Any]]
"""Given what the group sees now, the setting changes to record."""


def override_builtin(
    store: KasalStore,
    builtin: Document,
    setting_id: UUID,
    new_setting: Callable[[dict[str, Any]], Document],
    seen: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]],
    decide: Decide,
    expected_version: ExpectedVersions | None,
) -> Written:
    """Record the caller's group's setting for a built-in catalogue entry.

    The version a group sees is the entry's version plus its setting's, so it
    grows with either and ``If-Match`` can guard a group's change.
    """

    def attempt() -> Written:
        setting = store.find(setting_id)
        version = builtin.version + (setting.version if setting is not None else 0)
        if expected_version is not None:
            expected_version.check(builtin.KIND, builtin.id, version)
        changes = decide(seen(builtin.fields, setting.fields if setting is not None else None))
        if setting is None:
            if not changes:
                return Written(builtin.id, version, None)
            setting = new_setting(changes)
        else:
            setting.change(changes)
        position = store.record(setting)
        return Written(builtin.id, builtin.version + setting.version, position)

    return retry_on_conflict(attempt, attempts=5)


class ToolsService:
    """Create, change, toggle and delete tools as the current actor's group."""

    def __init__(self, store: KasalStore) -> None:
        self.store = store
        self.documents = DocumentService(store, Tool, unique_names=True)

    def create(self, fields: dict[str, Any]) -> Written:
        self._refuse_builtin_name(fields.get("name"))
        return self.documents.create(fields)

    def change(
        self, tool_id: UUID, changes: dict[str, Any], expected_version: ExpectedVersions | None = None
    ) -> Written:
        """Change the fields sent; for a built-in only ``enabled`` and ``config``, for this group."""
        builtin = self.builtin(tool_id)
        if builtin is None:
            if "name" in changes:
                self._refuse_builtin_name(changes["name"])
            return self.documents.change(tool_id, changes, expected_version)
        wanted = builtin.override(changes)
        return self._override(builtin, lambda seen: {k: v for k, v in wanted.items() if seen.get(k) != v},
                              expected_version)

    def toggle(self, tool_id: UUID, expected_version: ExpectedVersions | None = None) -> Written:
        """Flip whether the caller's group can use the tool."""
        builtin = self.builtin(tool_id)
        if builtin is not None:
            return self._override(builtin, lambda seen: {"enabled": not seen["enabled"]}, expected_version)

        def attempt() -> Written:
            tool = self.documents.get(tool_id)
            if expected_version is not None:
                expected_version.check("tool", tool_id, tool.version)
            tool.change({"enabled": not tool.fields["enabled"]})
            return Written(tool.id, tool.version, self.store.record(tool))

        return retry_on_conflict(attempt, attempts=5)

    def delete(self, tool_id: UUID, expected_version: ExpectedVersions | None = None) -> Written:
        builtin = self.builtin(tool_id)
        if builtin is not None:
            builtin.check_removable()
        return self.documents.delete(tool_id, expected_version)

    def builtin(self, tool_id: UUID) -> Tool | None:
        """The built-in tool with this id, if it is one (built-ins are visible to every group)."""
        found = self.store.find(tool_id)
        if isinstance(found, Tool) and found.builtin and not found.deleted:
            return found
        return None

    def _override(self, tool: Tool, decide: Decide, expected_version: ExpectedVersions | None) -> Written:
        group_id = current_actor().group_id
        return override_builtin(
            self.store, tool, tool_setting_id(group_id, tool.id),
            lambda changes: ToolSetting.for_tool(group_id, tool.id, changes),
            effective_tool, decide, expected_version,
        )

    def _refuse_builtin_name(self, name: Any) -> None:
        if isinstance(name, str) and name.strip() and self.builtin(builtin_tool_id(name)) is not None:
            raise ConflictError(
                f"A built-in tool named '{name.strip()}' already exists",
                errors=[("name", "the name of a built-in tool")],
            )
