"""Crew config input: accepted shapes, syntax errors with positions, and size limits."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
import yaml

from application.crew_config import (
    MAX_TEXT_BYTES,
    Finding,
    ParsedCrew,
    parse_config_map,
    validate_crew,
)
from tests.unit.crew_config_helpers import AGENTS_YAML, TASKS_YAML, agent, messages_at, only_error, paths, task

# --- accepted input shapes -------------------------------------------------


def test_valid_yaml_crew_is_valid_with_keys_in_written_order() -> None:
    report = validate_crew(AGENTS_YAML, TASKS_YAML)

    assert report.valid
    assert report.errors == []
    assert report.warnings == []
    assert report.agents == ["researcher", "writer"]
    assert report.tasks == ["research", "write"]
    assert report.parsed is not None
    assert list(report.parsed.tasks) == ["research", "write"]
    assert report.parsed.agents["researcher"]["goal"] == "Find facts about {topic}"


def test_valid_json_text_is_accepted_like_yaml() -> None:
    agents = json.dumps(yaml.safe_load(AGENTS_YAML))
    tasks = json.dumps(yaml.safe_load(TASKS_YAML), indent=2)

    report = validate_crew(agents, tasks)

    assert report.valid
    assert report.parsed == validate_crew(AGENTS_YAML, TASKS_YAML).parsed


def test_already_decoded_dicts_are_accepted() -> None:
    report = validate_crew({"a": agent()}, {"t": task()})

    assert report.valid
    assert report.parsed == ParsedCrew(agents={"a": agent()}, tasks={"t": task()})


def test_yaml_flow_mapping_that_is_not_json_still_parses() -> None:
    report = validate_crew("{a: {role: R, goal: G, backstory: B, llm: x}}", "{t: {description: D, expected_output: E}}")

    assert report.valid, report.errors


def test_parse_config_map_returns_the_mapping_entries_and_reports_the_rest() -> None:
    entries, findings = parse_config_map("a: {role: R}\nb: just text\n", field="agents_yaml")

    assert entries == {"a": {"role": "R"}}
    assert findings == [
        Finding("agents_yaml.b", 'must be a mapping of agent options, got the string "just text"')
    ]


# --- syntax and shape of each field -----------------------------------------


def test_yaml_syntax_error_reports_line_and_column() -> None:
    text = "a:\n  role: R\n  goal: [unclosed\n"

    report = validate_crew(text, {"t": task()})

    error = only_error(report)
    assert error.path == "agents_yaml"
    assert "line 4, column 1" in error.message
    assert report.parsed is None


def test_json_syntax_error_reports_line_and_column() -> None:
    text = '{\n  "t": {"description": "D"\n        "expected_output": "E"}\n}'

    error = only_error(validate_crew({"a": agent()}, text))

    assert error.path == "tasks_yaml"
    assert error.message == "invalid JSON at line 3, column 9: Expecting ',' delimiter"


def test_json_that_is_only_lenient_yaml_is_accepted_as_yaml() -> None:
    text = '{"t": {"description": "D", "expected_output": "E",},}'

    report = validate_crew({"a": agent()}, text)

    assert report.valid, report.errors


def test_contract_placeholder_text_is_not_a_mapping() -> None:
    report = validate_crew("agent_configs_here", "task_configs_here")

    assert report.errors == [
        Finding(
            "agents_yaml",
            'must be a mapping of agent keys to agent definitions, got the string "agent_configs_here"',
        ),
        Finding(
            "tasks_yaml",
            'must be a mapping of task keys to task definitions, got the string "task_configs_here"',
        ),
    ]
    assert not report.valid
    assert report.parsed is None


def test_a_list_of_agents_is_not_a_mapping() -> None:
    error = only_error(validate_crew([agent()], {"t": task()}))  # type: ignore[arg-type]

    assert error.path == "agents_yaml"
    assert "got a list" in error.message


def test_missing_field_is_an_error() -> None:
    report = validate_crew(None, {"t": task()})

    assert messages_at(report.errors, "agents_yaml") == ["is missing; expected YAML or JSON text or a mapping"]


@pytest.mark.parametrize("agents", ["", "   \n# only a comment\n", "null", {}])
def test_empty_agents_map_is_an_error(agents: object) -> None:
    report = validate_crew(agents, {"t": task()})

    assert messages_at(report.errors, "agents_yaml") == ["defines no agents; at least one is required"]


def test_empty_tasks_map_is_an_error() -> None:
    report = validate_crew({"a": agent()}, "{}")

    assert messages_at(report.errors, "tasks_yaml") == ["defines no tasks; at least one is required"]


def test_entry_that_is_not_a_mapping_is_an_error() -> None:
    report = validate_crew({"a": agent(), "b": ["role", "goal"]}, {"t": task()})

    assert messages_at(report.errors, "agents_yaml.b") == ["must be a mapping of agent options, got a list"]
    assert report.agents == ["a", "b"]


def test_non_string_keys_are_errors() -> None:
    report = validate_crew("1: {role: R, goal: G, backstory: B}\na: {role: R, goal: G, backstory: B}", {"t": task()})

    assert messages_at(report.errors, "agents_yaml") == ["has the non-string key 1; keys must be strings"]
    assert report.agents == ["a"]


def test_odd_keys_are_quoted_in_paths() -> None:
    report = validate_crew({"lead researcher": agent(goal="")}, {"t": task("lead researcher")})

    assert paths(report.errors) == ['agents_yaml["lead researcher"].goal']


def test_unsafe_yaml_tags_are_rejected_not_executed() -> None:
    text = "a: !!python/object/apply:os.system ['echo pwned']"

    error = only_error(validate_crew(text, {"t": task()}))

    assert error.path == "agents_yaml"
    assert "line 1, column 4" in error.message


@pytest.mark.parametrize(
    "agents",
    ['a: {role: "\\ud800", goal: G, backstory: B}', '{"a": {"role": "\\udfff"}}', {"a": agent(role="\ud800")}],
)
def test_lone_surrogates_are_rejected_because_no_response_could_carry_them(agents: object) -> None:
    report = validate_crew(agents, {"t": task()})

    error = only_error(report)
    assert "Unicode" in error.message
    msgspec.json.encode(report)


def test_several_yaml_documents_are_rejected() -> None:
    error = only_error(validate_crew("a: {role: R}\n---\nb: {role: R}\n", {"t": task()}))

    assert "expected a single document" in error.message


# --- limits ------------------------------------------------------------------


def test_text_over_the_size_limit_is_rejected() -> None:
    text = "a:\n  role: " + "x" * MAX_TEXT_BYTES

    error = only_error(validate_crew(text, {"t": task()}))

    assert error.path == "agents_yaml"
    assert "too large" in error.message


def test_yaml_alias_bomb_is_rejected() -> None:
    levels = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]

    error = only_error(validate_crew("\n".join(levels), {"t": task()}))

    assert "anchors/aliases" in error.message


def test_merge_key_bomb_is_rejected_before_it_is_expanded() -> None:
    levels = ["m0: &m0 {k: v}"]
    levels += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}" for i in range(1, 40)]
    started = time.monotonic()

    error = only_error(validate_crew("\n".join(levels), {"t": task()}))

    assert "anchors/aliases" in error.message
    assert time.monotonic() - started < 5


def test_recursive_alias_is_rejected() -> None:
    error = only_error(validate_crew("a: &a [*a]", {"t": task()}))

    assert "anchors/aliases" in error.message


def test_ordinary_anchor_and_merge_key_use_is_accepted() -> None:
    text = """\
defaults: &defaults
  backstory: Shared story.
  llm: offline/echo
a:
  <<: *defaults
  role: R
  goal: G
"""
    report = validate_crew(text, {"t": task()})

    assert report.parsed is not None
    assert report.parsed.agents["a"]["backstory"] == "Shared story."
    assert messages_at(report.errors, "agents_yaml.defaults.role") == ["is required"]


@pytest.mark.parametrize("text", ["[" * 50_000, "a:" + " [" * 2_000, '{"a": ' * 5_000])
def test_deeply_nested_text_is_an_error_not_a_crash(text: str) -> None:
    error = only_error(validate_crew(text, {"t": task()}))

    assert error.path.startswith("agents_yaml")


def test_deeply_nested_dict_is_an_error_not_a_crash() -> None:
    nested: dict = {}
    for _ in range(500):
        nested = {"x": nested}

    report = validate_crew({"a": agent(config=nested)}, {"t": task()})

    assert len(report.errors) == 1
    assert "nested more than" in report.errors[0].message


def test_overlong_keys_are_rejected_so_paths_stay_small() -> None:
    report = validate_crew({"k" * 101: agent(), "a": agent()}, {"t": task("a")})

    assert len(report.errors) == 1
    assert report.errors[0].path == "agents_yaml"
    assert report.errors[0].message.startswith("agent keys must be at most 100 characters")
    assert report.agents == ["a"]


def test_adversarial_config_near_the_size_limit_is_validated_quickly() -> None:
    count = 5_000
    chain = "\n".join(f"t{i}: {{context: [t{i + 1}]}}" for i in range(count - 1))
    tasks = chain + f"\nt{count - 1}: {{context: [{', '.join(f't{i}' for i in range(count - 1))}]}}"
    tools = ", ".join(f"tool{i:05d}" for i in range(8_000))
    agents = f"a: {{role: r, goal: g, backstory: b, llm: m, tools: [{tools}]}}"
    started = time.monotonic()

    report = validate_crew(agents, tasks, known_tools=[f"tuol{i:05d}" for i in range(500)])

    assert time.monotonic() - started < 10
    assert sum("context cycle" in error.message for error in report.errors) == 20
    assert max(len(error.message) for error in report.errors) < 2_000


def test_very_long_cycles_are_elided_in_the_message() -> None:
    keys = [f"t{i}" for i in range(30)]
    tasks = {key: task(context=[keys[(i + 1) % 30]]) for i, key in enumerate(keys)}

    report = validate_crew({"a": agent()}, tasks)

    cycles = [error.message for error in report.errors if "cycle" in error.message]
    assert cycles == [
        "context cycle: t0 -> t1 -> t2 -> t3 -> t4 -> t5 -> ... (19 more) -> t25 -> t26 -> t27 -> t28 -> t29 -> t0"
    ]


@pytest.mark.parametrize(
    ("agents", "expected"),
    [
        (AGENTS_YAML, None),
        ("a:\n  role: R\n  goal: [unclosed\n", "line 4, column 1"),
        ("a: &a [*a]", "anchors/aliases"),
        ("- " * 5_000 + "x", "nested too deeply"),
    ],
)
def test_pure_python_yaml_loader_is_an_equivalent_fallback(
    monkeypatch: pytest.MonkeyPatch, agents: str, expected: str | None
) -> None:
    from application.crew_config import _parse

    monkeypatch.setattr(_parse, "_Loader", yaml.SafeLoader)

    report = validate_crew(agents, TASKS_YAML)

    if expected is None:
        assert report.valid, report.errors
    else:
        assert expected in only_error(report).message
