"""Recording: concurrent callers each get their own outcome and log position."""

from __future__ import annotations

import threading

import pytest
from eventsourcing.persistence import IntegrityError

from application.store import KasalStore, memory_env
from domain.agent import Agent
from domain.context import Actor, acting_as

FIELDS = {"role": "r", "goal": "g", "backstory": "b"}


def test_concurrent_saves_each_get_their_own_position() -> None:
    store = KasalStore(memory_env())
    positions: list[int | None] = []
    lock = threading.Lock()

    def save(n: int) -> None:
        with acting_as(Actor("g", f"writer-{n}")):
            for _ in range(20):
                position = store.record(Agent.new("g", FIELDS))
                with lock:
                    positions.append(position)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(positions) == list(range(1, 161))  # every event once, every caller its own position


def test_a_conflicting_caller_fails_alone_while_others_commit() -> None:
    store = KasalStore(memory_env())
    with acting_as(Actor("g", "a")):
        agent = Agent.new("g", FIELDS)
        store.record(agent)
        stale_one, stale_two = store.repository.get(agent.id), store.repository.get(agent.id)
        stale_one.change({"goal": "first"})
        stale_two.change({"goal": "second"})
        store.record(stale_one)
        with pytest.raises(IntegrityError):
            store.record(stale_two)
        assert store.record(Agent.new("g", FIELDS)) == 3
        assert store.repository.get(agent.id).fields["goal"] == "first"


def test_nothing_to_save_records_nothing() -> None:
    store = KasalStore(memory_env())
    assert store.record(None) is None
    assert store.max_position() == 0
