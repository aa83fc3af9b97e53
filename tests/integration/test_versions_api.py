"""Versions and time travel of every definition, through HTTP on PostgreSQL.

For each kind: ``…/{id}/versions`` lists what changed, ``…/versions/{n}`` and
``GET …?as_of=`` answer exactly what ``GET`` answered then, and a restore
brings an old version back (also from deletion) as a write of its own. Other
groups' ids are 404 everywhere, names taken since are 409, and ``If-Match``
holds. The property tests play random histories and compare every version
with what ``GET`` said at the time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from application.schedules import open_inputs
from application.tokens import TokenService
from domain.context import Actor, acting_as
from interface.app import create_app
from interface.http.common import MAX_OFFSET
from interface.http.versions import resource_at_version
from interface.settings import Settings
from interface.wiring import wire
from projections.engine import ADVISORY_LOCK_KEY
from tests.integration.execution_runs import run_to_completion, wait_status

pytestmark = pytest.mark.anyio

OTHER = {"X-Group-Id": "other"}
AGENTS = {"writer": {"role": "Writer", "goal": "Write about {topic}", "backstory": "Diligent.", "llm": "offline/echo"}}
TASKS = {"report": {"description": "Report on {topic}", "expected_output": "A report", "agent": "writer"}}
SECRET = "sk-live-very-secret-value-1234"


@dataclass(frozen=True)
class Kind:
    """How to write one kind through the API, for tests that do the same to every kind."""

    name: str
    base: str
    prefix: str
    body: Callable[[str], dict[str, Any]]
    change: Callable[[str], dict[str, Any]]
    by_key: bool = False
    unique: bool = True

    def path(self, resource: dict[str, Any]) -> str:
        return f"{self.base}/{quote(resource['key'], safe='/') if self.by_key else resource['id']}"


KINDS = {
    "agent": Kind("agent", "/api/v1/agents", "agent",
                  lambda n: {"name": n, "role": "Researcher", "goal": "Find things", "backstory": "Curious."},
                  lambda v: {"goal": v}, unique=False),
    "task": Kind("task", "/api/v1/tasks", "task",
                 lambda n: {"name": n, "description": "Look into it", "expected_output": "Notes"},
                 lambda v: {"description": v}, unique=False),
    "crew": Kind("crew", "/api/v1/crews", "crew",
                 lambda n: {"name": n, "agents_yaml": AGENTS, "tasks_yaml": TASKS},
                 lambda v: {"name": v}),
    "tool": Kind("tool", "/api/v1/tools", "tool",
                 lambda n: {"name": n, "description": "A tool", "config": {"depth": 1}},
                 lambda v: {"description": v}),
    "model": Kind("model", "/api/v1/models", "model_config",
                  lambda n: {"key": f"team/{n}", "provider": "openai", "model": "gpt-4o"},
                  lambda v: {"api_key_name": v}, by_key=True),
    "template": Kind("template", "/api/v1/templates", "template",
                     lambda n: {"name": n, "template": "Write about {topic}", "description": "d"},
                     lambda v: {"description": v}),
    "api_key": Kind("api_key", "/api/v1/api-keys", "api_key",
                    lambda n: {"name": n, "key": SECRET, "description": "first"},
                    lambda v: {"description": v}),
    "schedule": Kind("schedule", "/api/v1/scheduler/schedules", "schedule",
                     lambda n: {"name": n, "cron_expression": "0 9 * * *", "agents_yaml": AGENTS,
                                "tasks_yaml": TASKS, "inputs": {"topic": "tides"}},
                     lambda v: {"cron_expression": "30 9 * * *", "inputs": {"topic": v}}, unique=False),
}
KIND_IDS = sorted(KINDS)


async def create(client: Any, kind: Kind, name: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await client.post(kind.base, json=kind.body(name), headers=headers or {})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def change(client: Any, kind: Kind, resource: dict[str, Any], value: str) -> dict[str, Any]:
    response = await client.put(kind.path(resource), json=kind.change(value))
    assert response.status_code == 200, response.text
    return dict(response.json())


def at(resource: dict[str, Any], delta: timedelta = timedelta(0)) -> str:
    return (datetime.fromisoformat(resource["updated_at"]) + delta).isoformat()


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_each_version_answers_what_get_answered_then(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    first = await create(client, kind, "Ünïcode name ✓")
    second = await change(client, kind, first, "a changed value — with ✓")
    path = kind.path(first)
    assert (await client.get(f"{path}/versions/1")).json() == first
    assert (await client.get(f"{path}/versions/2")).json() == second
    assert (await client.get(f"{path}/versions/2")).headers["etag"] == '"2"'
    assert (await client.get(path, params={"as_of": first["updated_at"]})).json() == first
    assert (await client.get(path, params={"as_of": at(second, timedelta(seconds=5))})).json() == second
    naive = datetime.fromisoformat(first["updated_at"]).astimezone(UTC).replace(tzinfo=None).isoformat()
    assert (await client.get(path, params={"as_of": naive})).json() == first
    before = await client.get(path, params={"as_of": at(first, -timedelta(microseconds=1))})
    assert before.status_code == 404

    listing = (await client.get(f"{path}/versions")).json()
    assert [item["version"] for item in listing["items"]] == [1, 2]
    assert [item["type"] for item in listing["items"]] == [f"{kind.prefix}.created.v1", f"{kind.prefix}.updated.v1"]
    assert listing["total"] == 2 and listing["has_more"] is False and listing["limit"] == 20
    changed = listing["items"][1]["changes"]
    assert changed == {k: {"from": first[k], "to": second[k]} for k in changed}
    assert set(changed) == {k for k in second if first.get(k) != second[k]} - {"version", "updated_at", "updated_by"}
    assert listing["items"][0]["changes"]["name" if "name" in first else "key"]["from"] is None
    assert listing["items"][1]["actor"] == "local-admin"


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_a_deleted_resource_keeps_its_versions(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    first = await create(client, kind, "Short lived")
    path = kind.path(first)
    assert (await client.delete(path)).status_code == 204
    listing = (await client.get(f"{path}/versions")).json()
    assert [item["type"] for item in listing["items"]] == [f"{kind.prefix}.created.v1", f"{kind.prefix}.deleted.v1"]
    assert all(change["to"] is None for change in listing["items"][1]["changes"].values())
    assert (await client.get(f"{path}/versions/1")).json() == first
    assert (await client.get(f"{path}/versions/2")).status_code == 404
    assert (await client.get(f"{path}/versions/3")).status_code == 404
    assert (await client.get(path, params={"as_of": first["updated_at"]})).json() == first
    gone_at = listing["items"][1]["at"]
    assert (await client.get(path, params={"as_of": gone_at})).status_code == 404


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_restoring_a_version_writes_it_again_and_undeletes(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    first = await create(client, kind, "Restorable")
    await change(client, kind, first, "second thoughts")
    path = kind.path(first)

    response = await client.post(f"{path}/versions/1/restore")
    assert response.status_code == 200, response.text
    restored = response.json()
    assert restored["version"] == 3 and response.headers["etag"] == '"3"'
    assert int(response.headers["x-kasal-position"]) > 0
    bookkeeping = {"version", "updated_at", "updated_by", "next_run_at"}
    assert {k: v for k, v in restored.items() if k not in bookkeeping} == {
        k: v for k, v in first.items() if k not in bookkeeping}
    assert (await client.get(path)).json() == restored
    listing = (await client.get(f"{path}/versions")).json()
    assert listing["items"][-1]["type"] == f"{kind.prefix}.restored.v1"

    again = await client.post(f"{path}/versions/3/restore")
    assert again.status_code == 200 and again.json() == restored  # nothing to write

    assert (await client.delete(path)).status_code == 204
    back = await client.post(f"{path}/versions/2/restore")
    assert back.status_code == 200, back.text
    assert back.json()["version"] == 5 and back.json()["created_at"] == first["created_at"]
    assert (await client.get(path)).json() == back.json()
    listed = (await client.get(kind.base, params={"limit": 100})).json()["items"]
    assert first["id"] in {item["id"] for item in listed}


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_another_groups_resource_is_404_on_every_new_endpoint(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    mine = await create(client, kind, "Private")
    path = kind.path(mine)
    answers = [
        await client.get(f"{path}/versions", headers=OTHER),
        await client.get(f"{path}/versions/1", headers=OTHER),
        await client.get(path, params={"as_of": mine["updated_at"]}, headers=OTHER),
        await client.post(f"{path}/versions/1/restore", headers=OTHER),
    ]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert all(mine["created_at"] not in a.text and ("Private" not in a.text or kind.by_key) for a in answers)


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_bad_versions_and_instants_are_422(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    path = kind.path(await create(client, kind, "Validated"))
    for bad in ("0", "-1", "abc", "1.5"):
        response = await client.get(f"{path}/versions/{bad}")
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["detail"][0]["loc"] == ["path", "version"]
        assert (await client.post(f"{path}/versions/{bad}/restore")).status_code == 422
    assert (await client.get(f"{path}/versions/{10**30}")).status_code == 404
    for bad in ("yesterday", "2026-13-01T00:00:00", ""):
        response = await client.get(path, params={"as_of": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", "as_of"]


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_restore_honours_if_match(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    first = await create(client, kind, "Guarded")
    await change(client, kind, first, "moved on")
    path = kind.path(first)
    stale = await client.post(f"{path}/versions/1/restore", headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert (await client.get(path)).json()["version"] == 2
    fresh = await client.post(f"{path}/versions/1/restore", headers={"If-Match": '"2"'})
    assert fresh.status_code == 200 and fresh.json()["version"] == 3


@pytest.mark.parametrize("kind_name", [k for k in KIND_IDS if KINDS[k].unique and k != "model"])
async def test_restoring_a_name_taken_since_is_409(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    first = await create(client, kind, "Taken")
    renamed = await client.put(kind.path(first), json={"name": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    await create(client, kind, "taken")  # the old name, another case: the same name
    conflict = await client.post(f"{kind.path(first)}/versions/1/restore")
    assert conflict.status_code == 409, conflict.text
    assert (await client.get(kind.path(first))).json()["name"] == "Renamed"

    deleted = await create(client, kind, "Deleted then taken")
    await client.delete(kind.path(deleted))
    await create(client, kind, "Deleted then taken")
    assert (await client.post(f"{kind.path(deleted)}/versions/1/restore")).status_code == 409


async def test_restoring_a_model_whose_key_was_taken_is_409(client: Any) -> None:
    kind = KINDS["model"]
    first = await create(client, kind, "m1")
    await client.delete(kind.path(first))
    await create(client, kind, "m1")
    history = await client.get(f"{kind.path(first)}/versions")
    assert history.json()["total"] == 1  # the key names the model holding it now
    old = first["id"]
    restored = await client.post(f"/api/v1/models/{first['key']}/versions/1/restore")
    assert restored.status_code == 200  # the current holder, unchanged: nothing to write
    kasal = client.app.state.kasal
    with acting_as(Actor(group_id="local", actor="test", role="admin")), pytest.raises(Exception, match="already"):
        await kasal.run(kasal.services.models.restore, uuid.UUID(old), 1, None)


async def test_a_restored_api_key_decrypts_to_the_key_it_had(client: Any) -> None:
    kind = KINDS["api_key"]
    first = await create(client, kind, "OPENAI_API_KEY")
    await client.put(kind.path(first), json={"key": "sk-another-secret-5678"})
    restored = await client.post(f"{kind.path(first)}/versions/1/restore")
    assert restored.status_code == 200 and restored.json()["value"] == "Set"
    credentials = await client.app.state.kasal.services.credentials.credentials("local")
    assert credentials["OPENAI_API_KEY"] == SECRET
    everything = [restored.text, (await client.get(f"{kind.path(first)}/versions")).text,
                  (await client.get(f"{kind.path(first)}/versions/2")).text]
    assert not any(SECRET in text or "sk-another" in text or "encrypted" in text for text in everything)


async def test_a_restored_schedule_gets_its_secret_inputs_back(client: Any) -> None:
    kind = KINDS["schedule"]
    body = {**kind.body("Nightly"), "inputs": {"topic": "x", "api_token": "tok-first"}}
    first = (await client.post(kind.base, json=body)).json()
    await client.put(kind.path(first), json={"inputs": {"topic": "y", "api_token": "tok-second"}})
    restored = await client.post(f"{kind.path(first)}/versions/1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["inputs"] == {"topic": "x", "api_token": "[REDACTED]"}
    kasal = client.app.state.kasal
    schedule = kasal.store.find(uuid.UUID(first["id"]))
    assert open_inputs(kasal.secret_box, "local", schedule.id, schedule.fields)["api_token"] == "tok-first"
    assert "tok-" not in (await client.get(f"{kind.path(first)}/versions")).text


async def test_a_builtin_tool_versions_are_the_groups_own_choices(client: Any) -> None:
    tool = (await client.get("/api/v1/tools")).json()["items"][0]
    path = f"/api/v1/tools/{tool['id']}"
    off = (await client.put(path, json={"enabled": not tool["enabled"]})).json()
    config = (await client.put(path, json={"config": {"timeout": 7}})).json()
    assert (await client.get(f"{path}/versions/{tool['version']}")).json() == tool
    assert (await client.get(f"{path}/versions/{off['version']}")).json() == off
    listing = (await client.get(f"{path}/versions")).json()["items"]
    assert [item["type"] for item in listing[-2:]] == ["tool_setting.created.v1", "tool_setting.updated.v1"]
    # Another group never changed it: its history is the shared one only.
    theirs = (await client.get(f"{path}/versions", headers=OTHER)).json()
    assert theirs["total"] == tool["version"]
    restored = await client.post(f"{path}/versions/{tool['version']}/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["enabled"] == tool["enabled"] and restored.json()["config"] == tool["config"]
    assert restored.json()["version"] == config["version"] + 1
    assert (await client.get(path, headers=OTHER)).json()["enabled"] == tool["enabled"]


async def test_a_builtin_model_with_a_slash_in_its_key_has_versions(client: Any) -> None:
    path = "/api/v1/models/offline/echo"
    model = (await client.get(path)).json()
    tuned = (await client.put(path, json={"temperature": 0.25})).json()
    assert (await client.get(f"{path}/versions/{model['version']}")).json() == model
    assert (await client.get(f"{path}/versions/{tuned['version']}")).json() == tuned
    assert (await client.get(path, params={"as_of": model["updated_at"]})).json() == model
    assert (await client.get(f"{path}/versions")).json()["items"][-1]["changes"] == {
        "temperature": {"from": model["temperature"], "to": 0.25}}
    restored = await client.post(f"{path}/versions/{model['version']}/restore")
    assert restored.status_code == 200 and restored.json()["temperature"] == model["temperature"]
    assert (await client.get(f"{path}/versions/{tuned['version']}", headers=OTHER)).status_code == 404


async def test_a_builtin_template_can_be_read_back_but_not_restored(client: Any) -> None:
    template = (await client.get("/api/v1/templates", params={"limit": 100})).json()["items"][0]
    path = f"/api/v1/templates/{template['id']}"
    assert (await client.get(f"{path}/versions/1")).json() == template
    assert (await client.get(f"{path}/versions/1", headers=OTHER)).json()["id"] == template["id"]
    assert (await client.post(f"{path}/versions/1/restore")).status_code == 403


async def test_versions_are_paged_oldest_first(client: Any) -> None:
    kind = KINDS["agent"]
    agent = await create(client, kind, "Busy")
    for n in range(6):
        await change(client, kind, agent, f"goal {n}")
    page = (await client.get(f"{kind.path(agent)}/versions", params={"limit": 3, "offset": 2})).json()
    assert [item["version"] for item in page["items"]] == [3, 4, 5]
    assert page["total"] == 7 and page["has_more"] is True and page["offset"] == 2
    assert page["items"][0]["changes"] == {"goal": {"from": "goal 0", "to": "goal 1"}}
    last = (await client.get(f"{kind.path(agent)}/versions", params={"limit": 3, "offset": 6})).json()
    assert [item["version"] for item in last["items"]] == [7] and last["has_more"] is False
    assert (await client.get(f"{kind.path(agent)}/versions", params={"limit": 0})).status_code == 422
    assert (await client.get(f"{kind.path(agent)}/versions", params={"offset": -1})).status_code == 422


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_every_kinds_versions_take_the_largest_offset_and_refuse_others(client: Any, kind_name: str) -> None:
    kind = KINDS[kind_name]
    path = f"{kind.path(await create(client, kind, 'Paged'))}/versions"
    largest = await client.get(path, params={"offset": MAX_OFFSET, "limit": 100})
    assert largest.status_code == 200 and largest.json()["items"] == [] and largest.json()["total"] == 1
    bad = ({"offset": MAX_OFFSET + 1}, {"offset": "-1"}, {"limit": 101}, {"limit": "x"}, {"offset": "9" * 5000})
    for params in bad:
        response = await client.get(path, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


async def test_resource_at_version_is_the_body_get_answered(client: Any) -> None:
    kasal = client.app.state.kasal
    bodies = {}
    for name, kind in KINDS.items():
        first = await create(client, kind, "Helper")
        bodies[name] = (kind, first, await change(client, kind, first, "v2"))
    with acting_as(Actor(group_id="local", actor="test", role="admin")):
        for name, (_, first, second) in bodies.items():
            resource_id = uuid.UUID(first["id"])
            assert await resource_at_version(kasal, name, resource_id, 1) == first, name
            assert await resource_at_version(kasal, name, resource_id, 2) == second, name
            assert await resource_at_version(kasal, name, resource_id, 3) is None
    with acting_as(Actor(group_id="other", actor="test", role="admin")):
        for name, (_, first, _) in bodies.items():
            assert await resource_at_version(kasal, name, uuid.UUID(first["id"]), 1) is None
    with acting_as(Actor(group_id="local", actor="test", role="admin")):
        assert await resource_at_version(kasal, "task", uuid.UUID(bodies["agent"][1]["id"]), 1) is None
        assert await resource_at_version(kasal, "agent", uuid.uuid4(), 1) is None


async def test_an_execution_as_of_an_instant_has_the_status_it_had(client: Any) -> None:
    crew = await create(client, KINDS["crew"], "Runner")
    started = await client.post("/api/v1/executions", json={"crew_id": crew["id"], "inputs": {"topic": "moon"}})
    assert started.status_code == 201, started.text
    execution_id = started.json()["execution_id"]
    pending = (await client.get(f"/api/v1/executions/{execution_id}")).json()
    assert (await client.post(f"/api/v1/executions/{execution_id}/cancel")).status_code == 200
    now = (await client.get(f"/api/v1/executions/{execution_id}")).json()
    assert now["status"] == "CANCELLED"
    path = f"/api/v1/executions/{execution_id}"
    assert (await client.get(path, params={"as_of": pending["updated_at"]})).json() == pending
    assert (await client.get(path, params={"as_of": at(now, timedelta(hours=1))})).json() == now
    assert (await client.get(path, params={"as_of": at(pending, -timedelta(seconds=1))})).status_code == 404
    assert (await client.get(path, params={"as_of": now["updated_at"]}, headers=OTHER)).status_code == 404
    assert (await client.get(path, params={"as_of": "soon"})).status_code == 422


@pytest.mark.parametrize("result", ['{"answer": 42}', "a long result " * 20_000], ids=["short", "long"])
async def test_a_finished_execution_as_of_each_instant(client: Any, result: str) -> None:
    execution_id, _ = await run_to_completion(client, result)
    path = f"/api/v1/executions/{execution_id}"
    now = await wait_status(client, execution_id, "COMPLETED")
    assert now["result"] is not None
    assert (await client.get(path, params={"as_of": at(now, timedelta(days=1))})).json() == now
    just_before = (await client.get(path, params={"as_of": at(now, -timedelta(microseconds=1))})).json()
    assert just_before["status"] == "RUNNING" and just_before["result"] is None
    assert just_before["usage"] == now["usage"] and just_before["completed_at"] is None


@pytest.fixture
def held_projector(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The projector's lock, taken: an app started now answers writes before its read models have them."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("kind_name", KIND_IDS)
async def test_an_undelete_answered_while_read_models_lag_is_what_reads_show_later(
    settings: Settings, held_projector: psycopg.Connection[Any], kind_name: str,
) -> None:
    kind = KINDS[kind_name]
    async with serving(settings) as (_, client):
        first = await create(client, kind, "Lagging")
        assert (await client.delete(kind.path(first))).status_code == 204
    held_projector.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    async with serving(dataclasses.replace(settings, read_your_writes_timeout=0.2)) as (kasal, client):
        restored = await client.post(f"{kind.path(first)}/versions/1/restore")
        assert restored.status_code == 200 and restored.headers.get("x-kasal-stale") == "true", restored.text
        held_projector.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
        assert await kasal.projector.wait_for(int(restored.headers["x-kasal-position"]), 30)
        later = await client.get(kind.path(first))
        assert later.json() == restored.json() and later.json()["version"] == 3
        assert later.headers["etag"] == restored.headers["etag"]


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    kasal = wire(settings)
    async with AsyncTestClient(app=create_app(kasal)) as client:
        yield kasal, client


# -- property tests -------------------------------------------------------------------------------

names = st.text(alphabet="abcXYZ é✓", min_size=1, max_size=8).filter(str.strip)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.integers(0, 2), names),
        st.tuples(st.just("delete"), st.integers(0, 2)),
        st.tuples(st.just("restore"), st.integers(0, 2), st.integers(1, 8)),
    ),
    min_size=1, max_size=16,
)


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_names=st.lists(names, min_size=3, max_size=3), ops=steps, kind_name=st.sampled_from(["crew", "agent"]))
async def test_every_version_equals_what_get_answered_after_that_change(
    client: Any, first_names: list[str], ops: list[Any], kind_name: str,
) -> None:
    kind = KINDS[kind_name]
    run = uuid.uuid4().hex[:6]
    answers: dict[str, list[dict[str, Any] | None]] = {}
    slots: list[str] = []
    for name in first_names:
        response = await client.post(kind.base, json=kind.body(f"{run} {name}"))
        if response.status_code == 201:  # a crew's name may be another's, ignoring case
            slots.append(response.json()["id"])
            answers[response.json()["id"]] = [response.json()]
    for op in ops:
        target = slots[op[1] % len(slots)]
        if op[0] == "update":
            response = await client.put(f"{kind.base}/{target}", json={"name": f"{run} {op[2]}"})
            if response.status_code == 200:
                if response.json()["version"] > len(answers[target]):
                    answers[target].append(response.json())
            else:
                assert response.status_code in (404, 409), response.text
        elif op[0] == "delete":
            response = await client.delete(f"{kind.base}/{target}")
            if response.status_code == 204:
                answers[target].append(None)
            else:
                assert response.status_code == 404
        else:
            response = await client.post(f"{kind.base}/{target}/versions/{op[2]}/restore")
            if response.status_code == 200 and response.json()["version"] > len(answers[target]):
                answers[target].append(response.json())
            else:
                assert response.status_code in (200, 404, 409), (op, response.text)
    for resource_id, history in answers.items():
        listing = (await client.get(f"{kind.base}/{resource_id}/versions", params={"limit": 100})).json()
        assert listing["total"] == len(history)
        for n, answered in enumerate(history, start=1):
            version = await client.get(f"{kind.base}/{resource_id}/versions/{n}")
            instant = listing["items"][n - 1]["at"]
            past = await client.get(f"{kind.base}/{resource_id}", params={"as_of": instant})
            if answered is None:
                assert version.status_code == 404 and past.status_code == 404
            else:
                assert version.json() == answered and past.json() == answered
                assert answered["updated_at"] == instant
        current = await client.get(f"{kind.base}/{resource_id}")
        assert current.json() == history[-1] if history[-1] is not None else current.status_code == 404


@pytest.fixture
async def token_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as client:
        yield client


async def bearer(client: AsyncTestClient[Any], group: str, role: str = "editor") -> dict[str, str]:
    core = client.app.state.kasal
    with acting_as(Actor(group_id=group, actor="test", role="admin")):
        issued = await core.run(TokenService(core.store).issue, role, None)
    assert await core.run(core.projector.wait_sync, issued.position, 10)
    return {"Authorization": f"Bearer {issued.token}"}


tenancy_ops = st.lists(
    st.tuples(st.sampled_from(["create", "update", "delete", "restore"]), st.integers(0, 1), st.integers(0, 3)),
    min_size=1, max_size=10,
)


@hypothesis_settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=tenancy_ops)
async def test_two_groups_never_see_each_others_versions(token_client: Any, ops: list[Any]) -> None:
    client = token_client
    run = uuid.uuid4().hex[:8]
    headers = [await bearer(client, f"versions-{run}-{g}") for g in (0, 1)]
    owned: list[list[str]] = [[], []]
    for op, group, index in ops:
        mine = owned[group]
        if op == "create" or not mine:
            response = await client.post("/api/v1/agents", json=KINDS["agent"].body(f"a{index}"),
                                         headers=headers[group])
            mine.append(response.json()["id"])
            continue
        target = mine[index % len(mine)]
        if op == "update":
            await client.put(f"/api/v1/agents/{target}", json={"goal": f"g{index}"}, headers=headers[group])
        elif op == "delete":
            await client.delete(f"/api/v1/agents/{target}", headers=headers[group])
        else:
            await client.post(f"/api/v1/agents/{target}/versions/1/restore", headers=headers[group])
    for group in (0, 1):
        other = headers[1 - group]
        for target in owned[group]:
            assert (await client.get(f"/api/v1/agents/{target}/versions", headers=headers[group])).status_code == 200
            answers = [
                await client.get(f"/api/v1/agents/{target}/versions", headers=other),
                await client.get(f"/api/v1/agents/{target}/versions/1", headers=other),
                await client.get(f"/api/v1/agents/{target}", params={"as_of": "2100-01-01T00:00:00Z"}, headers=other),
                await client.post(f"/api/v1/agents/{target}/versions/1/restore", headers=other),
            ]
            assert [a.status_code for a in answers] == [404, 404, 404, 404]


async def test_auditors_read_versions_but_cannot_restore(token_client: Any) -> None:
    client = token_client
    editor = await bearer(client, "audited")
    auditor = await bearer(client, "audited", role="auditor")
    agent = (await client.post("/api/v1/agents", json=KINDS["agent"].body("Watched"), headers=editor)).json()
    path = f"/api/v1/agents/{agent['id']}"
    assert (await client.get(f"{path}/versions", headers=auditor)).status_code == 200
    assert (await client.get(f"{path}/versions/1", headers=auditor)).json() == agent
    assert (await client.post(f"{path}/versions/1/restore", headers=auditor)).status_code == 403
    model = (await client.get("/api/v1/models", headers=editor)).json()["items"][0]
    model_path = f"/api/v1/models/{model['key']}"
    assert (await client.get(f"{model_path}/versions", headers=auditor)).status_code == 200
    assert (await client.get(model_path, headers=auditor)).status_code == 403
    assert (await client.post(f"{model_path}/versions/1/restore", headers=editor)).status_code == 403
