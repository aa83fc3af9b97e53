"""Writes answered while the read models lag behind the log.

A write that outwaits its projection still succeeded: it is answered with what
it wrote (``X-Kasal-Stale: true``), and that answer is exactly what a read
says once the projector has caught up. The projector is held back the way a
second process holding its lock holds it back.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from domain.context import Actor, acting_as
from domain.tool import builtin_tool_id
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import Kasal, wire
from projections.engine import ADVISORY_LOCK_KEY

pytestmark = pytest.mark.anyio

CATCH_UP_S = 30.0
AGENTS = {"writer": {"role": "Writer", "goal": "Write about {topic}", "backstory": "Precise", "llm": "offline/echo"}}
TASKS = {"write": {"description": "Write about {topic}", "expected_output": "A paragraph", "agent": "writer"}}


@dataclasses.dataclass(frozen=True)
class Case:
    """How to create a resource, change it, and read it back."""

    path: str
    body: dict[str, Any]
    change: dict[str, Any]
    address: Callable[[dict[str, Any]], str] = lambda created: created["id"]
    change_verb: str = "PUT"


CASES = {
    "agent": Case("/api/v1/agents", {"name": "Scout", "role": "Researcher", "goal": "Find facts",
                                     "backstory": "Curious", "llm": "offline/echo"}, {"goal": "Find more facts"}),
    "task": Case("/api/v1/tasks", {"name": "Survey", "description": "Survey {topic}", "expected_output": "Notes"},
                 {"description": "Survey {topic} twice"}),
    "crew": Case("/api/v1/crews", {"name": "Writers", "agents_yaml": AGENTS, "tasks_yaml": TASKS},
                 {"name": "Editors"}),
    "tool": Case("/api/v1/tools", {"name": "Ledger Tool", "config": {"depth": 2}}, {"description": "Reads ledgers"}),
    "model": Case("/api/v1/models", {"name": "custom-gpt", "provider": "openai", "model": "gpt-4"},
                  {"temperature": 0.3}, address=lambda created: created["key"]),
    "api key": Case("/api/v1/api-keys", {"name": "OPENAI_API_KEY", "key": "sk-lagging-secret"},
                    {"description": "the team's key"}),
    "template": Case("/api/v1/templates", {"name": "Brief", "template": "Brief on {topic}", "variables": ["topic"]},
                     {"description": "A short brief"}),
    "schedule": Case("/api/v1/scheduler/schedules", {"name": "Nightly", "cron_expression": "0 2 * * *",
                                                      "agents_yaml": AGENTS, "tasks_yaml": TASKS,
                                                      "inputs": {"topic": "lag", "api_token": "tok-12345678"}},
                     {"cron_expression": "30 3 * * *"}),
}


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Kasal, Any]]:
    kasal = wire(settings)
    async with AsyncTestClient(app=create_app(kasal)) as client:
        yield kasal, client


@pytest.fixture
def projector_lock(database_url: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """Takes the projector's lock for the test: an app started after that follows and cannot project."""
    with psycopg.connect(database_url, autocommit=True) as conn:

        def take() -> psycopg.Connection[Any]:
            conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            return conn

        yield take


@pytest.fixture
def lagging_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, read_your_writes_timeout=0.2)


async def catch_up(kasal: Kasal, lock: psycopg.Connection[Any], *answers: Any) -> None:
    """Let the projector go and wait until it has projected every write answered."""
    lock.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    position = max(int(answer.headers["x-kasal-position"]) for answer in answers)
    assert await kasal.projector.wait_for(position, CATCH_UP_S), f"position {position} never projected"


def answered_while_lagging(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers.get("x-kasal-stale") == "true"
    return dict(response.json())


async def read(client: Any, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert "x-kasal-stale" not in response.headers
    return response


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_creates_and_updates_while_lagging_answer_what_later_reads_show(
    settings, lagging_settings, projector_lock, case,
) -> None:
    async with serving(settings) as (_, client):
        projected = await client.post(case.path, json=case.body)
        assert projected.status_code == 201 and "x-kasal-stale" not in projected.headers
    before = projected.json()
    lock = projector_lock()
    async with serving(lagging_settings) as (kasal, client):
        created = await client.post(case.path, json={**case.body, "name": f"{case.body['name']} 2"})
        kept = answered_while_lagging(created, 201)
        changed = await client.request(case.change_verb, f"{case.path}/{case.address(before)}", json=case.change)
        after = answered_while_lagging(changed, 200)
        assert after["version"] == before["version"] + 1
        assert {key: after[key] for key in case.change} == case.change

        await catch_up(kasal, lock, created, changed)

        for answer, body in ((created, kept), (changed, after)):
            later = await read(client, f"{case.path}/{case.address(body)}")
            assert later.json() == body
            assert later.headers["etag"] == answer.headers["etag"]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_resource_created_while_lagging_can_be_changed_at_once(lagging_settings, projector_lock, case) -> None:
    projector_lock()
    async with serving(lagging_settings) as (_, client):
        created = answered_while_lagging(await client.post(case.path, json=case.body), 201)
        changed = await client.request(case.change_verb, f"{case.path}/{case.address(created)}", json=case.change)
        after = answered_while_lagging(changed, 200)
        assert (after["id"], after["version"]) == (created["id"], created["version"] + 1)
        assert {key: after[key] for key in case.change} == case.change


async def test_toggling_a_built_in_while_lagging_answers_the_groups_new_setting(
    lagging_settings, projector_lock,
) -> None:
    path = f"/api/v1/tools/{builtin_tool_id('SerperDevTool')}"
    lock = projector_lock()
    async with serving(lagging_settings) as (kasal, client):
        toggled = await client.patch(f"{path}/toggle-enabled")
        answer = answered_while_lagging(toggled, 200)
        assert answer["enabled"] is False and answer["message"].endswith("disabled")

        await catch_up(kasal, lock, toggled)

        later = await read(client, path)
        assert later.json() == {key: value for key, value in answer.items() if key != "message"}
        assert later.headers["etag"] == toggled.headers["etag"]


async def test_a_token_issued_while_lagging_is_answered_as_later_reads_show_it(
    lagging_settings, projector_lock,
) -> None:
    lock = projector_lock()
    async with serving(lagging_settings) as (kasal, client):
        issued = await client.post("/api/v1/tokens", json={"role": "editor", "name": "ci"})
        answer = answered_while_lagging(issued, 201)
        assert "etag" not in issued.headers

        await catch_up(kasal, lock, issued)

        later = await read(client, f"/api/v1/tokens/{answer['id']}")
        assert later.json() == {key: value for key, value in answer.items() if key != "token"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_revoked_while_lagging_is_refused_from_the_answer_on(
    settings, lagging_settings, projector_lock,
) -> None:
    async with serving(settings.with_(auth_mode="token")) as (kasal, client):
        with acting_as(Actor(group_id="team", actor="test", role="admin")):
            issued = await kasal.run(kasal.services.tokens.issue, "admin", "ops")
        assert await kasal.projector.wait_for(issued.position, CATCH_UP_S)
        admin = issued.token
        made = await client.post("/api/v1/tokens", json={"role": "editor", "name": "ci"}, headers=bearer(admin))
        assert made.status_code == 201 and "x-kasal-stale" not in made.headers, made.text
        editor = made.json()
    lock = projector_lock()
    async with serving(lagging_settings.with_(auth_mode="token")) as (kasal, client):
        assert (await client.get("/api/v1/agents", headers=bearer(editor["token"]))).status_code == 200

        revoked = await client.delete(f"/api/v1/tokens/{editor['id']}", headers=bearer(admin))
        assert revoked.status_code == 204 and revoked.headers.get("x-kasal-stale") == "true"

        assert (await client.get("/api/v1/agents", headers=bearer(editor["token"]))).status_code == 401
        await catch_up(kasal, lock, revoked)
        assert (await client.get("/api/v1/agents", headers=bearer(editor["token"]))).status_code == 401
        assert (await client.get("/api/v1/agents", headers=bearer(admin))).status_code == 200
