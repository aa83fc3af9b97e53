"""What it takes to run each built-in tool: its implementation, its keys, what it needs.

The catalogue (``application.catalogue_seed``) says what a tool is to users;
this says what running it needs, so that every place that decides whether a
crew can run (``/crews/debug``, ``POST /executions``, generation, ``GET
/tools``) and the crew child that builds the tool read one table:

- ``implementation``: ``kasal:<name>`` for the service's own tools,
  ``crewai_tools:<Class>`` for the ``crewai-tools`` package's, ``mcp`` for
  the Model Context Protocol adapter, ``None`` when nothing can run it here.
- ``credentials``: the key names the tool reads; a group must have stored
  each (``POST /api/v1/api-keys``) before a crew using the tool may start.
- ``package``: a module that must be importable (an optional extra of
  ``crewai-tools``); without it the tool is listed as unavailable.
- ``unavailable``: why no deployment of this service can run the tool.
- ``paths``: the arguments that name files, confined to the group's directory.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

DATABRICKS = "needs a Databricks workspace, which this service is not connected to"
EMBEDDINGS = ("semantic search needs an embedding service and a vector store, which this service does not "
              "configure")
BROWSER = "needs a real browser (Selenium with Chrome), which this service does not ship"


@dataclass(frozen=True, slots=True)
class ToolKind:
    """How one built-in tool runs (see the module docstring for each field)."""

    name: str
    implementation: str | None
    credentials: tuple[str, ...] = ()
    package: str | None = None
    unavailable: str | None = None
    paths: tuple[str, ...] = ()

    @property
    def crewai_class(self) -> str | None:
        """The ``crewai_tools`` class name, for tools that package implements."""
        prefix, _, rest = (self.implementation or "").partition(":")
        return rest if prefix == "crewai_tools" else None

    def missing_credentials(self, key_names: Collection[str]) -> list[str]:
        """The keys this tool reads that are not among ``key_names``."""
        return [name for name in self.credentials if name not in key_names]


TOOL_KINDS: dict[str, ToolKind] = {kind.name: kind for kind in (
    ToolKind("calculator", "kasal:calculator"),
    ToolKind("current_datetime", "kasal:current_datetime"),
    ToolKind("SerperDevTool", "crewai_tools:SerperDevTool", ("SERPER_API_KEY",)),
    ToolKind("ScrapeWebsiteTool", "crewai_tools:ScrapeWebsiteTool"),
    ToolKind("DallETool", "crewai_tools:DallETool", ("OPENAI_API_KEY",)),
    ToolKind("PerplexityTool", "kasal:PerplexityTool", ("PERPLEXITY_API_KEY",)),
    ToolKind("GenieTool", None, unavailable=DATABRICKS),
    ToolKind("AgentBricksTool", None, unavailable=DATABRICKS),
    ToolKind("DatabricksKnowledgeSearchTool", None, unavailable=DATABRICKS),
    ToolKind("DatabricksJobsTool", None, unavailable=DATABRICKS),
    ToolKind("MCPTool", "mcp", package="mcp"),
    ToolKind("WebsiteSearchTool", None, unavailable=EMBEDDINGS),
    ToolKind("FileReadTool", "crewai_tools:FileReadTool", paths=("file_path",)),
    ToolKind("DirectoryReadTool", "crewai_tools:DirectoryReadTool", paths=("directory",)),
    ToolKind("CSVSearchTool", None, unavailable=EMBEDDINGS),
    ToolKind("PDFSearchTool", None, unavailable=EMBEDDINGS),
    ToolKind("YoutubeVideoSearchTool", None, unavailable=EMBEDDINGS),
    ToolKind("GithubSearchTool", None, unavailable=EMBEDDINGS),
    ToolKind("CodeDocsSearchTool", None, unavailable=EMBEDDINGS),
    ToolKind("EXASearchTool", "crewai_tools:EXASearchTool", ("EXA_API_KEY",), package="exa_py"),
    ToolKind("BraveSearchTool", "crewai_tools:BraveSearchTool", ("BRAVE_API_KEY",)),
    ToolKind("TavilySearchTool", "crewai_tools:TavilySearchTool", ("TAVILY_API_KEY",), package="tavily"),
    ToolKind("FirecrawlScrapeWebsiteTool", "crewai_tools:FirecrawlScrapeWebsiteTool", ("FIRECRAWL_API_KEY",),
             package="firecrawl"),
    ToolKind("SeleniumScrapingTool", None, unavailable=BROWSER),
)}
"""Every built-in tool of the catalogue, by name."""

CUSTOM_TOOL = ("a custom tool has no implementation this service can run; reach your own code through "
               "an MCP server with MCPTool")
TOOL_CREDENTIALS = frozenset(name for kind in TOOL_KINDS.values() for name in kind.credentials)
"""Every key name a tool reads: a crew's process sees only its group's values of these."""


def unavailable_reason(tool: Mapping[str, Any], installed: Callable[[str], bool]) -> str | None:
    """Why this deployment cannot run ``tool`` (a catalogue row), or None when it can.

    ``installed`` says whether a module can be imported here; a tool whose
    optional package is missing becomes available once it is installed.
    """
    if tool.get("tool_type") != "builtin":
        return CUSTOM_TOOL
    kind = TOOL_KINDS.get(str(tool.get("name")))
    if kind is None:
        return "this service has no implementation of it"
    if kind.unavailable:
        return kind.unavailable
    if kind.package and not installed(kind.package):
        return f"needs the Python package that provides {kind.package!r}, which is not installed here"
    return None


def mcp_refusal(config: Mapping[str, Any], stdio_commands: Collection[str]) -> str | None:
    """Why an MCPTool configuration cannot be used here, or None.

    A stdio server is a program this service would start, so it must be one
    the operator allowed (``KASAL_MCP_STDIO_COMMANDS``); URL servers need a
    URL. Anything else would let a group run code on the host.
    """
    server_type = config.get("server_type", "sse")
    if server_type == "stdio":
        command = str(config.get("command") or "")
        if not command:
            return "a stdio MCP server needs a command"
        if command not in stdio_commands:
            allowed = ", ".join(sorted(stdio_commands)) or "none"
            return (f"stdio MCP command {command!r} is not allowed here (KASAL_MCP_STDIO_COMMANDS allows: "
                    f"{allowed})")
        return None
    if server_type in ("sse", "streamable-http"):
        url = str(config.get("server_url") or "")
        if not url.startswith(("http://", "https://")):
            return f"an {server_type} MCP server needs an http(s) server_url"
        return None
    return f"server_type must be sse, streamable-http or stdio, got {server_type!r}"
