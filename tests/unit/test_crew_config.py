"""Stories about parsing and validating CrewAI-style crew configs."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.crew_config import (
    MAX_TEXT_BYTES,
    CrewReport,
    Finding,
    ParsedCrew,
    fill_placeholders,
    missing_inputs,
    parse_config_map,
    validate_crew,
)

AGENTS_YAML = """\
researcher:
  role: Senior Researcher
  goal: Find facts about {topic}
  backstory: A careful analyst.
  llm: offline/echo
  tools: []
writer:
  role: Writer
  goal: Explain {topic} to {audience}
  backstory: Writes plainly.
  llm: offline/echo
"""

TASKS_YAML = """\
research:
  description: Research {topic}
  expected_output: A short report
  agent: researcher
  context: []
write:
  description: Write it up
  expected_output: An article
  agent: writer
  context: [research]
"""


def agent(**overrides: object) -> dict:
    """A minimal valid agent definition, with overrides."""
    return {"role": "Role", "goal": "Goal", "backstory": "Story", "llm": "offline/echo", **overrides}


def task(agent_key: str | None = "a", **overrides: object) -> dict:
    """A minimal valid task definition, with overrides."""
    base = {"description": "Do it", "expected_output": "Done"}
    if agent_key is not None:
        base["agent"] = agent_key
    return {**base, **overrides}


def paths(findings: list[Finding]) -> list[str]:
    return [finding.path for finding in findings]


def messages_at(findings: list[Finding], path: str) -> list[str]:
    return [finding.message for finding in findings if finding.path == path]


def only_error(report: CrewReport) -> Finding:
    assert len(report.errors) == 1, report.errors
    return report.errors[0]


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
    assert cycles == ["context cycle: t0 -> t1 -> t2 -> t3 -> t4 -> t5 -> ... (19 more) -> t25 -> t26 -> t27 -> t28 -> t29 -> t0"]


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


# --- required fields and option types -----------------------------------------


@pytest.mark.parametrize("field", ["role", "goal", "backstory"])
def test_each_required_agent_field_must_be_present(field: str) -> None:
    definition = agent()
    del definition[field]

    error = only_error(validate_crew({"a": definition}, {"t": task()}))

    assert error == Finding(f"agents_yaml.a.{field}", "is required")


@pytest.mark.parametrize("field", ["description", "expected_output"])
def test_each_required_task_field_must_be_present(field: str) -> None:
    definition = task()
    del definition[field]

    error = only_error(validate_crew({"a": agent()}, {"t": definition}))

    assert error == Finding(f"tasks_yaml.t.{field}", "is required")


def test_required_text_must_not_be_blank_or_non_text() -> None:
    report = validate_crew({"a": agent(goal="  ", role=7)}, {"t": task(description=None)})

    assert report.errors == [
        Finding("agents_yaml.a.role", "must be a string, got the number 7"),
        Finding("agents_yaml.a.goal", "must not be empty"),
        Finding("tasks_yaml.t.description", "is required"),
    ]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("tools", "x", 'must be a list of names, got the string "x"'),
        ("allow_delegation", "yes", 'must be true or false, got the string "yes"'),
        ("max_iter", -1, "must be at least 1, got -1"),
        ("max_iter", True, "must be a whole number, got the boolean true"),
        ("max_rpm", 2.5, "must be a whole number, got the number 2.5"),
        ("temperature", 5, "must be between 0 and 2, got 5"),
        ("code_execution_mode", "fast", 'must be one of safe, unsafe, got the string "fast"'),
        ("llm", ["gpt"], "must be a string, got a list"),
    ],
)
def test_wrong_agent_option_types_are_errors(option: str, value: object, message: str) -> None:
    error = only_error(validate_crew({"a": agent(**{option: value})}, {"t": task()}))

    assert error == Finding(f"agents_yaml.a.{option}", message)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("async_execution", "no", 'must be true or false, got the string "no"'),
        ("context", "other", 'must be a list of names, got the string "other"'),
        ("output_json", 3, "must be a schema name or a JSON schema mapping, got the number 3"),
        ("config", [], "must be a mapping, got a list"),
        ("agent", 1, "must be a string, got the number 1"),
    ],
)
def test_wrong_task_option_types_are_errors(option: str, value: object, message: str) -> None:
    error = only_error(validate_crew({"a": agent()}, {"t": task(**{option: value})}))

    assert error == Finding(f"tasks_yaml.t.{option}", message)


def test_yaml_one_point_one_booleans_are_real_booleans() -> None:
    report = validate_crew("a: {role: R, goal: G, backstory: B, llm: x, allow_delegation: yes}", {"t": task()})

    assert report.valid, report.errors


def test_unknown_options_warn_with_a_suggestion_but_stay_valid() -> None:
    report = validate_crew({"a": agent(temprature=0.2, nickname="Al")}, {"t": task(priority=1)})

    assert report.valid
    assert report.warnings == [
        Finding(
            "agents_yaml.a.temprature",
            "is not a known CrewAI agent option and will be ignored (did you mean 'temperature'?)",
        ),
        Finding("agents_yaml.a.nickname", "is not a known CrewAI agent option and will be ignored"),
        Finding("tasks_yaml.t.priority", "is not a known CrewAI task option and will be ignored"),
    ]


def test_known_options_are_accepted_silently() -> None:
    extras = {"allow_delegation": True, "verbose": False, "max_iter": 5, "max_rpm": 10, "memory": True,
              "cache": False, "temperature": 0.7, "function_calling_llm": "offline/echo",
              "system_template": "", "embedder": {"provider": "x"}}
    task_extras = {"name": "T", "tools": [], "async_execution": False, "output_json": "Report",
                   "output_file": "out.md", "human_input": False, "markdown": True, "config": {}}

    report = validate_crew({"a": agent(**extras)}, {"t": task(**task_extras)})

    assert report.valid
    assert report.warnings == []


def test_null_optional_option_counts_as_unset() -> None:
    report = validate_crew("a:\n  role: R\n  goal: G\n  backstory: B\n  llm: x\n  tools:\n  max_iter:\n", {"t": task()})

    assert report.valid, report.errors


# --- which agent runs a task -------------------------------------------------


def test_task_without_agent_is_an_error_when_there_are_several_agents() -> None:
    error = only_error(validate_crew({"a": agent(), "b": agent()}, {"t": task(None), "u": task("b")}))

    assert error == Finding("tasks_yaml.t.agent", "is required when the crew has several agents; choose one of: a, b")


def test_task_without_agent_defaults_to_the_only_agent_with_a_warning() -> None:
    report = validate_crew({"solo": agent()}, {"t": task(None)})

    assert report.valid
    assert report.warnings == [Finding("tasks_yaml.t.agent", "is not set; defaulting to the only agent, solo")]
    assert report.parsed is not None
    assert report.parsed.tasks["t"]["agent"] == "solo"


def test_task_without_agent_is_fine_in_a_hierarchical_crew() -> None:
    report = validate_crew(
        {"a": agent(), "b": agent()}, {"t": task(None)}, process="hierarchical", manager_llm="offline/echo"
    )

    assert report.valid, report.errors
    assert report.warnings == []


def test_task_naming_an_unknown_agent_lists_the_known_agents() -> None:
    error = only_error(validate_crew({"writer": agent(), "editor": agent()}, {"t": task("writr"), "u": task("editor")}))

    assert error == Finding(
        "tasks_yaml.t.agent", "unknown agent 'writr' (did you mean 'writer'?); known agents: writer, editor"
    )


def test_agent_no_task_uses_is_warned_about_in_a_sequential_crew() -> None:
    report = validate_crew({"a": agent(), "idle": agent()}, {"t": task("a")})

    assert report.valid
    assert report.warnings == [Finding("agents_yaml.idle", "is not assigned to any task, so it will never run")]


# --- context -------------------------------------------------------------------


def test_context_on_an_earlier_task_is_valid() -> None:
    report = validate_crew({"a": agent()}, {"first": task(), "second": task(context=["first"])})

    assert report.valid


def test_context_entries_must_be_task_names() -> None:
    error = only_error(validate_crew({"a": agent()}, {"t": task(context=[None])}))

    assert error == Finding("tasks_yaml.t.context[0]", "must be a task name, got null")


def test_context_naming_an_unknown_task_is_an_error() -> None:
    report = validate_crew({"a": agent()}, {"first": task(), "second": task(context=["first", "frist"])})

    assert only_error(report) == Finding(
        "tasks_yaml.second.context[1]", "unknown task 'frist' (did you mean 'first'?); known tasks: first, second"
    )


def test_context_naming_the_task_itself_is_an_error() -> None:
    error = only_error(validate_crew({"a": agent()}, {"t": task(context=["t"])}))

    assert error == Finding("tasks_yaml.t.context[0]", "a task cannot be its own context (t -> t)")


def test_context_cycle_is_an_error_naming_the_cycle() -> None:
    tasks = {"a": task(context=["c"]), "b": task(context=["a"]), "c": task(context=["b"])}

    error = only_error(validate_crew({"a": agent()}, tasks))

    assert error == Finding("tasks_yaml.b.context[0]", "context cycle: a -> c -> b -> a")


def test_context_on_a_later_task_is_an_error_because_crewai_rejects_it() -> None:
    tasks = {"first": task(context=["second"]), "second": task()}

    error = only_error(validate_crew({"a": agent()}, tasks))

    assert error.path == "tasks_yaml.first.context[0]"
    assert "runs after first" in error.message


def test_duplicate_context_entry_is_a_warning() -> None:
    report = validate_crew({"a": agent()}, {"first": task(), "second": task(context=["first", "first"])})

    assert report.valid
    assert paths(report.warnings) == ["tasks_yaml.second.context[1]"]


# --- asynchronous tasks -------------------------------------------------------


def test_crew_may_not_end_with_two_async_tasks() -> None:
    tasks = {"t": task(), "u": task(async_execution=True), "v": task(async_execution=True)}

    error = only_error(validate_crew({"a": agent()}, tasks))

    assert error.path == "tasks_yaml"
    assert "at most one asynchronous task; u, v" in error.message


def test_async_task_cannot_take_context_from_a_parallel_async_task() -> None:
    tasks = {"u": task(async_execution=True), "v": task(async_execution=True, context=["u"]), "w": task()}

    error = only_error(validate_crew({"a": agent()}, tasks))

    assert error.path == "tasks_yaml.v.context[0]"
    assert "in parallel" in error.message


def test_async_tasks_separated_by_a_synchronous_task_may_share_context() -> None:
    tasks = {"u": task(async_execution=True), "s": task(), "v": task(async_execution=True, context=["u"])}

    assert validate_crew({"a": agent()}, tasks).valid


# --- tools -------------------------------------------------------------------


def test_unknown_tool_is_an_error_when_a_catalogue_is_given() -> None:
    report = validate_crew(
        {"a": agent(tools=["search", "serch"])}, {"t": task(tools=["scrape"])}, known_tools={"search", "scrape"}
    )

    assert only_error(report) == Finding(
        "agents_yaml.a.tools[1]", "unknown tool 'serch' (did you mean 'search'?); known tools: scrape, search"
    )


def test_any_tool_name_is_accepted_without_a_catalogue() -> None:
    assert validate_crew({"a": agent(tools=["anything"])}, {"t": task()}).valid


def test_disabled_tool_is_an_error_on_agents_and_tasks() -> None:
    report = validate_crew(
        {"a": agent(tools=["shell"])}, {"t": task(tools=["shell"])}, known_tools={"shell"}, disabled_tools={"shell"}
    )

    assert report.errors == [
        Finding("agents_yaml.a.tools[0]", "tool shell is disabled"),
        Finding("tasks_yaml.t.tools[0]", "tool shell is disabled"),
    ]


def test_tool_entries_must_be_names() -> None:
    error = only_error(validate_crew({"a": agent(tools=[{"name": "x"}])}, {"t": task()}))

    assert error == Finding("agents_yaml.a.tools[0]", "must be a tool name, got a mapping")


# --- models --------------------------------------------------------------------


def test_unknown_models_are_errors_when_a_catalogue_is_given() -> None:
    report = validate_crew(
        {"a": agent(llm="gpt-9", function_calling_llm="tiny")},
        {"t": task()},
        known_models={"offline/echo"},
        process="hierarchical",
        manager_llm="boss",
    )

    assert paths(report.errors) == ["manager_llm", "agents_yaml.a.llm", "agents_yaml.a.function_calling_llm"]
    assert report.errors[1].message == "unknown model 'gpt-9'; known models: offline/echo"


def test_agent_without_llm_warns_when_there_is_no_default_model() -> None:
    definition = agent()
    del definition["llm"]

    report = validate_crew({"a": definition}, {"t": task()})

    assert report.valid
    assert report.warnings == [Finding("agents_yaml.a.llm", "is not set and no default model is configured")]


def test_agent_without_llm_is_fine_with_a_default_model() -> None:
    definition = agent()
    del definition["llm"]

    report = validate_crew({"a": definition}, {"t": task()}, default_model="offline/echo")

    assert report.warnings == []


# --- process -------------------------------------------------------------------


def test_unknown_process_is_an_error() -> None:
    error = only_error(validate_crew({"a": agent()}, {"t": task()}, process="parallel"))

    assert error == Finding("process", 'must be sequential or hierarchical, got the string "parallel"')


def test_hierarchical_process_requires_a_manager_llm() -> None:
    error = only_error(validate_crew({"a": agent()}, {"t": task()}, process="hierarchical"))

    assert error == Finding("manager_llm", "is required for a hierarchical process")


def test_hierarchical_process_with_a_manager_llm_is_valid() -> None:
    report = validate_crew(
        {"a": agent()}, {"t": task()}, process="hierarchical", manager_llm="offline/echo", known_models={"offline/echo"}
    )

    assert report.valid


# --- placeholders ------------------------------------------------------------


def test_placeholders_are_sorted_unique_names_from_text_fields() -> None:
    report = validate_crew(
        {"a": agent(goal="Study {topic} for {audience}", backstory="Knows {topic}", tools=["{not_text}"])},
        {"t": task(description='Answer in JSON like {"k": 1} about {topic}', output_file="out/{year}.md")},
    )

    assert report.placeholders == ["audience", "topic", "year"]


def test_missing_inputs_from_a_report() -> None:
    report = validate_crew(AGENTS_YAML, TASKS_YAML)

    assert missing_inputs(report, {"topic": "AI"}) == ["audience"]
    assert missing_inputs(report, {"topic": "AI", "audience": None}) == []


def test_missing_inputs_from_names() -> None:
    assert missing_inputs(["b", "a", "b"], {}) == ["a", "b"]
    assert missing_inputs("topic", {}) == ["topic"]


def test_fill_placeholders_replaces_known_names_and_leaves_the_rest() -> None:
    text = 'Study {topic} for {audience}; reply as {"topic": "..."} or {} or {{topic}} }{'

    filled = fill_placeholders(text, {"topic": "AI", "n": 1})

    assert filled == 'Study AI for {audience}; reply as {"topic": "..."} or {} or {AI} }{'


def test_fill_placeholders_does_not_expand_braces_inside_values() -> None:
    assert fill_placeholders("{a} {b}", {"a": "{b}", "b": 2}) == "{b} 2"


def test_report_encodes_as_json() -> None:
    report = validate_crew("a: {role: R, goal: G, backstory: B, when: 2024-01-01}", {"t": task()})

    decoded = msgspec.json.decode(msgspec.json.encode(report))

    assert decoded["agents"] == ["a"]
    assert decoded["parsed"]["agents"]["a"]["when"] == "2024-01-01"


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
@given(config_values, config_values, st.sampled_from(["sequential", "hierarchical", "other"]) | json_values, json_values)
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
