"""``Idempotency-Key``: a retried POST is answered again, never processed twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

import interface.http.idempotency
from domain.context import Actor
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import Kasal, wire
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

INLINE_CREW = {
    "agents_yaml": {"w": {"role": "Writer", "goal": "Write about {topic}", "backstory": "Terse",
                          "llm": "offline/echo"}},
    "tasks_yaml": {"t": {"description": "One line on {topic}", "expected_output": "A line", "agent": "w"}},
}


def _agent(name: str = "Researcher") -> dict[str, Any]:
    return {"name": name, "role": "Senior Researcher", "goal": "Find facts", "backstory": "Curious"}


# (what, POST path, body, list path, topic of the event that creates one)
RESOURCES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("agents", "/api/v1/agents", _agent(), "/api/v1/agents", "agent.created.v1"),
    ("tasks", "/api/v1/tasks", {"name": "Research", "description": "Research it", "expected_output": "Facts"},
     "/api/v1/tasks", "task.created.v1"),
    ("crews", "/api/v1/crews", {"name": "Quick start", **INLINE_CREW}, "/api/v1/crews", "crew.created.v1"),
    ("tools", "/api/v1/tools", {"title": "Idempotent Tool", "description": "Does a thing"}, "/api/v1/tools",
     "tool.created.v1"),
    ("models", "/api/v1/models", {"name": "custom-gpt-4", "provider": "openai", "model": "gpt-4",
                                  "parameters": {"temperature": 0.7, "max_tokens": 2000}},
     "/api/v1/models", "model_config.created.v1"),
    ("templates", "/api/v1/templates", {"name": "Greeting", "template": "Hello {who}", "variables": ["who"]},
     "/api/v1/templates", "template.created.v1"),
    ("api-keys", "/api/v1/api-keys", {"name": "OPENAI_API_KEY", "key": "sk-idempotent-secret-value-123"},
     "/api/v1/api-keys", "api_key.created.v1"),
    ("tokens", "/api/v1/tokens", {"role": "editor", "name": "ci"}, "/api/v1/tokens", "access_token.created.v1"),
    ("executions", "/api/v1/executions", {**INLINE_CREW, "inputs": {"topic": "retries"}}, "/api/v1/executions",
     "execution.requested.v1"),
    ("schedules", "/api/v1/scheduler/schedules", {"name": "Nightly", "cron_expression": "0 3 * * *",
                                                  **INLINE_CREW, "inputs": {"topic": "night"}},
     "/api/v1/scheduler/schedules", "schedule.created.v1"),
]
IDS = [r[0] for r in RESOURCES]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, tzinfo=UTC))


@pytest.fixture
def kasal(settings: Settings, clock: FakeClock) -> Kasal:
    return wire(settings, clock=clock)


@pytest.fixture
async def http(kasal: Kasal) -> AsyncIterator[Any]:
    async with AsyncTestClient(app=create_app(kasal)) as client:
        yield client


def events_of(url: str, topic: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM kasal_events WHERE topic = %s", (topic,)).fetchone()
    return int(row[0]) if row else 0


async def total(http: Any, path: str, group: str = "local") -> int:
    return int((await http.get(path, params={"limit": 1}, headers={"X-Group-Id": group})).json()["total"])


def same_answer(first: Any, again: Any) -> None:
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert again.headers.get("location") == first.headers.get("location")
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


@pytest.mark.parametrize(("what", "path", "body", "listing", "topic"), RESOURCES, ids=IDS)
async def test_a_retry_is_answered_again_and_creates_nothing(
    http: Any, settings: Settings, what: str, path: str, body: dict[str, Any], listing: str, topic: str,
) -> None:
    before, created_before = await total(http, listing), events_of(settings.database_url, topic)
    first = await http.post(path, json=body, headers={"Idempotency-Key": f"create-{what}"})
    assert first.status_code == 201, first.text
    assert first.headers["location"]
    # The same body with its keys in another order is the same request.
    again = await http.post(path, json=dict(reversed(body.items())), headers={"Idempotency-Key": f"create-{what}"})
    same_answer(first, again)
    assert await total(http, listing) == before + 1
    assert events_of(settings.database_url, topic) == created_before + 1
    changed = {**body, "name": "Something else"}
    refused = await http.post(path, json=changed, headers={"Idempotency-Key": f"create-{what}"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await total(http, listing) == before + 1


async def test_a_token_answered_again_is_never_in_the_log(http: Any, settings: Settings) -> None:
    first = await http.post("/api/v1/tokens", json={"role": "operator"}, headers={"Idempotency-Key": "tok"})
    again = await http.post("/api/v1/tokens", json={"role": "operator"}, headers={"Idempotency-Key": "tok"})
    token = first.json()["token"]
    assert again.json()["token"] == token
    with psycopg.connect(settings.database_url) as conn:
        stored = b"".join(bytes(row[0]) for row in conn.execute("SELECT state FROM kasal_events"))
    assert token.encode() not in stored


@pytest.mark.parametrize("key", ["", "x" * 256, "é".encode("latin-1"), b"tab\there", b"del\x7f"],
                         ids=["empty", "too-long", "latin-1", "tab", "del"])
async def test_a_key_that_is_not_1_to_255_printable_ascii_characters_is_422(http: Any, key: Any) -> None:
    response = await http.post("/api/v1/agents", json=_agent(), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await total(http, "/api/v1/agents") == 0


async def test_the_longest_key_and_every_printable_character_work(http: Any) -> None:
    printable = "".join(map(chr, range(0x21, 0x7F)))
    for key in (printable, "k" * 255, "with inner spaces"):
        first = await http.post("/api/v1/agents", json=_agent(key[:50]), headers={"Idempotency-Key": key})
        again = await http.post("/api/v1/agents", json=_agent(key[:50]), headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text
        same_answer(first, again)
    assert await total(http, "/api/v1/agents") == 3


async def test_keys_are_per_group(http: Any) -> None:
    a = await http.post("/api/v1/agents", json=_agent(), headers={"Idempotency-Key": "k", "X-Group-Id": "a"})
    b = await http.post("/api/v1/agents", json=_agent(), headers={"Idempotency-Key": "k", "X-Group-Id": "b"})
    assert (a.status_code, b.status_code) == (201, 201)
    assert "idempotent-replayed" not in b.headers and a.json()["id"] != b.json()["id"]
    # Another body in another group is not "a different request for the same key" either.
    c = await http.post("/api/v1/agents", json=_agent("Other"), headers={"Idempotency-Key": "k", "X-Group-Id": "c"})
    assert c.status_code == 201
    assert [await total(http, "/api/v1/agents", g) for g in "abc"] == [1, 1, 1]


async def test_a_key_is_free_again_after_24_hours(http: Any, clock: FakeClock) -> None:
    first = await http.post("/api/v1/agents", json=_agent(), headers={"Idempotency-Key": "daily"})
    clock.advance(hours=23, minutes=59)
    same_answer(first, await http.post("/api/v1/agents", json=_agent(), headers={"Idempotency-Key": "daily"}))
    clock.advance(minutes=1)
    later = await http.post("/api/v1/agents", json=_agent("Tomorrow"), headers={"Idempotency-Key": "daily"})
    assert later.status_code == 201 and "idempotent-replayed" not in later.headers
    again = await http.post("/api/v1/agents", json=_agent("Tomorrow"), headers={"Idempotency-Key": "daily"})
    same_answer(later, again)
    assert await total(http, "/api/v1/agents") == 2


async def test_requests_that_write_nothing_claim_nothing(http: Any) -> None:
    key = {"Idempotency-Key": "nothing-yet"}
    assert (await http.post("/api/v1/agents", json={"name": "no role"}, headers=key)).status_code == 422
    assert (await http.post("/api/v1/crews/debug", json=INLINE_CREW, headers=key)).status_code == 200
    assert (await http.post("/api/v1/crews", json={"name": "dup", **INLINE_CREW})).status_code == 201
    assert (await http.post("/api/v1/crews", json={"name": "dup", **INLINE_CREW}, headers=key)).status_code == 409
    created = await http.post("/api/v1/agents", json=_agent(), headers=key)
    assert created.status_code == 201 and "idempotent-replayed" not in created.headers


async def test_eight_concurrent_requests_with_one_key_create_one_resource(http: Any, settings: Settings) -> None:
    headers = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(*(http.post("/api/v1/agents", json=_agent(), headers=headers) for _ in range(8)))
    assert sorted({a.status_code for a in answers}) in ([201], [201, 409]), [a.text for a in answers]
    fresh = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1
    assert {a.json()["id"] for a in answers if a.status_code == 201} == {fresh[0].json()["id"]}
    assert await total(http, "/api/v1/agents") == 1
    assert events_of(settings.database_url, "agent.created.v1") == 1


async def test_two_processes_on_one_database_create_one_resource(settings: Settings, clock: FakeClock) -> None:
    one, two = wire(settings, clock=clock), wire(settings, clock=clock)
    async with AsyncTestClient(app=create_app(one)) as a, AsyncTestClient(app=create_app(two)) as b:
        headers = {"Idempotency-Key": "two-processes"}
        answers = await asyncio.gather(*(
            client.post("/api/v1/executions", json={**INLINE_CREW, "inputs": {"topic": "x"}}, headers=headers)
            for client in (a, b) * 4))
        assert {r.status_code for r in answers} <= {201, 409}, [r.text for r in answers]
        assert len([r for r in answers if r.status_code == 201 and "idempotent-replayed" not in r.headers]) == 1
        assert await total(a, "/api/v1/executions") == 1
        # Once answered, both processes replay it.
        for client in (a, b):
            again = await client.post("/api/v1/executions", json={**INLINE_CREW, "inputs": {"topic": "x"}},
                                      headers=headers)
            assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert events_of(settings.database_url, "execution.requested.v1") == 1


@pytest.fixture
def answers_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process commits but never records its answer (as if killed right after the commit)."""

    def fail(*args: Any) -> bool:
        raise RuntimeError("killed")

    monkeypatch.setattr(interface.http.idempotency, "record_answer", fail)


REBUILDABLE = [r for r in RESOURCES if r[0] != "tokens"]


@pytest.mark.parametrize(("what", "path", "body", "listing", "topic"), REBUILDABLE, ids=[r[0] for r in REBUILDABLE])
async def test_an_answer_lost_after_the_commit_is_rebuilt_from_the_log(
    http: Any, clock: FakeClock, answers_lost: None,
    what: str, path: str, body: dict[str, Any], listing: str, topic: str,
) -> None:
    headers = {"Idempotency-Key": f"lost-{what}"}
    before = await total(http, listing)
    first = await http.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.text
    # Its process is alive and may still be answering: not yet.
    waiting = await http.post(path, json=body, headers=headers)
    assert waiting.status_code == 409
    clock.advance(minutes=2)
    rebuilt = await http.post(path, json=body, headers=headers)
    same_answer(first, rebuilt)
    assert await total(http, listing) == before + 1


async def test_a_lost_token_answer_says_the_secret_is_gone(http: Any, clock: FakeClock, answers_lost: None) -> None:
    headers = {"Idempotency-Key": "lost-token"}
    first = await http.post("/api/v1/tokens", json={"role": "editor"}, headers=headers)
    clock.advance(minutes=2)
    again = await http.post("/api/v1/tokens", json={"role": "editor"}, headers=headers)
    assert again.status_code == 409
    assert "shown only once" in again.json()["detail"] and first.json()["id"] in again.json()["detail"]
    assert first.json()["token"] not in again.text
    assert await total(http, "/api/v1/tokens") == 1


async def test_a_generated_crew_is_one_save_and_a_retry_saves_nothing(http: Any, settings: Settings) -> None:
    body = {"description": "A crew that researches and writes a blog post", "model": "offline/echo", "save": True}
    headers = {"Idempotency-Key": "generate"}
    first = await http.post("/api/v1/crew-generation/generate", json=body, headers=headers)
    assert first.status_code == 201, first.text
    same_answer(first, await http.post("/api/v1/crew-generation/generate", json=body, headers=headers))
    saved = first.json()
    with psycopg.connect(settings.database_url) as conn:
        ids = [saved["crew_id"], *saved["agent_ids"], *saved["task_ids"]]
        positions = [row[0] for row in conn.execute(
            "SELECT notification_id FROM kasal_events WHERE originator_id = ANY(%s::uuid[]) "
            "AND originator_version = 1 ORDER BY notification_id", (ids,))]
        key = conn.execute("SELECT notification_id FROM kasal_events WHERE topic = 'idempotency_key.created.v1'"
                           ).fetchone()
    assert len(positions) == len(ids) and key is not None
    # One save: the crew, its agents and tasks, the crew's name and the key are consecutive in the log.
    everything = [*positions, key[0]]
    assert max(everything) - min(everything) + 1 == len(ids) + 2
    assert await total(http, "/api/v1/crews") == 1
    assert await total(http, "/api/v1/agents") == len(saved["agent_ids"])


class RoleFromHeader:
    """Everyone in group ``local``, with the role ``X-Test-Role`` names."""

    async def authenticate(self, headers: Any, correlation_id: str) -> Actor:
        role = headers.get("x-test-role", "admin")
        return Actor(group_id="local", actor=f"test-{role}", role=role, correlation_id=correlation_id)


async def test_a_replay_is_only_for_callers_the_route_admits(settings: Settings, clock: FakeClock) -> None:
    kasal = wire(settings, clock=clock, authenticator=RoleFromHeader())
    async with AsyncTestClient(app=create_app(kasal)) as http:
        body, key = {"role": "admin"}, {"Idempotency-Key": "admin-only"}
        first = await http.post("/api/v1/tokens", json=body, headers=key)
        assert first.status_code == 201
        for role in ("operator", "editor"):
            refused = await http.post("/api/v1/tokens", json=body, headers={**key, "X-Test-Role": role})
            assert refused.status_code == 403 and first.json()["token"] not in refused.text


async def test_a_lost_generation_answer_names_the_crew_it_saved(
    http: Any, clock: FakeClock, answers_lost: None,
) -> None:
    body = {"description": "A crew that researches and writes a blog post", "model": "offline/echo", "save": True}
    headers = {"Idempotency-Key": "lost-generation"}
    first = await http.post("/api/v1/crew-generation/generate", json=body, headers=headers)
    clock.advance(minutes=2)
    again = await http.post("/api/v1/crew-generation/generate", json=body, headers=headers)
    assert again.status_code == 409 and f"crew {first.json()['crew_id']}" in again.json()["detail"]
    assert await total(http, "/api/v1/crews") == 1


@pytest.mark.parametrize("answered", [True, False], ids=["answered", "answer-lost"])
async def test_a_retried_restore_restores_once(
    http: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, answered: bool,
) -> None:
    agent = (await http.post("/api/v1/agents", json=_agent())).json()
    await http.put(f"/api/v1/agents/{agent['id']}", json={"goal": "Something new"})
    if not answered:
        monkeypatch.setattr(interface.http.idempotency, "record_answer", lambda *args: 1 / 0)
    path, key = f"/api/v1/agents/{agent['id']}/versions/1/restore", {"Idempotency-Key": "undo"}
    first = await http.post(path, headers=key)
    assert first.status_code == 200 and first.json()["goal"] == "Find facts", first.text
    clock.advance(minutes=2)
    same_answer(first, await http.post(path, headers=key))
    versions = (await http.get(f"/api/v1/agents/{agent['id']}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [1, 2, 3]
