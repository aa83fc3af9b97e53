"""Building the catalogue's tools inside a crew child, as the group configured them.

Runs only in the crew's own process (it imports crewai and crewai-tools):

- the tool's settings are the group's configuration with the agent's
  ``tool_configs`` entry over it; a setting the tool lacks is ignored when it
  comes from the catalogue (defaults are shared) and fails the run when an
  agent asked for it;
- API keys are put into this process's environment from the group's key
  store for this run only (``use_credentials``), after every tool key the
  service's own environment held is removed;
- file tools read nothing outside the group's directory (symlinks resolved),
  which is also the process's working directory;
- web tools refuse loopback and private addresses unless the operator
  allowed them; an MCP server's tools are its own, and the server is stopped
  with the run.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

from crewai.tools import BaseTool
from crewai.utilities.string_utils import sanitize_tool_name

from domain.tool_kinds import TOOL_CREDENTIALS, TOOL_KINDS, ToolKind
from interface.crew_runtime.messages import CrewJob, ToolSpec
from interface.crew_runtime.tools import BUILTIN_TOOLS, PerplexityTool, UnknownTool

ALLOW_UNSAFE = "CREWAI_TOOLS_ALLOW_UNSAFE_PATHS"
FORCE_SAFE = "CREWAI_TOOLS_FORCE_SAFE_PATHS"
FIXED_FIELDS = frozenset({"name", "args_schema", "description", "env_vars", "package_dependencies"})
OWN_TOOLS: dict[str, type[BaseTool]] = {**BUILTIN_TOOLS, "PerplexityTool": PerplexityTool}
MCP_CONNECT_TIMEOUT_S = 30
REPLAY_PLACEHOLDER = "replay-uses-no-key"


class ToolError(ValueError):
    """A tool the job names cannot be built as configured (the run fails with this message)."""


def use_credentials(job: CrewJob) -> None:
    """Give this process the group's tool keys, and only those; set how web and file tools guard."""
    for name in TOOL_CREDENTIALS:
        os.environ.pop(name, None)
    for name in TOOL_CREDENTIALS & job.credentials.keys():
        os.environ[name] = job.credentials[name]
    if job.replay is not None:  # tools that insist on their key when built; a replay never runs them
        for name in TOOL_CREDENTIALS - job.credentials.keys():
            os.environ[name] = REPLAY_PLACEHOLDER
    if job.allow_private_urls:
        os.environ.pop(FORCE_SAFE, None)
        os.environ[ALLOW_UNSAFE] = "true"  # file tools stay confined by ``confined`` below
    else:
        os.environ.pop(ALLOW_UNSAFE, None)
        os.environ[FORCE_SAFE] = "true"
    if job.files_dir:
        os.chdir(job.files_dir)


def inside(root: str, path: str) -> str:
    """``path`` (relative to ``root``, or absolute) resolved; ValueError unless it is within ``root``."""
    base = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(base, os.path.expanduser(path)))
    if resolved != base and not resolved.startswith(base + os.sep):
        raise ValueError(f"{path!r} is outside this group's files directory; only files under it can be read")
    return resolved


def confined(cls: type[BaseTool], root: str, paths: tuple[str, ...]) -> type[BaseTool]:
    """A subclass of a file tool whose path arguments must resolve inside ``root``."""
    def _run(self: BaseTool, *args: Any, **kwargs: Any) -> Any:
        for name in paths:
            given = kwargs.get(name) or getattr(self, name, None)
            if given:
                kwargs[name] = inside(root, str(given))
        return cls._run(self, *args, **kwargs)

    return type(f"Confined{cls.__name__}", (cls,), {"_run": _run, "__module__": __name__})


class CatalogueTools:
    """The job's tool factory: ``(name, agent options)`` → the tools that name stands for.

    A name is usually one tool; an MCPTool is every tool its server offers.
    MCP servers started here are stopped when ``stack`` closes (end of run).
    """

    def __init__(self, job: CrewJob, stack: ExitStack) -> None:
        self.job = job
        self.stack = stack
        self._servers: dict[str, list[BaseTool]] = {}
        self.names: dict[str, str] = {}
        """How crewai names each built tool in its events → the name the group configured."""

    def __call__(self, name: str, options: Mapping[str, Any] | None = None) -> list[BaseTool]:
        spec = self.job.tools.get(name)
        if spec is None:  # a job built without the catalogue: the service's own tools by name
            if name not in BUILTIN_TOOLS:
                raise UnknownTool(f"unknown tool {name!r}; available tools: {', '.join(sorted(BUILTIN_TOOLS))}")
            return [with_options(BUILTIN_TOOLS[name](), options)]
        kind = self._kind(name, spec)
        settings = {**{k: v for k, v in spec.config.items() if v not in ("", None)}, **(options or {})}
        if kind.implementation == "mcp":
            return self._mcp(settings)
        cls = self._class(kind)
        if kind.paths and self.job.files_dir:
            cls = confined(cls, self.job.files_dir, kind.paths)
            for path in kind.paths:
                if settings.get(path):
                    settings[path] = self._checked_path(name, str(settings[path]))
            if kind.name == "FileReadTool":
                settings.setdefault("base_dir", self.job.files_dir)
        arguments = constructor_arguments(kind, cls, settings, strict=set(options or {}))
        try:
            tool = cls(**arguments)
        except Exception as exc:  # a provider SDK refusing its settings: name the tool
            raise ToolError(f"tool {name!r} cannot be built: {exc}") from exc
        tool.name = kind.name
        self.names[sanitize_tool_name(kind.name)] = kind.name
        return [tool]

    def _kind(self, name: str, spec: ToolSpec) -> ToolKind:
        if spec.refusal:
            raise ToolError(f"tool {name!r} cannot run: {spec.refusal}")
        kind = TOOL_KINDS.get(spec.kind)
        if kind is None or kind.implementation is None:
            raise ToolError(f"tool {name!r} cannot run: this service has no implementation of it")
        missing = kind.missing_credentials(self.job.credentials)
        if missing and self.job.replay is None:  # a replay never runs the tool: it needs no key
            raise ToolError(f"tool {name!r} needs the API key {', '.join(missing)}, which this group has not "
                            "stored (POST /api/v1/api-keys)")
        return kind

    @staticmethod
    def _class(kind: ToolKind) -> type[BaseTool]:
        if kind.crewai_class is None:
            return OWN_TOOLS[str(kind.implementation).partition(":")[2]]
        found: type[BaseTool] = getattr(importlib.import_module("crewai_tools"), kind.crewai_class)
        return found

    def _checked_path(self, name: str, path: str) -> str:
        try:
            return inside(str(self.job.files_dir), path)
        except ValueError as exc:
            raise ToolError(f"tool {name!r}: {exc}") from None

    def _mcp(self, settings: Mapping[str, Any]) -> list[BaseTool]:
        """Every tool of the configured MCP server (one server per configuration, shared by agents)."""
        key = json.dumps(settings, sort_keys=True, default=str)
        if key not in self._servers:
            from crewai_tools import MCPServerAdapter
            from mcp import StdioServerParameters

            params: Any
            if settings.get("server_type") == "stdio":
                params = StdioServerParameters(command=str(settings["command"]),
                                               args=[str(a) for a in settings.get("args") or []],
                                               env={str(k): str(v) for k, v in (settings.get("env") or {}).items()}
                                               or None)
            else:
                params = {"url": settings["server_url"], "transport": settings.get("server_type", "sse")}
            try:
                adapter = MCPServerAdapter(params, connect_timeout=MCP_CONNECT_TIMEOUT_S)
            except Exception as exc:
                raise ToolError(f"MCP server could not be reached: {exc}") from exc
            self.stack.callback(adapter.stop)
            self._servers[key] = list(adapter.tools)
        return self._servers[key]


def constructor_arguments(
    kind: ToolKind, cls: type[BaseTool], settings: Mapping[str, Any], *, strict: set[str],
) -> dict[str, Any]:
    """The settings ``cls`` takes; a setting named in ``strict`` that it lacks is a ``ToolError``."""
    settings = dict(settings)
    if kind.name == "SerperDevTool" and isinstance(settings.get("search_url"), str):
        base, _, search_type = settings.pop("search_url").rstrip("/").rpartition("/")
        settings.setdefault("base_url", base)
        settings.setdefault("search_type", search_type)
    fields = options_of(kind.name, cls, set(strict) - {"search_url"})
    return {name: value for name, value in settings.items() if name in fields}


def with_options(tool: BaseTool, options: Mapping[str, Any] | None) -> BaseTool:
    """One of the service's own tools with an agent's ``tool_configs`` entry applied."""
    if not options:
        return tool
    options_of(tool.name, type(tool), set(options))
    return tool.model_copy(update=dict(options))


def options_of(name: str, cls: type[BaseTool], asked: set[str]) -> set[str]:
    """The settings ``cls`` takes; ``ToolError`` naming each asked-for one it lacks, and listing them."""
    fields = set(cls.model_fields) - FIXED_FIELDS
    unknown = sorted(asked - fields)
    if unknown:
        raise ToolError(f"tool {name!r} has no option {', '.join(map(repr, unknown))}; "
                        f"its options: {', '.join(sorted(fields))}")
    return fields


ToolFactory = Callable[[str, Mapping[str, Any] | None], list[BaseTool]]
