"""Identity and roles: local mode, service tokens, Databricks Apps headers."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from application.tokens import TokenService
from domain.context import Actor, acting_as
from interface.app import create_app
from interface.cli import serve
from interface.cli import tokens as tokens_command
from interface.identity import CachingTokenLookup, personal_group
from interface.settings import Settings
from interface.wiring import wire
from projections.access_tokens import TokenIdentity

pytestmark = pytest.mark.anyio

AGENT = {"role": "Researcher", "goal": "Find facts", "backstory": "Curious"}


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def issue(client: AsyncTestClient[Any], group: str, role: str) -> str:
    """A token made the way ``kasal tokens create`` makes it, visible to the app."""
    core = client.app.state.kasal
    with acting_as(Actor(group_id=group, actor="test", role="admin")):
        issued = await core.run(TokenService(core.store).issue, role, None)
    assert await core.run(core.projector.wait_sync, issued.position, 10)
    return issued.token


@pytest.fixture
async def token_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as client:
        yield client


@pytest.fixture
async def databricks_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="databricks")))) as client:
        yield client


# -- local mode ---------------------------------------------------------------


async def test_local_mode_needs_no_credentials_and_acts_as_local_admin(client) -> None:
    response = await client.post("/api/v1/agents", json=AGENT)
    assert response.status_code == 201
    assert response.json()["group_id"] == "local"
    assert response.json()["created_by"] == "local-admin"


def test_serve_refuses_local_mode_on_a_non_loopback_address() -> None:
    settings = Settings(host="0.0.0.0", auth_mode="local", database_url=None)
    assert serve(argparse.Namespace(host=None, port=None, workers=None), settings) == 2


# -- token mode ---------------------------------------------------------------


async def test_token_mode_without_credentials_is_401(token_client) -> None:
    response = await token_client.get("/api/v1/agents")
    assert response.status_code == 401
    assert response.json()["type"] == "unauthorized" and "Bearer" in response.json()["detail"]


async def test_an_unknown_token_is_401(token_client) -> None:
    response = await token_client.get("/api/v1/agents", headers=bearer("kasal_not-a-real-token"))
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked token"


async def test_health_and_docs_stay_public_in_token_mode(token_client) -> None:
    assert (await token_client.get("/health")).status_code == 200
    assert (await token_client.get("/api-openapi.json")).status_code == 200


async def test_a_token_acts_in_its_group_whatever_x_group_id_says(token_client) -> None:
    token = await issue(token_client, "team-a", "editor")
    created = await token_client.post("/api/v1/agents", json=AGENT, headers=bearer(token, **{"X-Group-Id": "team-b"}))
    assert created.status_code == 201
    assert created.json()["group_id"] == "team-a"
    assert created.json()["created_by"].startswith("token:")


async def test_operators_read_but_do_not_write(token_client) -> None:
    operator = await issue(token_client, "team", "operator")
    assert (await token_client.get("/api/v1/agents", headers=bearer(operator))).status_code == 200
    refused = await token_client.post("/api/v1/agents", json=AGENT, headers=bearer(operator))
    assert refused.status_code == 403
    assert refused.json()["type"] == "forbidden"


async def test_editors_write_agents_but_do_not_manage_tokens(token_client) -> None:
    editor = await issue(token_client, "team", "editor")
    assert (await token_client.post("/api/v1/agents", json=AGENT, headers=bearer(editor))).status_code == 201
    issued = await token_client.post("/api/v1/tokens", json={"role": "operator"}, headers=bearer(editor))
    assert issued.status_code == 403
    assert (await token_client.get("/api/v1/tokens", headers=bearer(editor))).status_code == 403


async def test_an_admin_creates_a_token_that_works_at_once_and_is_shown_only_then(token_client) -> None:
    admin = await issue(token_client, "team", "admin")
    response = await token_client.post(
        "/api/v1/tokens", json={"role": "operator", "name": "dashboard"}, headers=bearer(admin)
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["group_id"] == "team" and created["role"] == "operator" and created["name"] == "dashboard"
    assert created["token"].startswith(created["hint"])
    shown = (await token_client.get(response.headers["location"], headers=bearer(admin))).json()
    assert shown["id"] == created["id"] and "token" not in shown

    assert (await token_client.get("/api/v1/agents", headers=bearer(created["token"]))).status_code == 200
    listing = (await token_client.get("/api/v1/tokens", headers=bearer(admin))).json()
    listed = next(t for t in listing["items"] if t["id"] == created["id"])
    assert "token" not in listed and created["token"] not in str(listing)
    assert listing["total"] == 2


async def test_only_the_hash_of_a_token_is_recorded(token_client, database_url) -> None:
    admin = await issue(token_client, "team", "admin")
    created = (await token_client.post("/api/v1/tokens", json={"role": "editor"}, headers=bearer(admin))).json()
    with psycopg.connect(database_url) as conn:
        stored = b"".join(bytes(row[0]) for row in conn.execute("SELECT state FROM kasal_events"))
        table = str(conn.execute("SELECT * FROM rm_access_tokens").fetchall())
    for secret in (admin, created["token"]):
        assert secret.encode() not in stored and secret not in table


async def test_unknown_roles_are_422(token_client) -> None:
    admin = await issue(token_client, "team", "admin")
    response = await token_client.post("/api/v1/tokens", json={"role": "owner"}, headers=bearer(admin))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "role"]


async def test_a_revoked_token_is_refused_immediately(token_client) -> None:
    admin = await issue(token_client, "team", "admin")
    created = (await token_client.post("/api/v1/tokens", json={"role": "editor"}, headers=bearer(admin))).json()
    assert (await token_client.get("/api/v1/agents", headers=bearer(created["token"]))).status_code == 200

    revoked = await token_client.delete(f"/api/v1/tokens/{created['id']}", headers=bearer(admin))
    assert revoked.status_code == 204

    assert (await token_client.get("/api/v1/agents", headers=bearer(created["token"]))).status_code == 401
    again = await token_client.delete(f"/api/v1/tokens/{created['id']}", headers=bearer(admin))
    assert again.status_code == 404
    assert (await token_client.get(f"/api/v1/tokens/{created['id']}", headers=bearer(admin))).status_code == 404
    listing = (await token_client.get("/api/v1/tokens", headers=bearer(admin))).json()
    assert created["id"] not in [t["id"] for t in listing["items"]]


async def test_another_groups_token_cannot_be_seen_or_revoked(token_client) -> None:
    admin_a = await issue(token_client, "team-a", "admin")
    admin_b = await issue(token_client, "team-b", "admin")
    created = (await token_client.post("/api/v1/tokens", json={"role": "editor"}, headers=bearer(admin_a))).json()
    assert (await token_client.delete(f"/api/v1/tokens/{created['id']}", headers=bearer(admin_b))).status_code == 404
    assert (await token_client.get("/api/v1/tokens", headers=bearer(admin_b))).json()["total"] == 1
    assert (await token_client.get("/api/v1/agents", headers=bearer(created["token"]))).status_code == 200


async def test_a_cli_token_works_in_token_mode_until_the_cli_revokes_it(settings, capsys) -> None:
    create = argparse.Namespace(action="create", group="ops", role="operator", name="ci")
    assert tokens_command(create, settings) == 0
    printed = capsys.readouterr().out
    token = next(line.split()[-1] for line in printed.splitlines() if line.startswith("token:"))
    token_id = next(line.split()[-1] for line in printed.splitlines() if line.startswith("token id:"))

    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as client:
        listing = await client.get("/api/v1/agents", headers=bearer(token))
        assert listing.status_code == 200
        assert (await client.post("/api/v1/agents", json=AGENT, headers=bearer(token))).status_code == 403

    assert tokens_command(argparse.Namespace(action="list", group="ops"), settings) == 0
    assert token_id in capsys.readouterr().out
    assert tokens_command(argparse.Namespace(action="revoke", group="ops", id=uuid.UUID(token_id)), settings) == 0
    assert tokens_command(argparse.Namespace(action="revoke", group="ops", id=uuid.UUID(token_id)), settings) == 1

    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as client:
        assert (await client.get("/api/v1/agents", headers=bearer(token))).status_code == 401


# -- the token cache ------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTokenTable:
    """The read model as a dict, counting how often it is asked."""

    def __init__(self) -> None:
        self.rows: dict[str, TokenIdentity] = {}
        self.reads = 0
        self.position = 0
        self.reading = anyio.Event()
        self.held: anyio.Event | None = None  # when set, a read answers only once this is set

    def projected(self) -> int:
        return self.position

    async def by_hash(self, token_hash: str) -> TokenIdentity | None:
        self.reads += 1
        found = self.rows.get(token_hash)
        self.reading.set()
        if self.held is not None:
            await self.held.wait()
        return found


async def test_cached_tokens_are_read_once_per_ttl_and_revocation_shows_within_it() -> None:
    table, clock = FakeTokenTable(), FakeClock()
    table.rows["h"] = TokenIdentity(id="t1", group_id="g", role="editor")
    lookup = CachingTokenLookup(table.by_hash, projected=table.projected, ttl=5, clock=clock)
    assert await lookup("h") == await lookup("h") == table.rows["h"]
    assert table.reads == 1

    del table.rows["h"]  # revoked by another process
    clock.now = 4.9
    assert await lookup("h") is not None
    clock.now = 5.1
    assert await lookup("h") is None


async def test_a_revoked_token_is_refused_at_once_while_the_read_model_still_holds_it() -> None:
    table = FakeTokenTable()
    table.rows["h"] = TokenIdentity(id="t1", group_id="g", role="editor")
    lookup = CachingTokenLookup(table.by_hash, projected=table.projected, ttl=60, clock=FakeClock())
    await lookup("h")
    lookup.revoked("t1", position=7)  # the row is projected away once the read models reach 7
    assert await lookup("h") is None
    table.position = 7
    del table.rows["h"]
    assert await lookup("h") is None


async def test_a_read_in_flight_when_a_token_is_revoked_neither_admits_nor_caches_it() -> None:
    table = FakeTokenTable()
    table.rows["h"] = TokenIdentity(id="t1", group_id="g", role="editor")
    lookup = CachingTokenLookup(table.by_hash, projected=table.projected, ttl=60, clock=FakeClock())
    table.held = anyio.Event()
    answers: list[Any] = []

    async def read(token_hash: str) -> None:
        answers.append(await lookup(token_hash))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read, "h")
        await table.reading.wait()  # it holds the row as it was before the revocation
        lookup.revoked("t1", position=7)
        table.position = 7
        table.reading = anyio.Event()
        tasks.start_soon(read, "another")  # a read that starts after the projection
        await table.reading.wait()
        table.held.set()
    assert answers == [None, None]
    del table.rows["h"]  # as the read model has it now: only a cached copy could admit the token
    assert await lookup("h") is None


# -- Databricks Apps mode -------------------------------------------------------


def test_personal_groups_follow_kasal_naming() -> None:
    assert personal_group("Jane.Doe+ai@Example-Corp.com") == "user_jane_doe_ai_example_corp_com"


async def test_databricks_mode_without_a_forwarded_email_is_401(databricks_client) -> None:
    assert (await databricks_client.get("/api/v1/agents")).status_code == 401


async def test_databricks_users_work_in_their_personal_group(databricks_client) -> None:
    headers = {"X-Forwarded-Email": "Jane.Doe@example.com"}
    created = await databricks_client.post("/api/v1/agents", json=AGENT, headers=headers)
    assert created.status_code == 201
    assert created.json()["group_id"] == "user_jane_doe_example_com"
    assert created.json()["created_by"] == "Jane.Doe@example.com"
    other = await databricks_client.get("/api/v1/agents", headers={"X-Forwarded-Email": "bob@example.com"})
    assert other.json()["total"] == 0


async def test_databricks_users_may_name_their_own_group_but_no_other(databricks_client) -> None:
    email = {"X-Forwarded-Email": "jane@example.com"}
    own = await databricks_client.get("/api/v1/agents", headers={**email, "group_id": "user_jane_example_com"})
    assert own.status_code == 200
    other = await databricks_client.get("/api/v1/agents", headers={**email, "X-Group-Id": "user_bob_example_com"})
    assert other.status_code == 403


async def test_databricks_mode_reaches_a_workspace_group_with_its_token(databricks_client) -> None:
    token = await issue(databricks_client, "workspace-1", "editor")
    created = await databricks_client.post(
        "/api/v1/agents", json=AGENT, headers=bearer(token, **{"X-Forwarded-Email": "jane@example.com"})
    )
    assert created.status_code == 201
    assert created.json()["group_id"] == "workspace-1"
