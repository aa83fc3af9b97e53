"""Restoring a document: the domain's ``Restored`` event, and the read-model fold of it.

Every document kind records its own ``<prefix>.restored.v1``; a restore makes
an earlier version's fields current (undeleting), records nothing when they
already are, and survives the store. The projection's fold of any history
with restores equals a replay of the aggregate, prefix by prefix, so answers
folded from the log agree with the table.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.documents import DocumentService
from application.store import KasalStore, memory_env
from domain.agent import Agent
from domain.api_key import ApiKey
from domain.base import Document
from domain.context import Actor, acting_as
from domain.crew import Crew
from domain.errors import ConflictError, InvalidError, NotFoundError
from domain.model_config import ModelConfig, ModelSetting
from domain.schedule import Schedule
from domain.task import Task
from domain.template import Template
from domain.tool import Tool, ToolSetting
from projections.documents import DocumentProjection

FIELDS = {"name": "Writer", "role": "r", "goal": "first goal", "backstory": "b"}
ACTOR = Actor("g", "someone")


def test_every_document_kind_has_its_own_restored_topic() -> None:
    kinds: list[tuple[type[Document], str]] = [
        (Agent, "agent"), (Task, "task"), (Crew, "crew"), (Tool, "tool"), (ToolSetting, "tool_setting"),
        (ModelConfig, "model_config"), (ModelSetting, "model_setting"), (Template, "template"),
        (ApiKey, "api_key"), (Schedule, "schedule"),
    ]
    topics = {kind.Restored.TOPIC for kind, _ in kinds}
    assert topics == {f"{prefix}.restored.v1" for _, prefix in kinds}
    assert all(kind.Restored is not Document.Restored for kind, _ in kinds)


def test_a_restore_brings_back_an_earlier_versions_fields_and_undeletes() -> None:
    store = KasalStore(memory_env())
    with acting_as(ACTOR):
        agent = Agent.new("g", FIELDS)
        store.record(agent)
    with acting_as(Actor("g", "editor")):
        agent.change({"goal": "second goal"})
        agent.delete()
        store.record(agent)
        past = store.repository.get(agent.id, version=1)
        assert agent.restore(past.fields, from_version=1) is True
        store.record(agent)
    loaded = store.repository.get(agent.id)
    assert loaded.deleted is False and loaded.fields == past.fields and loaded.version == 4
    restored = store.history(agent.id)[-1]
    assert type(restored).TOPIC == "agent.restored.v1"
    assert restored.from_version == 1 and restored.actor == "editor"
    assert restored.created_by == "someone" and restored.created_at == store.history(agent.id)[0].timestamp


def test_restoring_what_is_current_records_nothing() -> None:
    with acting_as(ACTOR):
        agent = Agent.new("g", FIELDS)
        assert agent.restore(dict(agent.fields), from_version=1) is False
        assert len(agent.collect_events()) == 1


def test_a_restore_reorders_a_mapping_when_the_old_order_differs() -> None:
    with acting_as(ACTOR):
        fields = {**FIELDS, "tools": ["a", "b"], "tool_configs": {"a": {"n": 1}, "b": {"n": 2}}}
        agent = Agent.new("g", fields)
        agent.change({"tool_configs": {"b": {"n": 2}, "a": {"n": 1}}})
        assert agent.restore(fields, from_version=1) is True


def test_a_restore_checks_the_fields_against_todays_rules() -> None:
    with acting_as(ACTOR):
        agent = Agent.new("g", FIELDS)
        with pytest.raises(InvalidError):
            agent.restore({"name": "no role or goal"}, from_version=1)


def test_the_service_restores_names_and_refuses_taken_ones() -> None:
    store = KasalStore(memory_env())
    crews = DocumentService(store, Crew, unique_names=True)
    crew_fields = {"agents_yaml": {"a": {"role": "r", "goal": "g", "backstory": "b"}},
                   "tasks_yaml": {"t": {"description": "d", "expected_output": "o", "agent": "a"}}}
    with acting_as(ACTOR):
        first = crews.create({**crew_fields, "name": "Alpha"})
        crews.change(first.id, {"name": "Beta"})
        restored = crews.restore(first.id, 1)
        assert crews.get(first.id).name == "Alpha" and restored.version == 3
        crews.create({**crew_fields, "name": "Beta"})  # Beta was released by the restore
        with pytest.raises(ConflictError):
            crews.restore(first.id, 2)
        with pytest.raises(NotFoundError):
            crews.restore(first.id, 9)
    with acting_as(Actor("other", "intruder")), pytest.raises(NotFoundError):
        crews.restore(first.id, 1)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("change"), st.sampled_from(["goal", "role", "name"]), st.text(min_size=1, max_size=5)),
        st.tuples(st.just("delete")),
        st.tuples(st.just("restore"), st.integers(1, 10)),
    ),
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(steps=steps)
def test_the_fold_of_every_prefix_equals_the_replayed_document(steps: list[Any]) -> None:
    store = KasalStore(memory_env())
    projection = DocumentProjection.for_aggregate(Agent, "rm_agents")
    with acting_as(ACTOR):
        agent = Agent.new("g", FIELDS)
        store.record(agent)
        for step in steps:
            try:
                if step[0] == "change":
                    agent.change({step[1]: step[2]})
                elif step[0] == "delete":
                    agent.delete()
                elif 1 <= step[1] <= agent.version and not store.repository.get(agent.id, version=step[1]).deleted:
                    agent.restore(store.repository.get(agent.id, version=step[1]).fields, from_version=step[1])
            except NotFoundError:
                continue  # a change or delete of a deleted document
            except InvalidError:
                continue  # a change the rules refuse (a blank goal): nothing is recorded
            store.record(agent)
    events = store.history(agent.id)
    rows = list(projection.rows_of(events))
    for n, row in enumerate(rows, start=1):
        replayed = store.repository.get(agent.id, version=n)
        assert row == projection.row_of(events[:n])
        if replayed.deleted:
            assert row is None
        else:
            assert row is not None and row["doc"] == replayed.fields and row["version"] == n
            assert row["created_at"] == events[0].timestamp and row["created_by"] == "someone"
