"""All configuration, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# CrewAI and LiteLLM reach for the network (telemetry, version checks, cost
# maps) unless told not to; with no network each attempt waits on a timeout.
QUIET_LIBRARIES = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}

AUTH_MODES = ("local", "token", "databricks")


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on", "y"}


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    home: Path = Path(".kasal")
    host: str = "127.0.0.1"
    port: int = 8000
    auth_mode: str = "local"
    docs_enabled: bool = True
    secret_key: str | None = None
    read_your_writes_timeout: float = 5.0
    max_body_bytes: int = 2 * 1024 * 1024
    max_concurrent_executions: int = 2
    reject_when_busy: bool = False
    execution_timeout: float = 3600.0
    run_workers: bool = True
    run_scheduler: bool = True
    default_model: str = "offline/echo"
    log_level: str = "INFO"
    pool_size: int = 10
    web_concurrency: int = 1
    """API processes ``kasal serve`` runs on one address (each with its share of ``pool_size``)."""
    mcp_stdio_commands: tuple[str, ...] = ()
    """Programs a group's MCPTool may start as a stdio server (anything else could run code here)."""
    tools_allow_private_urls: bool = False
    """Let web tools fetch loopback and private addresses (off: they refuse, against SSRF)."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the API (``*``: any); none: no CORS headers at all."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("KASAL_DATABASE_URL") or None,
            home=Path(env.get("KASAL_HOME", ".kasal")),
            host=env.get("KASAL_HOST", "127.0.0.1"),
            port=int(env.get("KASAL_PORT", "8000")),
            auth_mode=env.get("KASAL_AUTH_MODE", "local"),
            docs_enabled=_bool(env.get("DOCS_ENABLED"), True),
            secret_key=env.get("KASAL_SECRET_KEY") or None,
            read_your_writes_timeout=float(env.get("KASAL_READ_YOUR_WRITES_TIMEOUT", "5")),
            max_body_bytes=int(env.get("KASAL_MAX_BODY_BYTES", str(2 * 1024 * 1024))),
            max_concurrent_executions=int(env.get("KASAL_MAX_CONCURRENT_EXECUTIONS", "2")),
            reject_when_busy=_bool(env.get("KASAL_REJECT_WHEN_BUSY"), False),
            execution_timeout=float(env.get("KASAL_EXECUTION_TIMEOUT", "3600")),
            run_workers=_bool(env.get("KASAL_RUN_WORKERS"), True),
            run_scheduler=_bool(env.get("KASAL_RUN_SCHEDULER"), True),
            default_model=env.get("KASAL_DEFAULT_MODEL", "offline/echo"),
            log_level=env.get("KASAL_LOG_LEVEL", "INFO"),
            pool_size=int(env.get("KASAL_POOL_SIZE", "10")),
            web_concurrency=int(env.get("KASAL_WEB_CONCURRENCY", "1")),
            mcp_stdio_commands=tuple(c.strip() for c in env.get("KASAL_MCP_STDIO_COMMANDS", "").split(",")
                                     if c.strip()),
            tools_allow_private_urls=_bool(env.get("KASAL_TOOLS_ALLOW_PRIVATE_URLS"), False),
            cors_origins=tuple(o.strip() for o in env.get("KASAL_CORS_ORIGINS", "").split(",") if o.strip()),
        )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def quiet_libraries() -> None:
    """Apply QUIET_LIBRARIES before crewai or litellm are imported (user values win)."""
    for key, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(key, value)
