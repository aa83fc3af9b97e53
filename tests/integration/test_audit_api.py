"""The audit log: ``GET /api/v1/events``, its stream, ``kasal events export``, within the caller's group.

The records are checked against the event store itself (every event of the
group, bookkeeping aside, in log order, with its envelope), every filter
against a plain filter over those records, and paging, the stream and the
export against each other: each shows every record exactly once.
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from application.tokens import TokenService
from domain.access_token import hash_token
from domain.api_key import SECRET_FIELD
from domain.base import KasalAggregate, event, stable_topics
from domain.context import Actor, acting_as
from domain.schedule import SEALED_INPUTS
from interface.app import create_app
from interface.cli import COMMANDS
from interface.cli_events import run_events
from interface.settings import Settings
from interface.wiring import Kasal, wire
from projections.audit import audited
from tests.integration.execution_runs import INLINE, Runner, crew_script, start
from tests.integration.test_execution_streams import BAD_LAST_EVENT_IDS, LiveSse

pytestmark = pytest.mark.anyio

API = "/api/v1"
OTHER = "audit-other"
AGENT = {"role": "Researcher", "goal": "Find facts", "backstory": "Curious"}
RECORD_KEYS = {"position", "type", "kind", "aggregate_id", "version", "at", "actor", "group_id", "correlation_id",
               "data"}


def agent(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, **AGENT, **extra}


def core_of(client: Any) -> Kasal:
    kasal: Kasal = client.app.state.kasal
    return kasal


def fresh(client: Any, group: str = "local", **extra: str) -> dict[str, str]:
    """Headers for a read that includes everything recorded so far (the runner's writes too)."""
    return {"X-Kasal-Min-Position": str(core_of(client).store.max_position()), "X-Group-Id": group, **extra}


async def listed(client: Any, group: str = "local", limit: int = 1000, **filters: Any) -> list[dict[str, Any]]:
    """Every record ``GET /events`` pages through for ``filters``, following ``next_after``."""
    records: list[dict[str, Any]] = []
    after = 0
    while True:
        response = await client.get(f"{API}/events", params={**filters, "after": after, "limit": limit},
                                    headers=fresh(client, group))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        records += page["items"]
        assert page["next_after"] == (page["items"][-1]["position"] if page["items"] else after)
        if not page["has_more"]:
            return records
        assert len(page["items"]) == limit
        after = page["next_after"]


def log_of(kasal: Kasal, group: str) -> list[tuple[int, str, str, int, str, str]]:
    """(position, topic, aggregate id, version, actor, request id) of the group's audited events, from the store."""
    found = []
    start_at = 1
    while notifications := kasal.store.recorder.select_notifications(start=start_at, limit=1000):
        for notification in notifications:
            if not audited(notification.topic):
                continue
            stored = kasal.store.mapper.to_domain_event(notification)
            if stored.group_id == group:
                found.append((notification.id, notification.topic, str(stored.originator_id),
                              stored.originator_version, stored.actor, stored.correlation_id))
        start_at = notifications[-1].id + 1
    return found


def envelope(record: dict[str, Any]) -> tuple[int, str, str, int, str, str]:
    return (record["position"], record["type"], record["aggregate_id"], record["version"], record["actor"],
            record["correlation_id"])


async def workload(client: Any) -> dict[str, Any]:
    """Changes of every kind in group ``local`` (and a few in ``OTHER``), by the user and by the runner."""
    ids: dict[str, Any] = {}
    headers = {"X-Request-ID": "audit-create"}
    first = (await client.post(f"{API}/agents", json=agent("First"), headers=headers)).json()["id"]
    second = (await client.post(f"{API}/agents", json=agent("Second"))).json()["id"]
    assert (await client.put(f"{API}/agents/{first}", json={"goal": "Find more"},
                             headers={"X-Request-ID": "audit-update"})).status_code == 200
    assert (await client.delete(f"{API}/agents/{second}")).status_code == 204
    task = (await client.post(f"{API}/tasks", json={"name": "T", "description": "D", "expected_output": "O",
                                                     "agent": "first"})).json()["id"]
    crew = await client.post(f"{API}/crews", json={"name": "Crew", "agent_ids": [first], "task_ids": [task]})
    assert crew.status_code == 201, crew.text
    assert (await client.post(f"{API}/templates", json={"name": "Mine", "template": "Hi {who}",
                                                         "variables": ["who"]})).status_code == 201
    assert (await client.patch(f"{API}/models/gpt-4o/toggle")).status_code == 200
    assert (await client.post(f"{API}/api-keys", json={"name": "OPENAI_API_KEY", "key": "sk-audit-0000-1111"}
                              )).status_code == 201
    execution = await start(client)
    runner = Runner(client)
    job = await runner.run_until_running()
    await runner.progress(job.execution_id, crew_script())
    await runner.complete(job.execution_id, "done")
    theirs = (await client.post(f"{API}/agents", json=agent("Theirs"), headers={"X-Group-Id": OTHER})).json()["id"]
    ids.update(first=first, second=second, task=task, crew=crew.json()["id"],
               execution=execution["execution_id"], theirs=theirs)
    return ids


# -- what a record is -------------------------------------------------------------


async def test_each_change_is_a_record_with_who_when_why_and_what(client) -> None:
    created = await client.post(f"{API}/agents", json=agent("Audited"), headers={"X-Request-ID": "req-create"})
    agent_id = created.json()["id"]
    updated = await client.put(f"{API}/agents/{agent_id}", json={"goal": "Find ✓ more"},
                               headers={"X-Request-ID": "req-update"})
    deleted = await client.delete(f"{API}/agents/{agent_id}", headers={"X-Request-ID": "req-delete"})
    records = await listed(client, aggregate_id=agent_id)

    assert [set(r) for r in records] == [RECORD_KEYS] * 3
    assert [(r["type"], r["kind"], r["version"], r["correlation_id"]) for r in records] == [
        ("agent.created.v1", "agent", 1, "req-create"), ("agent.updated.v1", "agent", 2, "req-update"),
        ("agent.deleted.v1", "agent", 3, "req-delete")]
    assert [r["position"] for r in records] == [int(r.headers["X-Kasal-Position"]) for r in (created, updated, deleted)]
    assert {(r["actor"], r["group_id"], r["aggregate_id"]) for r in records} == {("local-admin", "local", agent_id)}
    assert records[0]["data"]["fields"]["name"] == "Audited"
    assert records[1]["data"] == {"changes": {"goal": "Find ✓ more"}}
    assert records[2]["data"] == {}
    made = datetime.fromisoformat(created.json()["created_at"])
    assert abs(datetime.fromisoformat(records[0]["at"]) - made) < timedelta(seconds=1)


async def test_the_list_is_the_groups_log_in_order_without_bookkeeping(client) -> None:
    await workload(client)
    records = await listed(client, limit=7)
    assert [envelope(r) for r in records] == log_of(core_of(client), "local")
    kinds = {r["kind"] for r in records}
    assert kinds >= {"agent", "task", "crew", "model", "api_key", "template", "execution"}
    assert not any(r["type"].startswith(("name_index.", "execution_quota.")) for r in records)
    assert all(r["group_id"] == "local" for r in records)


@stable_topics("audit_probe")
class Probe(KasalAggregate):
    """An aggregate no projection names: the audit log still shows its events."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id

    @event("Poked")
    def poke(self, how: str) -> None:
        pass


async def test_topics_added_later_are_audited_without_listing_them(client) -> None:
    kasal = core_of(client)
    with acting_as(Actor(group_id="local", actor="probe", correlation_id="probe-1")):
        probe = Probe._create(Probe.Created, group_id="local")
        probe.poke("gently")
        await kasal.run(kasal.store.record, probe)
    records = await listed(client, aggregate_id=str(probe.id))
    assert [(r["type"], r["kind"], r["actor"], r["data"]) for r in records] == [
        ("audit_probe.created.v1", "audit_probe", "probe", {}),
        ("audit_probe.poked.v1", "audit_probe", "probe", {"how": "gently"})]


# -- filters and paging, as a property ------------------------------------------------


def matches(record: dict[str, Any], filters: dict[str, Any]) -> bool:
    at = datetime.fromisoformat(record["at"])
    kind_type = filters.get("type")
    return all([
        "aggregate_id" not in filters or record["aggregate_id"] == filters["aggregate_id"],
        "kind" not in filters or record["kind"] == filters["kind"],
        kind_type is None or (record["type"].startswith(kind_type) if kind_type.endswith(".")
                              else record["type"] == kind_type),
        "actor" not in filters or record["actor"] == filters["actor"],
        "correlation_id" not in filters or record["correlation_id"] == filters["correlation_id"],
        "since" not in filters or at >= as_instant(filters["since"]),
        "until" not in filters or at < as_instant(filters["until"]),
    ])


def as_instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def spellings(at: str) -> st.SearchStrategy[str]:
    """One instant as clients write it: with Z, with another zone's offset, or naive (UTC)."""
    instant = datetime.fromisoformat(at)
    return st.sampled_from([
        instant.isoformat().replace("+00:00", "Z"),
        instant.astimezone(UTC).replace(tzinfo=None).isoformat(),
        instant.astimezone(timezone(timedelta(hours=5, minutes=45))).isoformat(),
        instant.astimezone(timezone(timedelta(hours=-7, minutes=-30))).isoformat(),
    ])


@st.composite
def filters_for(draw: st.DrawFn, records: list[dict[str, Any]]) -> dict[str, Any]:
    pick = st.sampled_from(records)
    chosen: dict[str, Any] = {}
    if draw(st.integers(0, 2)) == 0:
        chosen["kind"] = draw(st.sampled_from(sorted({r["kind"] for r in records} | {"schedule"})))
    if draw(st.integers(0, 2)) == 0:
        topic = draw(pick)["type"]
        chosen["type"] = draw(st.sampled_from([topic, topic.split(".")[0] + ".", "agent.", "nothing.v1"]))
    if draw(st.integers(0, 4)) == 0:
        chosen["aggregate_id"] = draw(pick)["aggregate_id"]
    if draw(st.integers(0, 4)) == 0:
        chosen["actor"] = draw(st.sampled_from(sorted({r["actor"] for r in records} | {"nobody"})))
    if draw(st.integers(0, 4)) == 0:
        chosen["correlation_id"] = draw(pick)["correlation_id"]
    if draw(st.integers(0, 2)) == 0:
        chosen["since"] = draw(pick.flatmap(lambda r: spellings(r["at"])))
    if draw(st.integers(0, 3)) == 0:
        chosen["until"] = draw(pick.flatmap(lambda r: spellings(r["at"])))
    return chosen


async def test_every_filter_and_page_size_pages_through_exactly_the_matching_records(client) -> None:
    await workload(client)
    everything = await listed(client)

    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data(), limit=st.integers(1, 9))
    def check(data: st.DataObject, limit: int) -> None:
        filters = data.draw(filters_for(everything))
        got = anyio.from_thread.run(lambda: listed(client, limit=limit, **filters))
        assert got == [r for r in everything if matches(r, filters)], filters

    await anyio.to_thread.run_sync(check)


async def test_each_filter_alone_narrows_the_list(client) -> None:
    ids = await workload(client)
    assert {r["aggregate_id"] for r in await listed(client, aggregate_id=ids["first"])} == {ids["first"]}
    assert {r["kind"] for r in await listed(client, kind="execution")} == {"execution"}
    assert {r["type"] for r in await listed(client, type="agent.updated.v1")} == {"agent.updated.v1"}
    assert {r["type"] for r in await listed(client, type="agent.")} == {
        "agent.created.v1", "agent.updated.v1", "agent.deleted.v1"}
    assert {r["actor"] for r in await listed(client, actor="runner:runner-1")} == {"runner:runner-1"}
    assert [r["type"] for r in await listed(client, correlation_id="audit-update")] == ["agent.updated.v1"]
    everything = await listed(client)
    middle = everything[len(everything) // 2]["at"]
    assert all(r["at"] >= middle for r in await listed(client, since=middle))
    assert all(r["at"] < middle for r in await listed(client, until=middle))
    assert await listed(client, since="2999-01-01") == []
    assert await listed(client, until="2000-01-01T00:00:00") == []


@pytest.mark.parametrize("query", [
    "after=-1", f"after={2**63}", "after=1.5", "limit=0", "limit=1001", "limit=x", "kind=agents", "kind=",
    "aggregate_id=not-a-uuid", "aggregate_id=", "since=yesterday", "until=2024-13-01", "since=2024-01-01T25:00",
    "type=", "actor=", "correlation_id=",
])
async def test_bad_parameters_are_422(client, query) -> None:
    # The stream takes every parameter but ``limit`` (a valid stream would never end here).
    for path in ("events",) if query.startswith("limit") else ("events", "events/stream"):
        response = await client.get(f"{API}/{path}?{query}")
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"][0] == "query"


async def test_the_largest_cursor_and_odd_values_answer_empty_pages(client) -> None:
    await client.post(f"{API}/agents", json=agent("A"))
    for params in ({"after": 2**63 - 1}, {"actor": "ünïcødé 🙂" * 50}, {"type": "agent.\\%_"},
                   {"correlation_id": "x" * 1000}, {"aggregate_id": str(uuid.uuid4())}):
        response = await client.get(f"{API}/events", params=params)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == [] and response.json()["has_more"] is False
    assert (await client.get(f"{API}/events", params={"after": 2**63 - 1})).json()["next_after"] == 2**63 - 1


# -- secrets -------------------------------------------------------------------------

SECRET_INPUT = "exec-input-secret-0123456789"
SCHEDULE_SECRET = "schedule-input-secret-0123456789"
KEY_VALUE = "sk-audit-plaintext-0123456789"
TOOL_SECRET = "tool-config-secret-0123456789"


async def secrets_workload(client: Any) -> list[str]:
    """Write every kind of secret the service keeps; the strings that must never be shown."""
    kasal = core_of(client)
    key = await client.post(f"{API}/api-keys", json={"name": "ANTHROPIC_API_KEY", "key": KEY_VALUE})
    assert key.status_code == 201, key.text
    replaced = await client.put(f"{API}/api-keys/{key.json()['id']}", json={"key": KEY_VALUE + "-v2"})
    assert replaced.status_code == 200, replaced.text
    token = await client.post(f"{API}/tokens", json={"role": "operator", "name": "ci"})
    assert token.status_code == 201, token.text
    schedule = await client.post(f"{API}/scheduler/schedules", json={
        "name": "Nightly", "cron_expression": "0 3 * * *", **INLINE,
        "inputs": {"topic": "AI", "api_key": SCHEDULE_SECRET}})
    assert schedule.status_code == 201, schedule.text
    execution = await start(client, {**INLINE, "inputs": {"topic": "AI", "api_key": SECRET_INPUT}})
    tool_agent = await client.post(f"{API}/agents", json=agent(
        "Tooled", tools=["SerperDevTool"], tool_configs={"SerperDevTool": {"nested": [{"api_key": TOOL_SECRET}]}}))
    assert tool_agent.status_code == 201, tool_agent.text
    key_doc = await kasal.run(kasal.store.find, uuid.UUID(key.json()["id"]))
    schedule_doc = await kasal.run(kasal.store.find, uuid.UUID(schedule.json()["id"]))
    ciphertexts = [e.fields[SECRET_FIELD] for e in await kasal.run(kasal.store.history, key_doc.id)
                   if hasattr(e, "fields")] + [key_doc.fields[SECRET_FIELD], schedule_doc.fields[SEALED_INPUTS]]
    plaintext = token.json()["token"]
    assert execution["execution_id"]
    return [KEY_VALUE, SECRET_INPUT, SCHEDULE_SECRET, TOOL_SECRET, plaintext, hash_token(plaintext),
            plaintext[len("kasal_"):], *ciphertexts]


def shows_none_of(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret and secret not in text, f"{secret[:12]}… is shown"


async def test_no_secret_is_shown_in_the_list_the_stream_or_the_export(quick_heartbeats, tmp_path) -> None:
    client = quick_heartbeats
    secrets = await secrets_workload(client)
    response = await client.get(f"{API}/events", params={"limit": 1000}, headers=fresh(client))
    records = response.json()["items"]
    shows_none_of(response.text, secrets)
    assert {r["kind"] for r in records} >= {"api_key", "token", "schedule", "execution", "agent"}
    key_fields = next(r["data"]["fields"] for r in records if r["type"] == "api_key.created.v1")
    assert key_fields[SECRET_FIELD] == "[REDACTED]" and key_fields["hint"] == "[REDACTED]"
    token_data = next(r["data"] for r in records if r["type"] == "access_token.created.v1")
    assert token_data["token_hash"] == "[REDACTED]" and token_data["role"] == "operator"
    requested = next(r["data"] for r in records if r["type"] == "execution.requested.v1")
    assert requested["inputs"] == {"topic": "AI", "api_key": "[REDACTED]"}
    schedule = next(r["data"]["fields"] for r in records if r["type"] == "schedule.created.v1")
    assert schedule[SEALED_INPUTS] == "[REDACTED]" and schedule["inputs"]["api_key"] == "[REDACTED]"

    stream = LiveSse(client, f"{API}/events/stream")
    try:
        shows_none_of(json.dumps(backlog(stream)), secrets)
    finally:
        stream.close()
    shows_none_of(await export(client.app.state.kasal.settings, "local"), secrets)


# -- the stream ---------------------------------------------------------------------------


@pytest.fixture
async def quick_heartbeats(settings: Settings) -> AsyncIterator[Any]:
    """A client of a service whose idle streams send a heartbeat every 0.2 s."""
    async with AsyncTestClient(app=create_app(wire(settings, log_heartbeat_s=0.2))) as client:
        yield client


def backlog(stream: LiveSse) -> list[dict[str, Any]]:
    """The events a stream sends before its first heartbeat (it is idle: everything so far was sent)."""
    events = []
    while (message := stream.next_event()) != {"comment": "heartbeat"}:
        assert message is not None, "the stream ended"
        events.append(message)
    return events


async def test_the_stream_sends_the_backlog_then_follows_live_with_heartbeats(quick_heartbeats) -> None:
    client = quick_heartbeats
    await client.post(f"{API}/agents", json=agent("Before"))
    everything = await listed(client)
    stream = LiveSse(client, f"{API}/events/stream")
    try:
        sent = backlog(stream)
        assert stream.status == 200
        assert [(int(e["id"]), e["event"], e["data"]) for e in sent] == [
            (r["position"], r["type"], r) for r in everything]
        assert stream.next_event() == {"comment": "heartbeat"}
        live = await client.post(f"{API}/agents", json=agent("After"), headers={"X-Request-ID": "live-1"})
        followed = stream.next_data_event()
        assert followed is not None
        assert (int(followed["id"]), followed["event"], followed["data"]["correlation_id"]) == (
            int(live.headers["X-Kasal-Position"]), "agent.created.v1", "live-1")
    finally:
        stream.close()
    assert stream.done.done()


async def test_the_stream_resumes_after_last_event_id_without_gaps_or_repeats(quick_heartbeats) -> None:
    client = quick_heartbeats
    await workload(client)
    everything = await listed(client, kind="agent")
    for cut in (0, 1, len(everything) // 2, len(everything)):
        resumed_at = everything[cut - 1]["position"] if cut else 0
        for how in ({"headers": {"Last-Event-ID": str(resumed_at)}}, {"query": f"&after={resumed_at}"}):
            path = f"{API}/events/stream?kind=agent{how.get('query', '')}"
            stream = LiveSse(client, path, headers={**fresh(client), **how.get("headers", {})})
            try:
                rest = [e["data"] for e in backlog(stream)]
            finally:
                stream.close()
            assert everything[:cut] + rest == everything, (cut, how)


async def test_a_bad_last_event_id_is_422(client) -> None:
    for value in BAD_LAST_EVENT_IDS:
        response = await client.get(f"{API}/events/stream", headers={"Last-Event-ID": value})
        assert response.status_code == 422, (value, response.text)
        assert response.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


# -- tenancy ------------------------------------------------------------------------------

GROUPS = ("tenant-a", "tenant-b")
names = st.text(alphabet="abcdefghij XYZé", min_size=1, max_size=12).filter(str.strip)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(GROUPS), names),
        st.tuples(st.just("update"), st.sampled_from(GROUPS), st.integers(0, 9), names),
        st.tuples(st.just("delete"), st.sampled_from(GROUPS), st.integers(0, 9)),
        st.tuples(st.just("key"), st.sampled_from(GROUPS), names),
        st.tuples(st.just("trespass"), st.sampled_from(GROUPS), st.integers(0, 9)),
    ),
    max_size=8,
)


async def test_no_group_sees_another_groups_events(quick_heartbeats) -> None:
    client = quick_heartbeats

    @hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ops=operations)
    def check(ops: list[tuple[Any, ...]]) -> None:
        anyio.from_thread.run(lambda: play(client, ops))

    await anyio.to_thread.run_sync(check)


async def play(client: Any, ops: list[tuple[Any, ...]]) -> None:
    run = uuid.uuid4().hex[:8]
    groups = {g: f"{g}-{run}" for g in GROUPS}
    made: dict[str, list[str]] = {g: [] for g in GROUPS}
    for op in ops:
        kind, group = op[0], op[1]
        headers = {"X-Group-Id": groups[group]}
        mine = made[group]
        if kind == "create":
            response = await client.post(f"{API}/agents", json=agent(op[2]), headers=headers)
            mine.append(response.json()["id"])
        elif kind == "key":
            response = await client.post(f"{API}/api-keys", json={"name": f"{op[2]}_{len(mine)}_API_KEY",
                                                                   "key": "sk-tenancy-0123456789"}, headers=headers)
            assert response.status_code == 201, response.text
            mine.append(response.json()["id"])
        elif kind == "update" and mine:
            await client.put(f"{API}/agents/{mine[op[2] % len(mine)]}", json={"name": op[3]}, headers=headers)
        elif kind == "delete" and mine:
            await client.delete(f"{API}/agents/{mine[op[2] % len(mine)]}", headers=headers)
        elif kind == "trespass" and (theirs := made[GROUPS[1 - GROUPS.index(group)]]):
            target = theirs[op[2] % len(theirs)]
            assert (await client.delete(f"{API}/agents/{target}", headers=headers)).status_code == 404
    for group in GROUPS:
        own, other = groups[group], groups[GROUPS[1 - GROUPS.index(group)]]
        records = await listed(client, own, limit=5)
        assert {r["group_id"] for r in records} <= {own}
        assert {r["aggregate_id"] for r in records} == set(made[group])
        assert [envelope(r) for r in records] == log_of(core_of(client), own)
        for theirs in made[GROUPS[1 - GROUPS.index(group)]]:
            assert await listed(client, own, aggregate_id=theirs) == []
        stream = LiveSse(client, f"{API}/events/stream", headers=fresh(client, own))
        try:
            sent = backlog(stream)
        finally:
            stream.close()
        assert [e["data"] for e in sent] == records
        assert other not in json.dumps(sent) and other not in json.dumps(records)


# -- roles -------------------------------------------------------------------------------


@pytest.fixture
async def token_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(wire(settings.with_(auth_mode="token"), log_heartbeat_s=0.2))
    async with AsyncTestClient(app=app) as client:
        yield client


async def bearer(client: Any, group: str, role: str) -> dict[str, str]:
    kasal = core_of(client)
    with acting_as(Actor(group_id=group, actor="test", role="admin")):
        issued = await kasal.run(TokenService(kasal.store).issue, role, None)
    assert await kasal.run(kasal.projector.wait_sync, issued.position, 10)
    return {"Authorization": f"Bearer {issued.token}"}


async def test_auditors_read_only_the_audit_log_and_operators_read_it_too(token_client) -> None:
    client = token_client
    auditor, operator, editor = [await bearer(client, "audited", role) for role in ("auditor", "operator", "editor")]
    created = await client.post(f"{API}/agents", json=agent("Watched"), headers=editor)
    assert created.status_code == 201
    for headers in (auditor, operator, editor):
        response = await client.get(f"{API}/events", params={"type": "agent."}, headers=headers)
        assert response.status_code == 200, response.text
        assert [r["aggregate_id"] for r in response.json()["items"]] == [created.json()["id"]]
    stream = LiveSse(client, f"{API}/events/stream?after={2**63 - 2}", headers=auditor)
    try:
        assert stream.next_event() is not None and stream.status == 200
    finally:
        stream.close()
    for method, path in (("GET", "agents"), ("GET", f"agents/{created.json()['id']}"), ("GET", "executions"),
                         ("GET", "api-keys"), ("POST", "agents")):
        response = await client.request(method, f"{API}/{path}", headers=auditor,
                                        json=agent("No") if method == "POST" else None)
        assert response.status_code == 403, (method, path, response.text)
    assert (await client.get(f"{API}/events")).status_code == 401


# -- export --------------------------------------------------------------------------------


async def export(settings: Settings, group: str | None, **options: str | None) -> str:
    """``kasal events export`` as a user runs it (to stdout), in a thread: it runs its own event loop."""
    args = argparse.Namespace(action="export", group=group, since=options.get("since"),
                              until=options.get("until"), kind=options.get("kind"), type=options.get("type"))
    out = io.BytesIO()
    assert await anyio.to_thread.run_sync(lambda: run_events(args, settings, out)) == 0
    return out.getvalue().decode()


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_the_export_writes_what_the_api_serves_while_the_service_runs(client) -> None:
    await workload(client)
    settings = core_of(client).settings
    assert lines(await export(settings, "local")) == await listed(client)
    assert lines(await export(settings, OTHER, type="agent.")) == await listed(client, OTHER, type="agent.")
    middle = (await listed(client))[10]["at"]
    assert lines(await export(settings, "local", kind="execution", since=middle)) == await listed(
        client, kind="execution", since=middle)
    assert lines(await export(settings, "local", until=middle)) == await listed(client, until=middle)
    every_group = lines(await export(settings, None))
    assert [r for r in every_group if r["group_id"] == OTHER] == await listed(client, OTHER)
    assert [r["position"] for r in every_group] == sorted({r["position"] for r in every_group})


async def test_the_export_catches_up_by_itself_when_no_service_runs(settings, capsysbinary) -> None:
    async with AsyncTestClient(app=create_app(wire(settings))) as client:
        await client.post(f"{API}/agents", json=agent("Served"))
    kasal = wire(settings)
    try:
        with acting_as(Actor(group_id="local", actor="offline-writer", correlation_id="offline-1")):
            probe = Probe._create(Probe.Created, group_id="local")
            kasal.store.record(probe)
    finally:
        kasal.store.close()
    args = argparse.Namespace(action="export", group="local", since=None, until=None, kind=None, type=None)
    assert await anyio.to_thread.run_sync(COMMANDS["events"], args, settings) == 0
    captured = capsysbinary.readouterr()
    exported = lines(captured.out.decode())
    assert [r["type"] for r in exported] == ["agent.created.v1", "audit_probe.created.v1"]
    assert exported[-1]["actor"] == "offline-writer"
    assert b"exported 2 events" in captured.err


async def test_the_export_refuses_a_bad_instant(settings, capsys) -> None:
    args = argparse.Namespace(action="export", group="local", since="last tuesday", until=None, kind=None, type=None)
    assert COMMANDS["events"](args, settings) == 2
    assert "ISO 8601" in capsys.readouterr().err
