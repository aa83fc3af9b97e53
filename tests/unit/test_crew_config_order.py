"""The order of a crew's mappings, without a database: parsing, events, and changes.

Tasks run in the order they are written, so an agents/tasks mapping must come
back in that order from every step a crew goes through before a read model.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from application.crew_config import parse_config_map, validate_crew
from application.crews import CrewService
from application.store import KasalStore, memory_env
from domain.base import same_value
from domain.context import Actor, acting_as
from domain.crew import Crew
from tests.ordered_crews import FORMS, OrderedCrew, in_order, ordered_crews, written


@settings(max_examples=150, deadline=None)
@given(crew=ordered_crews(), form=st.sampled_from(FORMS))
def test_every_form_of_a_crew_decodes_in_the_order_written(crew: OrderedCrew, form: str) -> None:
    tasks_yaml, agents_yaml = written(crew.tasks, form), written(crew.agents, form)

    entries, findings = parse_config_map(tasks_yaml, field="tasks_yaml")
    report = validate_crew(agents_yaml, tasks_yaml, default_model="offline/echo")

    assert findings == [] and entries is not None and in_order(entries) == in_order(crew.tasks)
    assert report.valid, report.errors
    assert report.tasks == list(crew.tasks) and report.agents == list(crew.agents)
    assert report.parsed is not None and in_order(report.parsed.tasks) == in_order(crew.tasks)


@settings(max_examples=50, deadline=None)
@given(crew=ordered_crews())
def test_the_event_log_gives_mappings_back_in_the_order_written(crew: OrderedCrew) -> None:
    store = KasalStore(memory_env())
    with acting_as(Actor(group_id="g", actor="tester")):
        CrewService(store).create({"name": "Ordered", "agents_yaml": crew.agents, "tasks_yaml": crew.tasks})

    stored = store.recorder.select_notifications(start=1, limit=10)
    created = [e for e in map(store.mapper.to_domain_event, stored) if isinstance(e, Crew.Created)]

    assert len(created) == 1
    assert in_order(created[0].fields["tasks_yaml"]) == in_order(crew.tasks)
    assert in_order(created[0].fields["agents_yaml"]) == in_order(crew.agents)


def test_a_change_that_only_reorders_the_tasks_is_recorded() -> None:
    tasks = {"research": {"description": "Research", "expected_output": "Facts", "agent": "a"},
             "write": {"description": "Write", "expected_output": "Text", "agent": "a"}}
    reordered = {"write": tasks["write"], "research": tasks["research"]}
    store = KasalStore(memory_env())
    crews = CrewService(store)
    with acting_as(Actor(group_id="g", actor="tester")):
        crew_id = crews.create({"name": "Crew", "agents_yaml": {"a": {"role": "r"}}, "tasks_yaml": tasks}).id
        written_change = crews.change(crew_id, {"tasks_yaml": reordered})
        crew = crews.get(crew_id)

    assert written_change.version == 2
    assert list(crew.fields["tasks_yaml"]) == ["write", "research"]
    assert [entry["key"] for entry in crew.fields["tasks_config"]] == ["write", "research"]


@given(mapping=st.dictionaries(st.text(max_size=3), st.integers(), min_size=2, max_size=5))
def test_mappings_are_the_same_value_only_in_the_same_order(mapping: dict[str, int]) -> None:
    backwards = dict(reversed(list(mapping.items())))

    assert same_value(mapping, dict(mapping)) and same_value([mapping], [dict(mapping)])
    assert not same_value(mapping, backwards) and not same_value({"k": [mapping]}, {"k": [backwards]})
    assert mapping == backwards  # what plain equality would have let through
