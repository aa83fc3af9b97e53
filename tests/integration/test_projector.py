"""The projector on PostgreSQL: exactly-once pages, rebuilds, concurrent writers."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg import Cursor

from application.documents import DocumentService
from application.store import KasalStore, postgres_env
from domain.agent import Agent
from domain.context import Actor, acting_as
from projections.base import Projection
from projections.documents import DocumentProjection
from projections.engine import Projector

AGENT = {"role": "Researcher", "goal": "Find facts", "backstory": "Curious"}


class SeenPositions(Projection):
    """Records every position it is given; a second application of one fails loudly."""

    name = "t_seen"
    tables = ("t_seen",)
    ddl = "CREATE TABLE IF NOT EXISTS t_seen (position bigint PRIMARY KEY)"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def topics(self) -> frozenset[str]:
        return frozenset({Agent.Created.TOPIC, Agent.Updated.TOPIC, Agent.Deleted.TOPIC})

    def apply(self, cur: Cursor[Any], event: Any, position: int) -> None:
        if position == self.fail_at:
            self.fail_at = None
            raise RuntimeError("projector killed mid-page")
        cur.execute("INSERT INTO t_seen (position) VALUES (%s)", (position,))


def make_store(url: str) -> KasalStore:
    return KasalStore(postgres_env(url, pool_size=20, max_overflow=20))


def agents_projection() -> DocumentProjection:
    return DocumentProjection.for_aggregate(Agent, "rm_agents")


def create_agents(store: KasalStore, count: int, group: str = "g1") -> list[Any]:
    service = DocumentService(store, Agent, unique_names=False)
    with acting_as(Actor(group_id=group, actor="tester")):
        return [service.create({**AGENT, "name": f"agent {i}"}) for i in range(count)]


def table_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        order = "1" if table == "t_seen" else "1, 2"
        return conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


def test_a_page_that_fails_midway_is_applied_exactly_once_after_restart(empty_database_url: str) -> None:
    store = make_store(empty_database_url)
    create_agents(store, 30)
    crashing = Projector(empty_database_url, store, [agents_projection(), SeenPositions(fail_at=17)], page_size=25)
    with pytest.raises(RuntimeError, match="killed mid-page"):
        crashing.catch_up()
    assert table_rows(empty_database_url, "t_seen") == []  # the whole first page rolled back

    restarted = Projector(empty_database_url, store, [agents_projection(), SeenPositions()], page_size=25)
    restarted.catch_up()
    assert [row[0] for row in table_rows(empty_database_url, "t_seen")] == list(range(1, 31))
    assert len(table_rows(empty_database_url, "rm_agents")) == 30
    store.close()


def test_rebuild_gives_the_same_tables_as_live_projection(empty_database_url: str) -> None:
    store = make_store(empty_database_url)
    service = DocumentService(store, Agent, unique_names=False)
    written = create_agents(store, 20) + create_agents(store, 5, group="g2")
    with acting_as(Actor(group_id="g1", actor="editor")):
        for item in written[:10]:
            service.change(item.id, {"goal": f"goal of {item.id}", "max_iter": 7})
        for item in written[10:14]:
            service.delete(item.id)
    projector = Projector(empty_database_url, store, [agents_projection()], page_size=7)
    projector.catch_up()
    live = table_rows(empty_database_url, "rm_agents")

    read = projector.rebuild()

    assert read == store.max_position()
    assert table_rows(empty_database_url, "rm_agents") == live
    assert len(live) == 21
    store.close()


def test_sixteen_concurrent_writers_lose_no_event(empty_database_url: str) -> None:
    store = make_store(empty_database_url)
    seen = SeenPositions()
    projector = Projector(empty_database_url, store, [agents_projection(), seen], page_size=500)
    store.on_saved(projector.wake)
    projector.start()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            create_agents(store, 40, group=f"g{n}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert projector.wait_sync(store.max_position(), timeout=30)
        assert len(table_rows(empty_database_url, "t_seen")) == 16 * 40
        assert len(table_rows(empty_database_url, "rm_agents")) == 16 * 40
    finally:
        projector.stop()
        store.close()


def test_concurrent_changes_to_one_agent_are_all_kept(empty_database_url: str) -> None:
    store = make_store(empty_database_url)
    service = DocumentService(store, Agent, unique_names=False)
    (agent,) = create_agents(store, 1)
    # Fields each valid alone (the templates are not: CrewAI uses them only as a pair).
    fields = ["goal", "backstory", "role", "name", "llm", "function_calling_llm", "description", "notes"]

    def change(field: str) -> None:
        with acting_as(Actor(group_id="g1", actor=f"writer-{field}")):
            service.change(agent.id, {field: f"set by {field}"})

    threads = [threading.Thread(target=change, args=(f,)) for f in fields]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with acting_as(Actor(group_id="g1", actor="reader")):
        final = service.get(agent.id)
    assert {f: final.fields[f] for f in fields} == {f: f"set by {f}" for f in fields}
    assert final.version == 1 + len(fields)
    store.close()


def test_a_second_projector_follows_the_leader_without_writing(empty_database_url: str) -> None:
    store = make_store(empty_database_url)
    leader = Projector(empty_database_url, store, [agents_projection()], poll_interval=0.02)
    follower = Projector(empty_database_url, store, [agents_projection()], poll_interval=0.02)
    leader.start()
    create_agents(store, 1)
    assert leader.wait_sync(store.max_position(), timeout=10)  # it holds the lock now
    follower.start()
    try:
        create_agents(store, 3)
        position = store.max_position()
        leader.wake()
        assert follower.wait_sync(position, timeout=10)
        assert leader.leader and not follower.leader
    finally:
        follower.stop()
        leader.stop()
        store.close()
