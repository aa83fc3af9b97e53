"""Crew config properties: validation never raises, and valid crews round-trip through text."""

from __future__ import annotations

import json

import msgspec
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.crew_config import (
    CrewReport,
    ParsedCrew,
    fill_placeholders,
    validate_crew,
)

# --- properties --------------------------------------------------------------

any_text = st.text(st.characters() | st.sampled_from(["\ud800", "\udfff", "\x85", "{", "}"]), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
option_names = st.sampled_from(
    ["role", "goal", "backstory", "llm", "tools", "agent", "context", "description", "expected_output",
     "async_execution", "max_iter", "temperature", "allow_delegation", "output_json", "config"]
) | st.text(max_size=8)
crewish_maps = st.dictionaries(
    st.sampled_from(["a", "b", "t", "u"]) | st.text(max_size=6),
    st.dictionaries(option_names, json_values | st.lists(st.sampled_from(["a", "b", "t", "u"])), max_size=8)
    | json_values,
    max_size=5,
)
config_values = st.none() | st.text(max_size=300) | crewish_maps | json_values


def assert_well_formed(report: CrewReport) -> None:
    """Whatever the input, the report is coherent and serialisable."""
    assert isinstance(report, CrewReport)
    assert report.valid == (not report.errors)
    assert report.placeholders == sorted(set(report.placeholders))
    msgspec.json.encode(report)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.text(max_size=400))
def test_validation_never_raises_on_arbitrary_text(agents: str, tasks: str) -> None:
    assert_well_formed(validate_crew(agents, tasks))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config_values, config_values, st.sampled_from(["sequential", "hierarchical", "other"]) | json_values, json_values
)
def test_validation_never_raises_on_arbitrary_json_like_values(
    agents: object, tasks: object, process: object, manager_llm: object
) -> None:
    report = validate_crew(
        agents, tasks, known_tools={"a"}, known_models={"m"}, process=process, manager_llm=manager_llm  # type: ignore[arg-type]
    )

    assert_well_formed(report)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_values, config_values)
def test_validation_never_raises_on_yaml_or_json_dumps_of_arbitrary_values(agents: object, tasks: object) -> None:
    assert_well_formed(validate_crew(yaml.safe_dump(agents), json.dumps(tasks)))
    assert_well_formed(validate_crew(json.dumps(agents, ensure_ascii=False), yaml.safe_dump(tasks, allow_unicode=True)))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.dictionaries(st.text(max_size=10), json_values, max_size=3))
def test_fill_placeholders_never_raises_and_only_touches_placeholders(text: str, inputs: dict) -> None:
    filled = fill_placeholders(text, inputs)

    assert fill_placeholders(text, {}) == text
    if "{" not in text:
        assert filled == text


@st.composite
def valid_crews(draw: st.DrawFn) -> tuple[dict[str, dict], dict[str, dict]]:
    """Crews that satisfy every rule: real references, earlier-only acyclic context."""
    keys = st.text(min_size=1, max_size=12).filter(str.strip)
    prose = st.text(min_size=1, max_size=60).filter(str.strip)
    agent_keys = draw(st.lists(keys, min_size=1, max_size=4, unique=True))
    agents = {
        key: {
            "role": draw(prose),
            "goal": draw(prose),
            "backstory": draw(prose),
            "llm": draw(st.sampled_from(["offline/echo", "gpt-4o"])),
            "tools": draw(st.lists(st.sampled_from(["search", "scrape"]), unique=True)),
            "allow_delegation": draw(st.booleans()),
            "max_iter": draw(st.integers(1, 50)),
        }
        for key in agent_keys
    }
    task_keys = draw(st.lists(keys, min_size=1, max_size=5, unique=True))
    tasks: dict[str, dict] = {}
    for index, key in enumerate(task_keys):
        earlier = task_keys[:index]
        context = draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else []
        tasks[key] = {
            "description": draw(prose),
            "expected_output": draw(prose),
            "agent": draw(st.sampled_from(agent_keys)),
            "context": context,
        }
    return agents, tasks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_crews())
def test_valid_crews_round_trip_through_yaml_and_json_text(crew: tuple[dict, dict]) -> None:
    agents, tasks = crew
    options = {"known_tools": {"search", "scrape"}, "known_models": {"offline/echo", "gpt-4o"}}

    # Not allow_unicode=True: PyYAML's emitter then writes U+0085 (NEL) raw,
    # and its own scanner reads that back as a line break.
    for dump in (lambda d: yaml.safe_dump(d, sort_keys=False), json.dumps):
        report = validate_crew(dump(agents), dump(tasks), **options)

        assert report.valid, report.errors
        assert report.agents == list(agents)
        assert report.tasks == list(tasks)
        assert report.parsed == ParsedCrew(agents=agents, tasks=tasks)
