"""Idempotency keys: claimed in the save of the first events a request causes, and request fingerprints."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.agents import AgentService
from application.idempotency import Claim, claiming
from application.store import KasalStore, memory_env, retry_on_conflict
from domain.agent import Agent
from domain.context import Actor, acting_as
from domain.idempotency import IdempotencyKey, KeyClaimedError, valid_key
from interface.http.idempotency import fingerprint
from tests.fakes import FakeClock

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class NoTasks:
    def tasks_assigned_to(self, group_id: str, agent_id: Any) -> list[Any]:
        return []


def claim(clock: FakeClock, key: str = "k", print_: str = "f1", group: str = "g") -> Claim:
    return Claim(group_id=group, key=key, fingerprint=print_, method="POST", path="/api/v1/agents",
                 claimed_by="runner-1", now=clock.now)


def new_agent(name: str = "A") -> Agent:
    return Agent.new("g", {"name": name, "role": "r", "goal": "g", "backstory": "b"})


@pytest.fixture
def store() -> KasalStore:
    return KasalStore(memory_env())


@pytest.fixture(autouse=True)
def actor() -> Any:
    with acting_as(Actor(group_id="g", actor="tester")):
        yield


def test_the_first_save_claims_the_key_and_records_what_it_wrote(store: KasalStore) -> None:
    clock = FakeClock(NOW)
    with claiming(claim(clock)) as mine:
        agent = new_agent()
        store.record(agent)
        store.record(new_agent("B"))  # a later save of the same request claims nothing more
    key = store.find(mine.key_id)
    assert isinstance(key, IdempotencyKey) and key.version == 1 == mine.version
    assert key.saved == [{"topic": "agent.v1", "id": str(agent.id), "version": 1}]
    assert key.claimed_at == NOW and key.claimed_by == "runner-1" and key.fingerprint == "f1"


def test_a_save_that_writes_nothing_claims_nothing(store: KasalStore) -> None:
    with claiming(claim(FakeClock(NOW))) as mine:
        assert store.record(None) is None
    assert store.find(mine.key_id) is None and not mine.taken


def test_a_second_request_with_the_key_writes_nothing_and_does_not_retry(store: KasalStore) -> None:
    clock = FakeClock(NOW)
    with claiming(claim(clock)):
        store.record(new_agent())
    tried: list[Agent] = []

    def attempt() -> None:
        tried.append(new_agent("Second"))
        store.record(tried[-1])

    with claiming(claim(clock, print_="f2")) as theirs, pytest.raises(KeyClaimedError):
        retry_on_conflict(attempt)
    assert theirs.lost and not theirs.taken and len(tried) == 1
    assert store.find(tried[0].id) is None


def test_a_request_that_loses_the_race_at_the_version_check_ends_as_a_claimed_key(store: KasalStore) -> None:
    """Both looked the key up before either saved: the store lets one win; the loser's retry stops at once."""
    clock = FakeClock(NOW)
    service = AgentService(store, NoTasks())
    winner = IdempotencyKey.claim("g", "k", claim(clock).request([new_agent()]))
    calls = 0
    real_find = store.find

    def find_after_the_winner(aggregate_id: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # our look-up sees no key; the winner commits right after it
            store.save(winner)
            return None
        return real_find(aggregate_id)

    store.find = find_after_the_winner  # type: ignore[method-assign]
    with claiming(claim(clock)) as mine, pytest.raises(KeyClaimedError):
        service.create({"name": "Loser", "role": "r", "goal": "g", "backstory": "b"})
    assert mine.lost and calls == 2


def test_a_key_older_than_a_day_is_claimed_again(store: KasalStore) -> None:
    clock = FakeClock(NOW)
    with claiming(claim(clock)):
        store.record(new_agent())
    clock.advance(hours=23, minutes=59)
    with claiming(claim(clock, print_="f2")), pytest.raises(KeyClaimedError):
        store.record(new_agent())
    clock.advance(minutes=1)
    with claiming(claim(clock, print_="f2")) as later:
        store.record(new_agent())
    key = store.find(later.key_id)
    assert key.version == 2 == later.version and key.fingerprint == "f2" and key.answer is None
    assert key.claimed_at == NOW + timedelta(days=1)


def test_keys_are_per_group(store: KasalStore) -> None:
    assert IdempotencyKey.id_for("a", "k") != IdempotencyKey.id_for("b", "k")
    assert IdempotencyKey.id_for("a", "k") != IdempotencyKey.id_for("a", "K")


@given(st.text(max_size=300))
def test_a_valid_key_is_1_to_255_printable_ascii_characters(key: str) -> None:
    assert valid_key(key) == (1 <= len(key) <= 255 and all(0x20 <= ord(c) <= 0x7E for c in key))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@given(json_values, st.integers(), st.booleans())
def test_reordered_keys_and_other_spacing_are_the_same_request(value: Any, seed: int, ascii_only: bool) -> None:
    body = json.dumps(value).encode()
    other = json.dumps(shuffled(value, random.Random(seed)), indent=2, ensure_ascii=ascii_only).encode()
    assert fingerprint("POST", "/api/v1/agents", b"", body) == fingerprint("POST", "/api/v1/agents", b"", other)


@given(json_values, json_values)
def test_another_value_is_another_request(one: Any, two: Any) -> None:
    same = fingerprint("POST", "/p", b"", json.dumps(one).encode()) == fingerprint("POST", "/p", b"",
                                                                                  json.dumps(two).encode())
    assert same == (json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True))


def test_method_path_query_and_raw_bodies_count() -> None:
    base = fingerprint("POST", "/api/v1/agents", b"", b"{}")
    assert base != fingerprint("POST", "/api/v1/tasks", b"", b"{}")
    assert base != fingerprint("POST", "/api/v1/agents", b"x=1", b"{}")
    assert fingerprint("POST", "/p", b"", b"not json") != fingerprint("POST", "/p", b"", b"not  json")
    assert fingerprint("POST", "/p", b"", b"[" * 10_000) == fingerprint("POST", "/p", b"", b"[" * 10_000)
    assert fingerprint("POST", "/p", b"", b"1.0") != fingerprint("POST", "/p", b"", b"1.00")
