"""Which of a group's tools can run in this deployment, and what each still lacks.

One answer for every caller: ``GET /tools`` lists it (``available``,
``unavailable_reason``), generation offers only what can run, and
``/crews/debug`` and ``POST /executions`` refuse a crew naming a tool that
cannot run or whose key the group has not stored, before anything is
recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.tool_kinds import TOOL_KINDS, ToolKind, mcp_refusal, unavailable_reason


@dataclass(frozen=True, slots=True)
class ToolAccess:
    """The deployment's side of running tools: what is installed, which MCP programs may start."""

    installed: Callable[[str], bool]
    mcp_stdio_commands: frozenset[str] = field(default_factory=frozenset)

    def refusal(self, tool: Mapping[str, Any]) -> str | None:
        """Why this deployment cannot run ``tool`` (a catalogue row as a group sees it), or None."""
        reason = unavailable_reason(tool, self.installed)
        if reason is None and tool.get("name") == "MCPTool":
            reason = mcp_refusal(tool.get("config") or {}, self.mcp_stdio_commands)
        return reason

    def blocked(self, tools: Iterable[Mapping[str, Any]], key_names: Collection[str]) -> dict[str, str]:
        """Name → why a crew naming it cannot start now, for each tool of a group that cannot run."""
        blocked: dict[str, str] = {}
        for tool in tools:
            name = str(tool.get("name"))
            reason = self.refusal(tool)
            kind = kind_of(tool)
            missing = kind.missing_credentials(key_names) if kind is not None and reason is None else []
            if missing:
                reason = (f"needs the API key {', '.join(missing)}, which this group has not stored "
                          "(POST /api/v1/api-keys)")
            if reason is not None:
                blocked[name] = reason
        return blocked

    def runnable(self, tools: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The tools this deployment can run (keys aside): what generation may offer a model."""
        return [tool for tool in tools if self.refusal(tool) is None]


def kind_of(tool: Mapping[str, Any]) -> ToolKind | None:
    """How a catalogue row runs: built-ins only (a group's custom tool has no kind)."""
    return TOOL_KINDS.get(str(tool.get("name"))) if tool.get("tool_type") == "builtin" else None


def required_keys(tool: Mapping[str, Any]) -> list[str]:
    """The API key names a catalogue tool reads (none for custom tools)."""
    kind = kind_of(tool)
    return list(kind.credentials) if kind is not None else []
