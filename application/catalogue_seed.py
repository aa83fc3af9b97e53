"""The built-in tool and model catalogues, and recording them as events on start-up.

Seeding is idempotent: every built-in has an id derived from its name, so a
second start (or a second process starting at the same time) finds what is
already recorded and writes nothing; a built-in an upgrade adds is created,
and one whose definition an upgrade changed is brought up to date. Groups'
choices live in their own settings aggregates, so none of this undoes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from application.store import KasalStore, retry_on_conflict
from domain.base import Document
from domain.context import Actor, acting_as
from domain.model_config import ModelConfig, builtin_model_id
from domain.tool import BUILTIN_GROUP, Tool, builtin_tool_id

SEED_ACTOR = Actor(group_id=BUILTIN_GROUP, actor="system:seed", role="admin", correlation_id="seed")


@dataclass(frozen=True)
class BuiltinTool:
    name: str
    description: str
    icon: str
    config: dict[str, Any] = field(default_factory=dict)
    hints: dict[str, dict[str, Any]] = field(default_factory=dict)
    """JSON Schema keywords per config key that values alone cannot express."""

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "tool_type": "builtin", "icon": self.icon,
            "config": {"result_as_answer": False, **self.config}, "enabled": True,
        }


_SEARCH_RESULTS = {"n_results": {"minimum": 1, "maximum": 100, "description": "How many results to return"}}

BUILTIN_TOOLS: tuple[BuiltinTool, ...] = (
    BuiltinTool("calculator", "Evaluates arithmetic expressions exactly (+ - * / // % ** and parentheses). "
                "Works offline.", "utility"),
    BuiltinTool("current_datetime", "Returns the current date and time in UTC (ISO 8601). Works offline.",
                "utility"),
    BuiltinTool("SerperDevTool", "Web search through the Serper.dev API with result count, country and "
                "locale targeting.", "development",
                {"n_results": 10, "search_url": "https://google.serper.dev/search", "country": "us",
                 "locale": "en", "location": ""}, _SEARCH_RESULTS),
    BuiltinTool("ScrapeWebsiteTool", "Extracts the text content of a web page.", "web"),
    BuiltinTool("DallETool", "Generates images from text descriptions with the DALL-E API.", "ai",
                {"model": "dall-e-3", "size": "1024x1024", "quality": "standard", "n": 1},
                {"size": {"enum": ["1024x1024", "1024x1792", "1792x1024"]},
                 "quality": {"enum": ["standard", "hd"]}, "n": {"minimum": 1, "maximum": 10}}),
    BuiltinTool("PerplexityTool", "Answers questions with web-grounded, cited responses from Perplexity AI.",
                "search",
                {"model": "sonar", "max_tokens": 2000, "temperature": 0.1, "top_p": 0.9,
                 "search_recency_filter": "month", "return_images": False,
                 "base_url": "https://api.perplexity.ai"},
                {"model": {"enum": ["sonar", "sonar-pro", "sonar-reasoning", "sonar-reasoning-pro",
                                    "sonar-deep-research"]},
                 "search_recency_filter": {"enum": ["day", "week", "month", "year"]},
                 "temperature": {"minimum": 0, "maximum": 1}}),
    BuiltinTool("GenieTool", "Queries Databricks Genie spaces in natural language.", "database",
                {"spaceId": "", "max_calls": 5, "max_result_rows": 200},
                {"spaceId": {"description": "The Genie space to query"}}),
    BuiltinTool("AgentBricksTool", "Queries Databricks AgentBricks serving endpoints.", "databricks",
                {"result_as_answer": True, "timeout": 120},
                {"timeout": {"minimum": 1, "description": "Seconds to wait for the endpoint"}}),
    BuiltinTool("DatabricksKnowledgeSearchTool", "Semantic search over documents indexed in Databricks "
                "Vector Search.", "search"),
    BuiltinTool("DatabricksJobsTool", "Lists, inspects and runs Databricks jobs (no destructive actions).",
                "database", {"DATABRICKS_HOST": ""}),
    BuiltinTool("MCPTool", "Adapter for Model Context Protocol servers (SSE or stdio).", "integration",
                {"server_type": "sse", "server_url": "http://localhost:8001/sse", "command": "uvx",
                 "args": [], "env": {}},
                {"server_type": {"enum": ["sse", "stdio", "streamable-http"]}}),
    BuiltinTool("WebsiteSearchTool", "Semantic search within the content of a website.", "web",
                {"website": ""}),
    BuiltinTool("FileReadTool", "Reads the content of a file.", "file", {"file_path": ""}),
    BuiltinTool("DirectoryReadTool", "Lists the files of a directory.", "file", {"directory": ""}),
    BuiltinTool("CSVSearchTool", "Semantic search within a CSV file.", "file", {"csv": ""}),
    BuiltinTool("PDFSearchTool", "Semantic search within a PDF document.", "file", {"pdf": ""}),
    BuiltinTool("YoutubeVideoSearchTool", "Semantic search within a YouTube video's transcript.", "web",
                {"youtube_video_url": ""}),
    BuiltinTool("GithubSearchTool", "Semantic search within a GitHub repository.", "development",
                {"github_repo": "", "content_types": ["code", "issue"]}),
    BuiltinTool("CodeDocsSearchTool", "Semantic search within code documentation.", "development",
                {"docs_url": ""}),
    BuiltinTool("EXASearchTool", "Web search through the Exa API.", "search"),
    BuiltinTool("BraveSearchTool", "Web search through the Brave Search API.", "search",
                {"n_results": 10}, _SEARCH_RESULTS),
    BuiltinTool("TavilySearchTool", "Web search and extraction through the Tavily API.", "search",
                {"max_results": 5, "search_depth": "basic"},
                {"search_depth": {"enum": ["basic", "advanced"]}}),
    BuiltinTool("FirecrawlScrapeWebsiteTool", "Scrapes web pages into clean markdown with Firecrawl.", "web",
                {"config": {"formats": ["markdown"]}}),
    BuiltinTool("SeleniumScrapingTool", "Scrapes pages that need a real browser (JavaScript).", "web",
                {"css_element": "", "wait_time": 3}),
)

BUILTIN_TOOL_HINTS = {tool.name.casefold(): tool.hints for tool in BUILTIN_TOOLS}


def _model(name: str, provider: str, context_window: int, max_output_tokens: int, *,
           temperature: float = 0.7, **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "temperature": temperature, "context_window": context_window,
            "max_output_tokens": max_output_tokens, **extra}


BUILTIN_MODELS: dict[str, dict[str, Any]] = {
    "offline/echo": _model("offline/echo", "offline", 1_000_000, 4096, temperature=0.0),
    "offline/slow": _model("offline/slow", "offline", 1_000_000, 4096, temperature=0.0),
    "offline/random": _model("offline/random", "offline", 1_000_000, 4096, temperature=0.0),
    "gpt-4": _model("gpt-4", "openai", 8192, 4096),
    "gpt-4o": _model("gpt-4o", "openai", 128_000, 4096),
    "gpt-4o-mini": _model("gpt-4o-mini", "openai", 128_000, 4096),
    "gpt-4-turbo": _model("gpt-4-turbo-preview", "openai", 128_000, 4096),
    "gpt-3.5-turbo": _model("gpt-3.5-turbo", "openai", 16_385, 4096),
    "gpt-5": _model("gpt-5", "openai", 400_000, 128_000),
    "o1-preview": _model("o1-preview", "openai", 128_000, 4096, temperature=1.0),
    "claude-3-5-sonnet-20241022": _model("claude-3-5-sonnet-20241022", "anthropic", 200_000, 8192),
    "claude-3-5-haiku-20241022": _model("claude-3-5-haiku-20241022", "anthropic", 200_000, 8192),
    "claude-3-7-sonnet-20250219": _model("claude-3-7-sonnet-20250219", "anthropic", 200_000, 64_000),
    "claude-sonnet-4": _model("claude-sonnet-4-20250514", "anthropic", 200_000, 8192),
    "claude-opus-4-20250514": _model("claude-opus-4-20250514", "anthropic", 200_000, 32_000),
    "deepseek-chat": _model("deepseek-chat", "deepseek", 128_000, 8000),
    "deepseek-reasoner": _model("deepseek-reasoner", "deepseek", 128_000, 64_000),
    "llama3.2:latest": _model("llama3.2:latest", "ollama", 128_000, 4096),
    "qwen2.5:32b": _model("qwen2.5:32b", "ollama", 32_768, 4096),
    "gemma2:27b": _model("gemma2:27b", "ollama", 32_768, 4096),
    "deepseek-r1:32b": _model("deepseek-r1:32b", "ollama", 32_768, 4096),
    "databricks-llama-4-maverick": _model("databricks-llama-4-maverick", "databricks", 128_000, 8000),
    "databricks-claude-sonnet-4": _model("databricks-claude-sonnet-4", "databricks", 200_000, 64_000),
    "databricks-claude-3-7-sonnet": _model("databricks-claude-3-7-sonnet", "databricks", 200_000, 64_000),
    "databricks-meta-llama-3-3-70b-instruct": _model(
        "databricks-meta-llama-3-3-70b-instruct", "databricks", 128_000, 4096),
    "databricks-gpt-oss-120b": _model("databricks-gpt-oss-120b", "databricks", 128_000, 25_000),
    "databricks-gemini-2-5-pro": _model("databricks-gemini-2-5-pro", "databricks", 1_000_000, 65_536),
    "gemini-2.0-flash": _model("gemini-2.0-flash", "gemini", 1_000_000, 4096),
    "gemini-2.5-flash": _model("gemini-2.5-flash", "gemini", 1_000_000, 65_536),
    "gemini-2.5-pro": _model("gemini-2.5-pro", "gemini", 1_000_000, 65_536),
}


def tool_catalogue() -> dict[UUID, dict[str, Any]]:
    return {builtin_tool_id(tool.name): tool.fields() for tool in BUILTIN_TOOLS}


def model_catalogue() -> dict[UUID, dict[str, Any]]:
    return {builtin_model_id(key): {"key": key, "enabled": True, **fields} for key, fields in BUILTIN_MODELS.items()}


def seed_tools(store: KasalStore) -> int | None:
    """Record the built-in tools that are new or changed; the log position, or None if nothing was."""
    return seed_catalogue(store, Tool, tool_catalogue())


def seed_models(store: KasalStore) -> int | None:
    """Record the built-in models that are new or changed; the log position, or None if nothing was."""
    return seed_catalogue(store, ModelConfig, model_catalogue())


def seed_catalogue(store: KasalStore, cls: type[Document], catalogue: dict[UUID, dict[str, Any]]) -> int | None:
    """Record the entries of ``catalogue`` (id → fields) that are missing or differ."""
    def attempt() -> int | None:
        pending: list[Document] = []
        for document_id, fields in catalogue.items():
            existing = store.find(document_id)
            if existing is None:
                pending.append(cls.new(BUILTIN_GROUP, fields, id=document_id))
            elif isinstance(existing, cls) and not existing.deleted:
                version = existing.version
                existing.replace(fields)
                if existing.version != version:
                    pending.append(existing)
        return store.record(*pending) if pending else None

    # All new entries are saved together, so a concurrent seeder's win is a clean
    # version conflict: the retry re-reads and finds everything already there.
    with acting_as(SEED_ACTOR):
        return retry_on_conflict(attempt)
