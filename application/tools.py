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
from domain.errors import ConflictError, NotFoundError
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


def restore_setting(
    store: KasalStore, builtin: Document, setting_id: UUID, version: int, expected_version: ExpectedVersions | None,
) -> Written:
    """Restore a group's view of a built-in entry at ``version``: its setting as it was then.

    A version of a built-in, as the group sees it, is one event of the entry
    or of the group's setting (``catalogue_versions``); the shared entry is
    never the group's to change, so only the setting comes back.
    """

    def attempt() -> Written:
        setting = store.find(setting_id)
        setting_events = store.history(setting_id) if setting is not None else []
        current = builtin.version + (setting.version if setting is not None else 0)
        if expected_version is not None:
            expected_version.check(builtin.KIND, builtin.id, current)
        if not 1 <= version <= current:
            raise NotFoundError(f"{builtin.KIND} {builtin.id} has no version {version}")
        if setting is None:
            return Written(builtin.id, current, None)  # never changed by this group: every version is this one
        _, setting_version = catalogue_versions(store.history(builtin.id), setting_events)[version - 1]
        wanted = {k: v for k, v in setting.fields.items() if k in _LINKS}
        if setting_version:
            wanted = dict(store.repository.get(setting_id, version=setting_version).fields)
        if not setting.restore(wanted, from_version=version):
            return Written(builtin.id, current, None)
        position = store.record(setting)
        return Written(builtin.id, builtin.version + setting.version, position)

    return retry_on_conflict(attempt, attempts=5)


_LINKS = frozenset({"tool_id", "model_id"})
"""The field naming the entry a setting belongs to: all a setting holds before the group's first choice."""


def catalogue_versions(entry_events: list[Any], setting_events: list[Any]) -> list[tuple[int, int]]:
    """``(entry version, setting version)`` after each version a group sees of a catalogue entry.

    Both aggregates' events in the order they happened (on equal timestamps the
    entry's first), so version ``n`` is the ``n``-th of them.
    """
    versions: list[tuple[int, int]] = []
    i = j = 0
    while i < len(entry_events) or j < len(setting_events):
        if j >= len(setting_events) or (i < len(entry_events)
                                        and entry_events[i].timestamp <= setting_events[j].timestamp):
            i += 1
        else:
            j += 1
        versions.append((i, j))
    return versions


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

    def restore(self, tool_id: UUID, version: int, expected_version: ExpectedVersions | None = None) -> Written:
        """Bring back version ``version`` as the group saw it: for a built-in, the group's setting then."""
        builtin = self.builtin(tool_id)
        if builtin is None:
            self._refuse_builtin_name(self.documents.past(self.documents.load_any(tool_id), version).name)
            return self.documents.restore(tool_id, version, expected_version)
        group_id = current_actor().group_id
        return restore_setting(self.store, builtin, tool_setting_id(group_id, tool_id), version, expected_version)

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
