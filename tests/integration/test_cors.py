"""CORS (``KASAL_CORS_ORIGINS``): off by default; when on, browsers on the listed origins may call
the API with the headers it uses and read the headers it answers, and preflights need no credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire
from tests.integration.test_identity import AGENT, bearer, issue

pytestmark = pytest.mark.anyio

APP_ORIGIN = "https://dashboard.example.com"
OTHER_ORIGIN = "https://evil.example.net"
REQUEST_HEADERS = ("authorization", "content-type", "if-match", "idempotency-key", "x-request-id", "x-group-id",
                   "x-kasal-min-position")
EXPOSED = {"etag", "location", "x-request-id", "x-kasal-position", "x-kasal-stale"}
def preflight(origin: str, method: str = "POST", headers: str = ", ".join(REQUEST_HEADERS)) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


def listed(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


def cors_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """Token mode, so a preflight that needed credentials would show as a 401."""
    configured = settings.with_(auth_mode="token", cors_origins=(APP_ORIGIN, "http://localhost:3000"))
    async with AsyncTestClient(app=create_app(wire(configured))) as client:
        yield client


def test_the_setting_is_a_comma_separated_list_and_empty_by_default() -> None:
    assert Settings.from_env({}).cors_origins == ()
    parsed = Settings.from_env({"KASAL_CORS_ORIGINS": f" {APP_ORIGIN} ,http://localhost:3000,, "})
    assert parsed.cors_origins == (APP_ORIGIN, "http://localhost:3000")
    assert Settings.from_env({"KASAL_CORS_ORIGINS": "*"}).cors_origins == ("*",)


async def test_without_the_setting_no_answer_carries_cors_headers(client) -> None:
    asked = await client.options("/api/v1/agents", headers=preflight(APP_ORIGIN))
    assert cors_headers(asked) == {}
    read = await client.get("/api/v1/agents", headers={"Origin": APP_ORIGIN})
    assert read.status_code == 200 and cors_headers(read) == {}


async def test_a_preflight_from_an_allowed_origin_is_answered_without_credentials(cors_client) -> None:
    for path in ("/api/v1/agents", "/api/v1/agents/00000000-0000-0000-0000-000000000000"):
        asked = await cors_client.options(path, headers=preflight("http://localhost:3000", "PUT"))
        assert asked.status_code == 204, (path, asked.text)
        assert asked.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert {"get", "post", "put", "patch", "delete"} <= listed(asked.headers["access-control-allow-methods"])
        assert set(REQUEST_HEADERS) <= listed(asked.headers["access-control-allow-headers"])
        assert "origin" in listed(asked.headers.get("vary"))


async def test_a_preflight_from_another_origin_or_for_another_header_is_not_allowed(cors_client) -> None:
    foreign = await cors_client.options("/api/v1/agents", headers=preflight(OTHER_ORIGIN))
    assert "access-control-allow-origin" not in foreign.headers
    unknown_header = await cors_client.options("/api/v1/agents", headers=preflight(APP_ORIGIN, headers="x-secret"))
    assert unknown_header.status_code == 400
    assert "access-control-allow-origin" not in unknown_header.headers


async def test_answers_to_an_allowed_origin_let_the_page_read_them_and_their_headers(cors_client) -> None:
    token = await issue(cors_client, "team", "editor")
    created = await cors_client.post("/api/v1/agents", json=AGENT, headers=bearer(token, Origin=APP_ORIGIN))
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == APP_ORIGIN
    assert listed(created.headers["access-control-expose-headers"]) >= EXPOSED
    assert {"etag", "location", "x-request-id", "x-kasal-position"} <= {k.lower() for k in created.headers}
    read = await cors_client.get(created.headers["location"], headers=bearer(token, Origin=APP_ORIGIN))
    assert read.status_code == 200 and read.headers["access-control-allow-origin"] == APP_ORIGIN
    # A refusal reaches the page too, so it can tell the user to sign in.
    refused = await cors_client.get("/api/v1/agents", headers={"Origin": APP_ORIGIN})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == APP_ORIGIN
    foreign = await cors_client.get("/api/v1/agents", headers=bearer(token, Origin=OTHER_ORIGIN))
    assert foreign.status_code == 200 and "access-control-allow-origin" not in foreign.headers


async def test_a_wildcard_allows_every_origin(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings.with_(cors_origins=("*",))))) as client:
        asked = await client.options("/api/v1/executions", headers=preflight(OTHER_ORIGIN))
        assert asked.status_code == 204 and asked.headers["access-control-allow-origin"] == "*"
        read = await client.get("/api/v1/executions", headers={"Origin": OTHER_ORIGIN})
        assert read.status_code == 200 and read.headers["access-control-allow-origin"] == "*"
        assert listed(read.headers["access-control-expose-headers"]) >= EXPOSED
