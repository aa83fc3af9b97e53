"""The HTTP app: ``create_app(kasal)`` serves a service built by ``interface.wiring.wire``.

Every route handler is listed here, once. Handlers receive the ``Kasal``
object by Litestar dependency injection (a parameter named ``kasal``); the
app's lifespan starts and stops it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import Method

from interface.http.agents import AgentController
from interface.http.api_keys import ApiKeyController
from interface.http.compare import CompareController
from interface.http.crews import CrewController
from interface.http.docs import ApiDocs
from interface.http.errors import EXCEPTION_HANDLERS
from interface.http.events import EventController
from interface.http.execution_history import ExecutionHistoryController
from interface.http.execution_logs import (
    ExecutionLogController,
    kasal_logs,
    kasal_outputs,
    kasal_sse,
    log_stream,
    log_stream_sse,
)
from interface.http.execution_trace import ExecutionTraceController, kasal_traces
from interface.http.executions import ExecutionController
from interface.http.generation import GenerationController
from interface.http.health import health
from interface.http.idempotency import idempotent_writes
from interface.http.input_rules import refuse_unsafe_input
from interface.http.middleware import request_context, role_guard
from interface.http.models import ModelController
from interface.http.run_names import generate_name
from interface.http.schedules import ScheduleAliasController, SchedulerController
from interface.http.tasks import TaskController
from interface.http.templates import TemplateController
from interface.http.tokens import TokenController
from interface.http.tools import ToolController
from interface.http.usage import UsageController
from interface.http.versions import VERSION_CONTROLLERS
from interface.settings import quiet_libraries
from interface.wiring import Kasal

ROUTE_HANDLERS: list[Any] = [
    health,
    AgentController,
    ApiKeyController,
    TemplateController,
    TaskController,
    CrewController,
    TokenController,
    ToolController,
    ModelController,
    ExecutionController,
    generate_name,
    ExecutionHistoryController,
    CompareController,
    ExecutionLogController,
    log_stream,
    log_stream_sse,
    kasal_sse,
    kasal_logs,
    kasal_outputs,
    ExecutionTraceController,
    kasal_traces,
    SchedulerController,
    ScheduleAliasController,
    GenerationController,
    EventController,
    UsageController,
    *VERSION_CONTROLLERS,
]


# What a browser page on another origin may send and read (``KASAL_CORS_ORIGINS``).
CORS_METHODS: list[Literal["*"] | Method] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID",
                        "X-Group-Id", "X-Kasal-Min-Position"]
CORS_RESPONSE_HEADERS = ["ETag", "Location", "X-Request-ID", "X-Kasal-Position", "X-Kasal-Stale",
                         "Idempotent-Replayed"]


def cors_config(origins: Sequence[str]) -> CORSConfig | None:
    """CORS for ``origins`` (``*``: any), or none at all. Litestar answers a preflight before
    any route middleware runs, so a preflight needs no credentials in any auth mode."""
    if not origins:
        return None
    return CORSConfig(allow_origins=list(origins), allow_methods=CORS_METHODS,
                      allow_headers=CORS_REQUEST_HEADERS, expose_headers=CORS_RESPONSE_HEADERS)


def create_app(kasal: Kasal, *, route_handlers: Sequence[Any] = ROUTE_HANDLERS) -> Litestar:
    """The Litestar app over ``kasal`` (its lifespan runs ``kasal.start()``/``stop()``)."""
    quiet_libraries()
    settings = kasal.settings

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with kasal.running():
            yield

    docs = ApiDocs(settings.auth_mode)
    openapi = OpenAPIConfig(
        title="Kasal-ES API",
        version="1.0.0",
        description="Event-sourced implementation of the Kasal REST API.",
        path="/api-docs",
        use_handler_docstrings=True,
        render_plugins=docs.render_plugins(),
    ) if settings.docs_enabled else None

    app = Litestar(
        route_handlers=[*route_handlers, *(docs.handlers() if openapi else [])],
        dependencies={"kasal": Provide(lambda: kasal, use_cache=True, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_context(kasal.authenticator, kasal.projector, settings.read_your_writes_timeout),
                    idempotent_writes(kasal)],
        guards=[role_guard],
        lifespan=[lifespan],
        openapi_config=openapi,
        cors_config=cors_config(settings.cors_origins),
        request_max_body_size=settings.max_body_bytes,
        before_request=refuse_unsafe_input,
        debug=False,
    )
    app.state.kasal = kasal
    return app
