"""The composition root (STYLE 7): ``create_app(settings)`` builds the whole service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
import msgspec
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from application.store import KasalStore, postgres_env
from interface.core import Core, Feature
from interface.features import FEATURES
from interface.http.auth import Authenticator, LocalAuthenticator
from interface.http.errors import EXCEPTION_HANDLERS
from interface.http.docs import docs_handlers
from interface.http.health import health
from interface.http.input_rules import refuse_nul_characters
from interface.http.middleware import request_context_middleware, role_guard
from interface.settings import Settings, quiet_libraries
from projections.engine import Projector

log = logging.getLogger("kasal")


def build_core(settings: Settings, *, features: list[type[Feature]] | None = None) -> Core:
    """Everything but the HTTP layer; also used by the CLI and the worker."""
    if not settings.database_url:
        raise ValueError("settings.database_url is required (the CLI starts an embedded PostgreSQL)")
    url = settings.database_url
    # Read models hold JSON documents: msgspec decodes them several times faster.
    set_json_loads(msgspec.json.decode)
    store = KasalStore(postgres_env(url, pool_size=settings.pool_size))
    pool = AsyncConnectionPool(url, open=False, min_size=2, max_size=settings.pool_size)
    core = Core(settings=settings, store=store, pool=pool, projector=None, database_url=url)  # type: ignore[arg-type]
    for feature_cls in features or FEATURES:
        core.features[feature_cls] = feature_cls(core)
    projections = [p for f in core.features.values() for p in f.projections()]
    core.projector = Projector(url, store, projections)
    store.on_saved(core.projector.wake)
    return core


def create_app(
    settings: Settings,
    overrides: dict[str, Any] | None = None,
) -> Litestar:
    """Build the Litestar app; ``overrides`` replaces named collaborators (tests).

    Recognised overrides: ``authenticator`` (an ``Authenticator``), ``features``
    (the feature classes to install), ``core_hook`` (called with the built core).
    """
    overrides = overrides or {}
    quiet_libraries()
    core = build_core(settings, features=overrides.get("features"))
    authenticator: Authenticator = overrides.get("authenticator") or default_authenticator(settings, core)
    core.services["authenticator"] = authenticator
    hook: Callable[[Core], None] | None = overrides.get("core_hook")
    if hook is not None:
        hook(core)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with core.running():
            yield

    handlers: list[Any] = [health]
    for feature in core.features.values():
        handlers.extend(feature.route_handlers())

    openapi = OpenAPIConfig(
        title="Kasal-ES API",
        version="1.0.0",
        description="Event-sourced implementation of the Kasal REST API.",
        path="/api-docs",
        use_handler_docstrings=True,
        render_plugins=[SwaggerRenderPlugin(path="/")],
    ) if settings.docs_enabled else None

    app = Litestar(
        route_handlers=handlers + (docs_handlers() if openapi else []),
        dependencies={"core": Provide(lambda: core, use_cache=True, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_context_middleware],
        guards=[role_guard],
        lifespan=[lifespan],
        openapi_config=openapi,
        request_max_body_size=settings.max_body_bytes,
        before_request=refuse_nul_characters,
        debug=False,
    )
    app.state.kasal = core
    core.authenticator = authenticator  # type: ignore[attr-defined]
    return app


def default_authenticator(settings: Settings, core: Core) -> Authenticator:
    """``settings.auth_mode``: local (default), token, or databricks (DESIGN §6)."""
    from interface.http.auth import DatabricksAuthenticator, TokenAuthenticator
    from interface.http.tokens import TokensFeature

    if settings.auth_mode == "local":
        return LocalAuthenticator()
    tokens = TokenAuthenticator(core.get(TokensFeature).lookup)
    if settings.auth_mode == "token":
        return tokens
    if settings.auth_mode == "databricks":
        return DatabricksAuthenticator(tokens)
    raise ValueError(f"unknown auth mode {settings.auth_mode!r}; use local, token or databricks")
