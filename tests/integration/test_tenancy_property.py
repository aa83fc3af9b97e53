"""Tenancy as a property: whatever two groups do, neither sees nor touches the other's data.

Token mode, because it is the mode where the group comes from a credential
(local mode trusts ``X-Group-Id`` by design). Each example starts two fresh
groups with their own tokens, plays a random sequence of agent writes, then
checks every list and every id from both sides.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from application.tokens import TokenService
from domain.context import Actor, acting_as
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import wire

pytestmark = pytest.mark.anyio

GROUPS = (0, 1)
names = st.text(alphabet="abcdefghij XYZ", min_size=1, max_size=12).filter(str.strip)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(GROUPS), names),
        st.tuples(st.just("update"), st.sampled_from(GROUPS), st.integers(0, 9), names),
        st.tuples(st.just("delete"), st.sampled_from(GROUPS), st.integers(0, 9)),
        st.tuples(st.just("trespass"), st.sampled_from(GROUPS), st.integers(0, 9)),
    ),
    max_size=10,
)


@pytest.fixture
async def token_client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(wire(settings.with_(auth_mode="token")))) as client:
        yield client


async def bearer_for(client: AsyncTestClient[Any], group: str) -> dict[str, str]:
    core = client.app.state.kasal
    with acting_as(Actor(group_id=group, actor="test", role="admin")):
        issued = await core.run(TokenService(core.store).issue, "editor", None)
    assert await core.run(core.projector.wait_sync, issued.position, 10)
    return {"Authorization": f"Bearer {issued.token}"}


def agent(name: str) -> dict[str, str]:
    return {"name": name, "role": "r", "goal": "g", "backstory": "b"}


@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_groups_never_see_or_touch_each_others_agents(token_client, ops) -> None:
    client = token_client
    run = uuid.uuid4().hex[:8]
    headers = [await bearer_for(client, f"tenant-{run}-{g}") for g in GROUPS]
    live: list[dict[str, str]] = [{}, {}]  # per group: agent id -> name
    gone: list[set[str]] = [set(), set()]

    def pick(group: int, index: int) -> str | None:
        ids = sorted(live[group])
        return ids[index % len(ids)] if ids else None

    for op in ops:
        kind, group = op[0], op[1]
        if kind == "create":
            response = await client.post("/api/v1/agents", json=agent(op[2]), headers=headers[group])
            assert response.status_code == 201, response.text
            live[group][response.json()["id"]] = op[2]
        elif kind == "update" and (target := pick(group, op[2])):
            response = await client.put(f"/api/v1/agents/{target}", json={"name": op[3]}, headers=headers[group])
            assert response.status_code == 200, response.text
            live[group][target] = op[3]
        elif kind == "delete" and (target := pick(group, op[2])):
            assert (await client.delete(f"/api/v1/agents/{target}", headers=headers[group])).status_code == 204
            del live[group][target]
            gone[group].add(target)
        elif kind == "trespass" and (target := pick(1 - group, op[2])):
            assert (await client.delete(f"/api/v1/agents/{target}", headers=headers[group])).status_code == 404

    for group in GROUPS:
        other = 1 - group
        listing = (await client.get("/api/v1/agents", params={"limit": 100}, headers=headers[group])).json()
        assert {a["id"]: a["name"] for a in listing["items"]} == live[group]
        assert listing["total"] == len(live[group])
        for agent_id, name in live[group].items():
            mine = await client.get(f"/api/v1/agents/{agent_id}", headers=headers[group])
            assert mine.status_code == 200 and mine.json()["name"] == name
        for agent_id in gone[group]:
            assert (await client.get(f"/api/v1/agents/{agent_id}", headers=headers[group])).status_code == 404
        for agent_id in [*live[other], *gone[other]]:
            theirs = f"/api/v1/agents/{agent_id}"
            assert (await client.get(theirs, headers=headers[group])).status_code == 404
            assert (await client.put(theirs, json={"name": "x"}, headers=headers[group])).status_code == 404
            assert (await client.delete(theirs, headers=headers[group])).status_code == 404
