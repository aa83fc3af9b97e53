"""Every stored event has an explicit, unique, versioned topic and survives the mapper."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

import domain
from application.store import KasalStore, memory_env
from domain.agent import Agent
from domain.base import KasalAggregate, event_classes
from domain.context import Actor, acting_as


def all_aggregates() -> list[type[KasalAggregate]]:
    found: dict[str, type[KasalAggregate]] = {}
    for module_info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"domain.{module_info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, KasalAggregate) and "TOPIC" in obj.__dict__:
                found[obj.TOPIC] = obj
    return list(found.values())


def test_every_concrete_aggregate_event_has_its_own_versioned_topic() -> None:
    topics: dict[str, Any] = {}
    aggregates = all_aggregates()
    assert Agent in aggregates
    for aggregate in aggregates:
        for name, event_cls in event_classes(aggregate).items():
            if name == "Event":
                continue
            topic = event_cls.__dict__.get("TOPIC")
            assert topic, f"{aggregate.__name__}.{name} has no explicit topic"
            assert topic.endswith(".v1") and ":" not in topic
            assert topics.setdefault(topic, event_cls) is event_cls, f"topic {topic} used twice"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in {"role", "goal", "backstory"}),
        json_values,
        max_size=5,
    ),
    role=st.text(min_size=1, max_size=40).filter(str.strip),
)
def test_document_events_round_trip_through_the_stored_form(extra: dict[str, Any], role: str) -> None:
    store = KasalStore(memory_env())
    with acting_as(Actor(group_id="g", actor="someone@example.com", correlation_id="req-1")):
        agent = Agent.new("g", {**extra, "role": role, "goal": "g", "backstory": "b"})
        agent.change({"goal": "new goal", **dict(list(extra.items())[:1])})
        agent.delete()
    events = agent.collect_events()
    for event in events:
        stored = store.mapper.to_stored_event(event)
        assert stored.topic == type(event).TOPIC
        assert store.mapper.to_domain_event(stored) == event
        assert event.actor == "someone@example.com" and event.correlation_id == "req-1" and event.group_id == "g"


def test_an_aggregate_refolded_from_its_events_equals_the_original() -> None:
    store = KasalStore(memory_env())
    with acting_as(Actor(group_id="g", actor="a")):
        agent = Agent.new("g", {"role": "r", "goal": "g", "backstory": "b"}, id=uuid4())
        agent.change({"name": "Writer", "max_iter": 3})
        store.record(agent)
        again = store.repository.get(agent.id)
    assert again.fields == agent.fields and again.version == agent.version == 2
