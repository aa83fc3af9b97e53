"""What the tools a crew names are, for one run: the group's configuration and its files.

The runner asks this before it starts a crew, so the crew child receives each
tool as the group has configured it (catalogue defaults, the group's setting
over them) and the one directory its file tools may read. A tool that cannot
run is still passed, with the reason, so the run fails naming it rather than
with an unknown name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from application.tool_access import ToolAccess
from interface.crew_runtime.messages import ToolSpec

FindTool = Callable[[str, str], Awaitable[dict[str, Any] | None]]
"""``(group, reference)`` → the tool a ``tools`` entry means: by id, else by name ignoring case."""


class ToolResolver:
    def __init__(self, find: FindTool, access: ToolAccess, home: Path, *, allow_private_urls: bool = False) -> None:
        self.find = find
        self.access = access
        self.root = home / "files"
        self.allow_private_urls = allow_private_urls

    async def specs(self, group_id: str, entries: Iterable[Mapping[str, Any]]) -> dict[str, ToolSpec]:
        """Each name in the entries' ``tools`` lists → how to build that tool for this group."""
        names = {str(name) for entry in entries for name in entry.get("tools") or [] if isinstance(name, str)}
        return {name: await self._spec(group_id, name) for name in sorted(names)}

    async def _spec(self, group_id: str, name: str) -> ToolSpec:
        tool = await self.find(group_id, name)
        if tool is None:
            return ToolSpec(kind="", refusal=f"no tool named {name!r} in this group's catalogue")
        if not tool["enabled"]:
            return ToolSpec(kind=tool["name"], refusal=f"tool {tool['name']} is disabled in this group")
        return ToolSpec(kind=tool["name"] if tool.get("tool_type") == "builtin" else "",
                        config=dict(tool.get("config") or {}), refusal=self.access.refusal(tool))

    def files_dir(self, group_id: str) -> str:
        """The group's own directory under the service's home (created on first use)."""
        directory = self.root / group_directory(group_id)
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory.resolve())


def group_directory(group_id: str) -> str:
    """A directory name for a group: readable, and distinct for distinct groups whatever they contain."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", group_id).strip("._")[:60] or "group"
    return f"{readable}-{hashlib.sha256(group_id.encode()).hexdigest()[:12]}"
