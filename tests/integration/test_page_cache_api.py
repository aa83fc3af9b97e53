"""List pages come from the page cache only while the read models have not moved, in any process."""

from __future__ import annotations

from typing import Any

import pytest

from interface.settings import Settings
from tests.integration.test_cross_process_wakeups import agent, service

pytestmark = pytest.mark.anyio
OTHER = {"X-Group-Id": "other-apiary"}


def names(page: Any) -> list[str]:
    return [item["name"] for item in page.json()["items"]]


async def test_a_list_is_rendered_once_until_something_is_written(settings: Settings) -> None:
    async with service(settings) as (kasal, client):
        assert (await client.post("/api/v1/agents", json=agent("Ada"))).status_code == 201
        first = await client.get("/api/v1/agents")
        misses = kasal.pages.misses
        again = await client.get("/api/v1/agents")
        assert (again.content, kasal.pages.misses) == (first.content, misses)
        assert again.headers["content-type"].startswith("application/json")

        assert (await client.post("/api/v1/agents", json=agent("Grace"))).status_code == 201
        after = await client.get("/api/v1/agents")
        other = await client.get("/api/v1/agents", headers=OTHER)

    assert names(after) == ["Grace", "Ada"] and after.json()["total"] == 2
    assert names(other) == [] and other.json()["total"] == 0
    assert kasal.pages.misses > misses


async def test_a_page_cached_in_one_process_gives_way_to_a_write_in_another(settings: Settings) -> None:
    async with service(settings) as (_, a), service(settings) as (second, b):
        assert names(await b.get("/api/v1/agents?limit=5")) == []
        assert names(await b.get("/api/v1/agents?limit=5")) == []  # kept
        created = await a.post("/api/v1/agents", json=agent("Lovelace"))

        read = await b.get("/api/v1/agents?limit=5",
                           headers={"X-Kasal-Min-Position": created.headers["x-kasal-position"]})

    assert read.status_code == 200 and "x-kasal-stale" not in read.headers
    assert names(read) == ["Lovelace"]
    assert second.pages.hits >= 1


async def test_a_write_answered_by_one_process_is_in_the_next_page_of_any_other(settings: Settings) -> None:
    """No header needed: each process's kept page is checked against the read models' own position,
    whichever process leads the projector and however late the others hear of its pages."""
    async with service(settings) as (first, a), service(settings) as (second, b):
        assert first.projector.leader != second.projector.leader
        for n in range(15):
            for writer, reader in ((a, b), (b, a)):
                await reader.get("/api/v1/agents?limit=100")  # the reader keeps a page
                created = await writer.post("/api/v1/agents", json=agent(f"Agent {n} via {id(writer)}"))
                assert created.status_code == 201
                listed = await reader.get("/api/v1/agents?limit=100")
                assert created.json()["id"] in [item["id"] for item in listed.json()["items"]]


async def test_catalogue_pages_follow_a_groups_settings_made_in_another_process(settings: Settings) -> None:
    async with service(settings) as (_, a), service(settings) as (_, b):
        tools = (await b.get("/api/v1/tools")).json()["items"]
        (calculator,) = [tool for tool in tools if tool["name"] == "calculator"]
        models_before = (await b.get("/api/v1/models/enabled")).json()["total"]
        assert calculator["enabled"] and (await b.get("/api/v1/tools/enabled")).status_code == 200

        toggled = await a.patch(f"/api/v1/tools/{calculator['id']}/toggle-enabled")
        model = await a.patch("/api/v1/models/gpt-4/toggle")
        position = max(int(toggled.headers["x-kasal-position"]), int(model.headers["x-kasal-position"]))
        fresh = {"X-Kasal-Min-Position": str(position)}
        enabled = (await b.get("/api/v1/tools/enabled", headers=fresh)).json()["items"]
        listed = (await b.get("/api/v1/tools", headers=fresh)).json()["items"]
        other = (await b.get("/api/v1/tools", headers=OTHER)).json()["items"]
        models_after = (await b.get("/api/v1/models/enabled", headers=fresh)).json()["total"]

    assert "calculator" not in [tool["name"] for tool in enabled]
    assert [tool["enabled"] for tool in listed if tool["name"] == "calculator"] == [False]
    assert [tool["enabled"] for tool in other if tool["name"] == "calculator"] == [True]
    assert models_after == models_before - 1
