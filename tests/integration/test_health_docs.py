"""``/health`` and the API documentation."""

from __future__ import annotations

import time

import anyio
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg.conninfo import conninfo_to_dict

from interface.app import create_app
from interface.wiring import wire

pytestmark = pytest.mark.anyio

DOCS = ("/api-docs", "/api-redoc", "/api-openapi.json")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


async def test_a_running_service_is_healthy(client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert (await client.get("/health", params={"deep": "true"})).status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["projections"]["status"] == "ok"


async def test_health_is_503_naming_the_database_when_it_is_gone(settings, databases) -> None:
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        assert (await client.get("/health")).status_code == 200
        name = conninfo_to_dict(settings.database_url)["dbname"]
        with psycopg.connect(databases.server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

        deep = await client.get("/health", params={"deep": "true"})
        deadline = time.monotonic() + 5  # the background check runs every second
        while (response := await client.get("/health")).status_code == 200 and time.monotonic() < deadline:
            await anyio.sleep(0.05)

    assert deep.status_code == 503 and deep.json()["checks"]["database"]["status"] == "failing"
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "failing"
    assert body["checked_s_ago"] < 2


@pytest.mark.parametrize("path", DOCS)
async def test_the_documentation_is_served(client, path) -> None:
    assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize("path", DOCS)
async def test_documentation_can_be_turned_off(settings, path) -> None:
    async with AsyncTestClient(app=create_app(wire(settings.with_(docs_enabled=False)))) as client:
        assert (await client.get(path)).status_code == 404


async def test_every_documented_operation_has_a_summary(client) -> None:
    spec = (await client.get("/api-openapi.json")).json()
    operations = [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert any(path.startswith("/api/v1/tokens") for _, path, _ in operations)
    missing = [f"{method} {path}" for method, path, operation in operations if not operation.get("summary")]
    assert missing == []
