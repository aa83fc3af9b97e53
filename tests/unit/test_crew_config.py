"""Crew config rules: required fields, agents, context, async tasks, tools, models, process, placeholders."""

from __future__ import annotations

import msgspec
import pytest

from application.crew_config import (
    Finding,
    fill_placeholders,
    missing_inputs,
    validate_crew,
)
from tests.unit.crew_config_helpers import AGENTS_YAML, TASKS_YAML, agent, only_error, paths, task

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
              "system_template": "", "embedder": None}
    task_extras = {"name": "T", "tools": [], "async_execution": False, "output_json": {"properties": {}},
                   "output_file": None, "human_input": False, "markdown": True, "config": {}}

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
