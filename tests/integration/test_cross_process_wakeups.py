"""Two services on one database hear each other at once (LISTEN/NOTIFY), and a lost notification is still caught.

The services here are two ``wire(...)`` of one database, as two processes of a
deployment are: the first started leads the projector, the second follows
it. Their fallback polls are set to a minute, so a read that sees the other
one's write within milliseconds can only have been woken by a notification.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from application.store import KasalStore, postgres_env
from domain.agent import Agent
from interface.app import create_app
from interface.settings import Settings
from interface.wiring import Kasal, wire
from projections.documents import DocumentProjection
from projections.engine import Projector
from tests.integration.test_execution_streams import LiveSse, lines, running_execution
from tests.integration.test_projector import create_agents

NEVER_S = 60.0  # a fallback poll that no assertion here may wait for
OLD_POLL_S = 0.1  # what the projector polled every before notifications


@asynccontextmanager
async def service(settings: Settings) -> AsyncIterator[tuple[Kasal, Any]]:
    kasal = wire(settings)
    kasal.projector.poll_interval = NEVER_S
    async with AsyncTestClient(app=create_app(kasal)) as client:
        yield kasal, client


def agent(name: str) -> dict[str, str]:
    return {"name": name, "role": "Researcher", "goal": "Find facts", "backstory": "Curious", "llm": "offline/echo"}


async def write_then_read(writer: Any, reader: Any, name: str) -> float:
    """Create an agent through ``writer``; seconds until ``reader`` answers it with the write's position."""
    created = await writer.post("/api/v1/agents", json=agent(name))
    assert created.status_code == 201, created.text
    began = time.perf_counter()
    read = await reader.get(f"/api/v1/agents/{created.json()['id']}",
                            headers={"X-Kasal-Min-Position": created.headers["x-kasal-position"]})
    took = time.perf_counter() - began
    assert read.status_code == 200 and "x-kasal-stale" not in read.headers, read.text
    assert read.json()["name"] == name
    return took


@pytest.mark.anyio
async def test_a_write_through_one_service_is_read_through_the_other_at_once(settings: Settings) -> None:
    patient = settings.with_(read_your_writes_timeout=3.0)
    async with service(patient) as (first, a), service(patient) as (second, b):
        assert first.projector.leader and not second.projector.leader
        names = ["Ada", "Forscherin Ümit", "研究者", "ناظر", "🧪 lab", "x" * 190]
        # A write through the follower must wake the leader too (the store's NOTIFY), and then the follower.
        took = [await write_then_read(a, b, name) for name in names]
        took += [await write_then_read(b, a, f"{name} 2") for name in names]
        took += [await write_then_read(b, b, f"{name} 3") for name in names]
        for client in (a, b):
            assert (await client.get("/health")).json()["checks"]["projections"]["listening"] is True
    assert max(took) < NEVER_S / 10
    assert statistics.median(took) < OLD_POLL_S, took


@pytest.mark.anyio
async def test_log_lines_recorded_through_one_service_reach_a_stream_served_by_the_other(settings: Settings) -> None:
    async with service(settings) as (first, a), service(settings) as (second, b):
        assert first.projector.leader and not second.projector.leader
        execution_id, runner = await running_execution(a)  # ``runner`` records through the first, as a worker
        stream = LiveSse(b, f"/api/v1/execution-logs/{execution_id}/sse")
        took: list[float] = []
        try:
            for n in range(1, 9):
                began = time.perf_counter()
                await runner.progress(execution_id, lines(n))
                event = stream.next_data_event()
                took.append(time.perf_counter() - began)
                assert event is not None and (event["id"], event["data"]["message"]) == (str(n), f"line {n}")
            await runner.complete(execution_id, "done")
            final = stream.next_data_event()
            assert final is not None and (final["event"], final["data"]["status"]) == ("status", "COMPLETED")
        finally:
            stream.close()
    # A stream re-reads its projector's position each second by itself; only a notification is faster.
    assert statistics.median(took) < OLD_POLL_S * 3, took


class MuteLeader(Projector):
    """A leader whose page notifications never reach anyone (as when they are lost)."""

    def _announce(self, cur: Any, position: int) -> None:
        return None


@pytest.fixture
def store(empty_database_url: str) -> Iterator[KasalStore]:
    store = KasalStore(postgres_env(empty_database_url, pool_size=4))
    yield store
    store.close()


@pytest.fixture
def follower_and_leader(empty_database_url: str, store: KasalStore) -> Iterator[tuple[Projector, Projector]]:
    """A muted leader (started first, so it holds the lock) and a follower that polls every 0.3 s."""
    projections = [DocumentProjection.for_aggregate(Agent, "rm_agents")]
    leader = MuteLeader(empty_database_url, store, projections, poll_interval=NEVER_S)
    follower = Projector(empty_database_url, store, list(projections), poll_interval=0.3)
    store.on_saved(leader.wake)
    leader.start()
    create_agents(store, 1)
    assert leader.wait_sync(store.max_position(), timeout=10)
    follower.start()
    assert follower.notifications.wait_connected(10)
    try:
        yield follower, leader
    finally:
        follower.stop()
        leader.stop()


def test_a_lost_notification_is_caught_by_the_fallback_poll(
    follower_and_leader: tuple[Projector, Projector], store: KasalStore,
) -> None:
    follower, leader = follower_and_leader
    for count in (1, 3, 7):
        create_agents(store, count)
        position = store.max_position()
        assert leader.wait_sync(position, timeout=10)
        assert follower.wait_sync(position, timeout=3)
    assert leader.leader and not follower.leader


def test_listening_resumes_after_its_connection_is_cut(
    empty_database_url: str, store: KasalStore,
) -> None:
    """The listening connection dropped (a server restart, a proxy): the follower hears the next page."""
    projections = [DocumentProjection.for_aggregate(Agent, "rm_agents")]
    leader = Projector(empty_database_url, store, projections, poll_interval=NEVER_S)
    follower = Projector(empty_database_url, store, list(projections), poll_interval=NEVER_S)
    store.on_saved(leader.wake)
    leader.start()
    create_agents(store, 1)
    assert leader.wait_sync(store.max_position(), timeout=10)
    follower.start()
    try:
        for count in (1, 2):
            assert follower.notifications.wait_connected(10)
            cut = follower.notifications.backend_pid
            with psycopg.connect(empty_database_url, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (cut,))
            create_agents(store, count)
            assert follower.wait_sync(store.max_position(), timeout=5)
            assert follower.notifications.wait_connected(5) and follower.notifications.backend_pid != cut
    finally:
        follower.stop()
        leader.stop()
