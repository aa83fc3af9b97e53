"""The actor is explicit or nothing happens: code that never said who acts fails closed."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TypeVar

import pytest

from application.agents import AgentService
from application.store import KasalStore, memory_env
from domain.agent import Agent
from domain.context import Actor, NoActorError, acting_as, current_actor, system_actor
from tests.fakes import NoReferences

AGENT = {"name": "Scout", "role": "Scout", "goal": "Look", "backstory": "Sharp eyes"}
T = TypeVar("T")


def in_a_fresh_context(fn: Callable[[], T]) -> T:
    """Run ``fn`` where no actor was ever set (as in a new thread, or a task started at start-up)."""
    return contextvars.Context().run(fn)


def test_reading_the_actor_where_none_was_set_raises() -> None:
    with pytest.raises(NoActorError):
        in_a_fresh_context(current_actor)


def test_a_command_without_an_actor_records_nothing() -> None:
    store = KasalStore(memory_env())
    service = AgentService(store, NoReferences())
    with pytest.raises(NoActorError):
        in_a_fresh_context(lambda: service.create(dict(AGENT)))
    assert store.max_position() == 0


def test_an_aggregate_cannot_be_made_without_an_actor() -> None:
    with pytest.raises(NoActorError):
        in_a_fresh_context(lambda: Agent.new("g", dict(AGENT)))


def test_acting_as_sets_the_actor_for_its_block_only() -> None:
    def scenario() -> Actor:
        with acting_as(system_actor("recovery", "g")):
            seen = current_actor()
        with pytest.raises(NoActorError):
            current_actor()
        return seen

    seen = in_a_fresh_context(scenario)
    assert (seen.group_id, seen.actor, seen.role) == ("g", "system:recovery", "admin")
