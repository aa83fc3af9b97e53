"""API keys through HTTP on PostgreSQL: stored encrypted, never shown, handed to executions.

The leak test scans everything the service persists (the event log and every
read-model table, as text and as hex so byte columns count) and everything it
logged, for a known secret.
"""

from __future__ import annotations

import logging

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from application.api_keys import ApiKeyDecryptionError
from interface.app import create_app
from interface.wiring import wire

pytestmark = pytest.mark.anyio

SECRET = "sk-test-SECRET-1234567890abcdef"
NEW_SECRET = "sk-test-ROTATED-0987654321fedcba"
CONTRACT_KEY = {"name": "OpenAI API Key", "service": "openai", "key": "sk-..."}
CONTRACT_UPDATE = {"name": "Updated OpenAI Key", "key": "sk-new-key..."}


async def _credentials(client, group: str = "local") -> dict[str, str]:
    return await client.app.state.kasal.services.credentials.credentials(group)


async def _everything_persisted(database_url: str) -> str:
    """Every row of every table, as text (byte columns come out as hex)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        tables = [row[0] for row in await cur.fetchall()]
        assert "kasal_events" in tables and "rm_api_keys" in tables
        dumps = []
        for table in tables:
            cur = await conn.execute(f'SELECT t::text FROM "{table}" t')
            dumps.extend(row[0] for row in await cur.fetchall())
    return "\n".join(dumps)


def _leaks(text: str, secret: str) -> bool:
    return secret in text or secret.encode().hex() in text


async def test_creating_the_contract_key_answers_201_without_the_secret(client) -> None:
    response = await client.post("/api/v1/api-keys", json=CONTRACT_KEY)
    assert response.status_code == 201, response.text
    key = response.json()
    assert response.headers["location"] == f"/api/v1/api-keys/{key['id']}"
    assert key["name"] == "OpenAI API Key" and key["service"] == "openai"
    assert key["value"] == "Set" and key["version"] == 1
    assert "sk-..." not in response.text


async def test_contract_update_renames_and_replaces_the_key(client) -> None:
    created = (await client.post("/api/v1/api-keys", json=CONTRACT_KEY)).json()
    response = await client.put(f"/api/v1/api-keys/{created['id']}", json=CONTRACT_UPDATE)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Updated OpenAI Key" and "sk-new-key" not in response.text
    assert await _credentials(client) == {"Updated OpenAI Key": "sk-new-key...", "openai": "sk-new-key..."}


async def test_a_secret_is_nowhere_in_the_database_the_logs_or_the_answers(
    client, settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"name": "OPENAI_API_KEY", "key": SECRET, "description": "team key"}
    created = await client.post("/api/v1/api-keys", json=body)
    key_id = created.json()["id"]
    answers = [
        created,
        await client.get("/api/v1/api-keys"),
        await client.get(f"/api/v1/api-keys/{key_id}"),
        await client.put(f"/api/v1/api-keys/{key_id}", json={"description": "still the team key"}),
    ]
    persisted = await _everything_persisted(settings.database_url)
    assert "OPENAI_API_KEY" in persisted  # the scan does see what the events hold
    assert not _leaks(persisted, SECRET)
    for name in ("kasal.api_keys", "kasal.http", "kasal.store"):
        logging.getLogger(name).debug("capture canary")  # the capture does see these loggers
    assert caplog.text.count("capture canary") == 3
    assert not _leaks(caplog.text, SECRET)
    for answer in answers:
        assert answer.status_code in (200, 201) and SECRET not in answer.text
    assert created.json()["hint"] == "\u2026cdef" and created.json()["value"] == "Set"
    assert await _credentials(client) == {"OPENAI_API_KEY": SECRET, "openai": SECRET}


async def test_updating_the_key_re_encrypts_it(client, settings) -> None:
    created = (await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "key": SECRET})).json()
    before = await _everything_persisted(settings.database_url)
    updated = await client.put(f"/api/v1/api-keys/{created['id']}", json={"key": NEW_SECRET})
    assert updated.status_code == 200 and updated.json()["hint"] == "\u2026dcba"
    after = await _everything_persisted(settings.database_url)
    assert not _leaks(after, NEW_SECRET) and not _leaks(after, SECRET)
    assert len(after) > len(before)  # a new ciphertext was recorded
    assert await _credentials(client) == {"OPENAI_API_KEY": NEW_SECRET, "openai": NEW_SECRET}


async def test_kasal_clients_may_send_the_secret_as_value(client) -> None:
    response = await client.post("/api/v1/api-keys", json={"name": "ANTHROPIC_API_KEY", "value": SECRET})
    assert response.status_code == 201 and response.json()["service"] == "anthropic"
    assert (await _credentials(client))["anthropic"] == SECRET


async def test_an_empty_key_is_listed_as_not_set_and_not_handed_out(client) -> None:
    await client.post("/api/v1/api-keys", json={"name": "SERPER_API_KEY", "value": ""})
    listing = (await client.get("/api/v1/api-keys")).json()
    assert [(k["name"], k["value"], k["hint"]) for k in listing["items"]] == [("SERPER_API_KEY", "Not set", "")]
    assert await _credentials(client) == {}


async def test_a_key_without_a_secret_or_name_is_422_without_echoing_the_body(client) -> None:
    missing_key = await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY"})
    missing_name = await client.post("/api/v1/api-keys", json={"key": SECRET})
    assert missing_key.status_code == 422 and missing_key.json()["errors"][0]["field"] == "key"
    assert missing_name.status_code == 422 and SECRET not in missing_name.text


async def test_duplicate_names_in_a_group_are_409_but_other_groups_may_reuse_them(client) -> None:
    assert (await client.post("/api/v1/api-keys", json=CONTRACT_KEY)).status_code == 201
    assert (await client.post("/api/v1/api-keys", json={**CONTRACT_KEY, "name": "openai api key"})).status_code == 409
    other = await client.post("/api/v1/api-keys", json=CONTRACT_KEY, headers={"X-Group-Id": "other"})
    assert other.status_code == 201


async def test_another_groups_key_is_404_and_its_credentials_stay_with_it(client) -> None:
    created = (await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "key": SECRET})).json()
    other = {"X-Group-Id": "other"}
    assert (await client.get(f"/api/v1/api-keys/{created['id']}", headers=other)).status_code == 404
    assert (await client.put(f"/api/v1/api-keys/{created['id']}", json={"key": "x"}, headers=other)).status_code == 404
    assert (await client.get("/api/v1/api-keys", headers=other)).json()["total"] == 0
    assert await _credentials(client, "other") == {}


async def test_deleted_key_is_gone_and_its_name_is_free(client) -> None:
    created = (await client.post("/api/v1/api-keys", json=CONTRACT_KEY)).json()
    assert (await client.delete(f"/api/v1/api-keys/{created['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/api-keys/{created['id']}")).status_code == 404
    assert await _credentials(client) == {}
    assert (await client.post("/api/v1/api-keys", json=CONTRACT_KEY)).status_code == 201


async def test_a_key_name_wins_over_another_keys_service(client) -> None:
    await client.post("/api/v1/api-keys", json={"name": "openai", "service": "custom", "key": "sk-by-name-0001"})
    await client.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "key": "sk-by-service-0002"})
    credentials = await _credentials(client)
    assert credentials["openai"] == "sk-by-name-0001" and credentials["OPENAI_API_KEY"] == "sk-by-service-0002"


async def test_a_key_is_handed_over_under_its_name_and_its_service(client) -> None:
    await client.post("/api/v1/api-keys", json={"name": "DATABRICKS_TOKEN", "key": SECRET})
    assert await _credentials(client) == {
        "DATABRICKS_TOKEN": SECRET, "databricks": SECRET,
    }


async def test_keys_stored_under_another_encryption_key_fail_loudly_naming_the_key(settings) -> None:
    async with AsyncTestClient(app=create_app(wire(settings))) as first:
        await first.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "key": SECRET})
    changed = settings.with_(secret_key="a-different-secret-key-entirely")
    async with AsyncTestClient(app=create_app(wire(changed))) as second:
        listing = (await second.get("/api/v1/api-keys")).json()
        assert listing["items"][0]["value"] == "Set"
        with pytest.raises(ApiKeyDecryptionError, match="OPENAI_API_KEY"):
            await _credentials(second)


class _Collected(logging.Handler):
    """Keeps messages of one logger (the app's logging set-up replaces caplog's root handler)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def test_local_mode_without_a_secret_key_generates_a_key_file_and_says_so(settings) -> None:
    logger, collected = logging.getLogger("kasal.api_keys"), _Collected()
    logger.addHandler(collected)
    local = settings.with_(secret_key=None)
    try:
        async with AsyncTestClient(app=create_app(wire(local))) as first:
            await first.post("/api/v1/api-keys", json={"name": "OPENAI_API_KEY", "key": SECRET})
    finally:
        logger.removeHandler(collected)
    assert (local.home / "secret.key").exists()
    assert collected.messages == [f"API keys: generated a new local encryption key file {local.home / 'secret.key'}"]
    async with AsyncTestClient(app=create_app(wire(local))) as second:
        assert await _credentials(second) == {"OPENAI_API_KEY": SECRET, "openai": SECRET}
