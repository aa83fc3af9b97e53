"""Models through HTTP on PostgreSQL: the seeded catalogue, per-group tuning, and admin-only writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from domain.context import Actor
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire

pytestmark = pytest.mark.anyio

CONTRACT_MODEL = {
    "name": "custom-gpt-4",
    "provider": "openai",
    "model": "gpt-4",
    "api_key_name": "openai_api_key",
    "parameters": {"temperature": 0.7, "max_tokens": 2000},
}
A = {"X-Group-Id": "group-a"}
B = {"X-Group-Id": "group-b"}


class FakeAuthenticator:
    """Everyone is the given role in group ``local``."""

    def __init__(self, role: str) -> None:
        self.role = role

    async def authenticate(self, headers: Mapping[str, str], correlation_id: str) -> Actor:
        return Actor(group_id="local", actor=f"test-{self.role}", role=self.role, correlation_id=correlation_id)


@asynccontextmanager
async def running(settings: Settings, **parts: Any) -> AsyncIterator[Any]:
    async with AsyncTestClient(app=create_app(wire(settings, **parts))) as client:
        yield client


async def models_by_key(
    client: Any, headers: dict[str, str] | None = None, path: str = "/api/v1/models"
) -> dict[str, Any]:
    response = await client.get(path, headers=headers or {})
    assert response.status_code == 200, response.text
    return {model["key"]: model for model in response.json()["items"]}


async def test_every_group_sees_the_seeded_catalogue_across_providers(client) -> None:
    for headers in ({}, A):
        models = await models_by_key(client, headers)
        assert 20 <= len(models) <= 40
        assert {"openai", "anthropic", "deepseek", "ollama", "databricks", "gemini", "offline"} == {
            m["provider"] for m in models.values()
        }
        assert all(m["group_id"] is None and m["builtin"] for m in models.values())
    echo = models["offline/echo"]
    assert echo["enabled"] is True and echo["litellm_model"] == "offline/echo" and "offline/slow" in models


async def test_a_model_key_with_a_slash_is_addressable(client) -> None:
    response = await client.get("/api/v1/models/offline/echo")
    assert response.status_code == 200, response.text
    assert response.json()["key"] == "offline/echo" and response.json()["provider"] == "offline"


async def test_the_contract_body_creates_a_model_keyed_by_its_name(client) -> None:
    response = await client.post("/api/v1/models", json=CONTRACT_MODEL)
    assert response.status_code == 201, response.text
    model = response.json()
    assert response.headers["location"] == "/api/v1/models/custom-gpt-4"
    assert model["key"] == "custom-gpt-4" and model["model"] == model["name"] == "gpt-4"
    assert model["provider"] == "openai" and model["litellm_model"] == "gpt-4"
    assert model["api_key_name"] == "openai_api_key" and model["parameters"] == CONTRACT_MODEL["parameters"]
    assert model["temperature"] == 0.7 and model["max_output_tokens"] == 2000
    assert model["group_id"] == "local" and model["enabled"] is True
    fetched = await client.get("/api/v1/models/custom-gpt-4")
    assert fetched.status_code == 200 and fetched.json()["id"] == model["id"]


async def test_kasals_shape_with_key_and_name_is_accepted(client) -> None:
    body = {"key": "my-claude", "name": "claude-3-5-haiku-20241022", "provider": "anthropic",
            "temperature": 0.2, "context_window": 200000, "max_output_tokens": 8192}
    response = await client.post("/api/v1/models/", json=body)
    assert response.status_code == 201, response.text
    model = response.json()
    assert model["key"] == "my-claude" and model["name"] == "claude-3-5-haiku-20241022"
    assert model["litellm_model"] == "anthropic/claude-3-5-haiku-20241022"
    assert model["api_key_name"] == "ANTHROPIC_API_KEY"


async def test_an_unknown_provider_is_422(client) -> None:
    response = await client.post("/api/v1/models", json={**CONTRACT_MODEL, "provider": "acme-llm"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "provider"


async def test_an_out_of_range_temperature_is_422(client) -> None:
    response = await client.post("/api/v1/models", json={**CONTRACT_MODEL, "temperature": 7})
    assert response.status_code == 422


async def test_a_duplicate_or_built_in_key_is_409(client) -> None:
    assert (await client.post("/api/v1/models", json=CONTRACT_MODEL)).status_code == 201
    assert (await client.post("/api/v1/models", json=CONTRACT_MODEL)).status_code == 409
    assert (await client.post("/api/v1/models", json={**CONTRACT_MODEL, "name": "gpt-4o"})).status_code == 409


async def test_the_offline_model_cannot_be_disabled(client) -> None:
    toggled = await client.patch("/api/v1/models/offline/echo/toggle")
    assert toggled.status_code == 409
    assert "cannot be disabled" in toggled.json()["detail"]
    explicit = await client.patch("/api/v1/models/offline/slow/toggle", json={"enabled": False})
    assert explicit.status_code == 409
    assert (await client.put("/api/v1/models/offline/echo", json={"enabled": False})).status_code == 409
    assert (await client.get("/api/v1/models/offline/echo")).json()["enabled"] is True


async def test_the_offline_model_cannot_be_deleted(client) -> None:
    response = await client.delete("/api/v1/models/offline/echo")
    assert response.status_code == 409
    assert "cannot be deleted" in response.json()["detail"]
    assert (await client.get("/api/v1/models/offline/echo")).status_code == 200


async def test_toggling_a_built_in_model_changes_only_the_callers_group(client) -> None:
    response = await client.patch("/api/v1/models/gpt-4o/toggle", json={"enabled": False}, headers=A)
    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False
    assert "gpt-4o" not in await models_by_key(client, A, "/api/v1/models/enabled")
    assert (await models_by_key(client, B))["gpt-4o"]["enabled"] is True
    flipped = await client.patch("/api/v1/models/gpt-4o/toggle", headers=A)
    assert flipped.json()["enabled"] is True


async def test_tuning_a_built_in_model_is_per_group_and_its_identity_is_fixed(client) -> None:
    response = await client.put("/api/v1/models/gpt-4", json={"temperature": 0.1, "provider": "openai"}, headers=A)
    assert response.status_code == 200, response.text
    assert response.json()["temperature"] == 0.1
    assert (await models_by_key(client, B))["gpt-4"]["temperature"] == 0.7
    moved = await client.put("/api/v1/models/gpt-4", json={"provider": "anthropic"}, headers=A)
    assert moved.status_code == 409


async def test_a_built_in_model_cannot_be_deleted(client) -> None:
    assert (await client.delete("/api/v1/models/gpt-4")).status_code == 409


async def test_a_custom_model_can_be_updated_renamed_and_deleted(client) -> None:
    await client.post("/api/v1/models", json=CONTRACT_MODEL)
    updated = await client.put("/api/v1/models/custom-gpt-4", json={"key": "team-gpt", "model": "gpt-4o"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["key"] == "team-gpt" and updated.json()["name"] == "gpt-4o"
    assert (await client.get("/api/v1/models/custom-gpt-4")).status_code == 404
    assert (await client.delete("/api/v1/models/team-gpt")).status_code == 204
    assert (await client.get("/api/v1/models/team-gpt")).status_code == 404


async def test_another_groups_model_is_invisible(client) -> None:
    await client.post("/api/v1/models", json=CONTRACT_MODEL, headers=A)
    assert (await client.get("/api/v1/models/custom-gpt-4", headers=B)).status_code == 404
    assert (await client.delete("/api/v1/models/custom-gpt-4", headers=B)).status_code == 404
    assert "custom-gpt-4" not in await models_by_key(client, B)


async def test_an_unknown_model_is_404(client) -> None:
    assert (await client.get("/api/v1/models/no-such-model")).status_code == 404
    assert (await client.patch("/api/v1/models/no-such-model/toggle")).status_code == 404


async def test_an_operator_can_read_models_but_not_write_them(settings) -> None:
    async with running(settings, authenticator=FakeAuthenticator("operator")) as client:
        assert (await client.get("/api/v1/models")).status_code == 200
        assert (await client.post("/api/v1/models", json=CONTRACT_MODEL)).status_code == 403
        assert (await client.patch("/api/v1/models/gpt-4/toggle")).status_code == 403
        assert (await client.delete("/api/v1/models/gpt-4")).status_code == 403


async def test_an_editor_cannot_write_models_either(settings) -> None:
    async with running(settings, authenticator=FakeAuthenticator("editor")) as client:
        assert (await client.put("/api/v1/models/gpt-4", json={"temperature": 0.2})).status_code == 403


async def test_a_restart_keeps_an_admins_changes_and_records_nothing_new(settings) -> None:
    async with running(settings) as first:
        await first.put("/api/v1/models/gpt-4", json={"temperature": 0.1, "enabled": False})
        await first.post("/api/v1/models", json=CONTRACT_MODEL)
        before = await models_by_key(first)
        position = first.app.state.kasal.store.max_position()
    async with running(settings) as second:
        after = await models_by_key(second)
        assert second.app.state.kasal.store.max_position() == position
    assert after == before
    assert after["gpt-4"]["temperature"] == 0.1 and after["gpt-4"]["enabled"] is False


async def test_other_features_can_resolve_the_models_a_group_may_run(client) -> None:
    await client.patch("/api/v1/models/gpt-4o/toggle", json={"enabled": False}, headers=A)
    await client.post("/api/v1/models", json={**CONTRACT_MODEL, "api_key_name": "OPENAI_API_KEY"}, headers=A)
    models = client.app.state.kasal.views.models
    names = await models.model_names("group-a")
    assert {"offline/echo", "custom-gpt-4", "claude-sonnet-4", "anthropic/claude-sonnet-4-20250514"} <= names
    assert "gpt-4o" not in names and "gpt-4o" in await models.model_names("group-b")
    resolved = await models.resolve_model("group-a", "custom-gpt-4")
    assert resolved is not None and resolved["litellm_model"] == "gpt-4"
    assert resolved["provider"] == "openai" and resolved["api_key_name"] == "OPENAI_API_KEY"
    disabled = await models.resolve_model("group-a", "gpt-4o")
    assert disabled is not None and disabled["enabled"] is False
    assert (await models.resolve_model("group-a", "ollama/llama3.2:latest"))["key"] == "llama3.2:latest"
    assert await models.resolve_model("group-a", "no-such-model") is None
