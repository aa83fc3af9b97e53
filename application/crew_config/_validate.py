"""``validate_crew``: every rule a CrewAI crew config must satisfy before a run.

Rules that CrewAI itself enforces when a ``Crew`` is built (sequential tasks
need an agent, see also ``_ordering``) are errors here, so a config reported
valid does not fail later at kickoff.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from domain.run_options import Refusal, agent_refusals, task_refusals

from ._checker import Checker, Names, Policy
from ._model import CrewReport, ParsedCrew
from ._options import (
    AGENT_CHECKS,
    AGENT_OPTIONS,
    AGENT_REQUIRED,
    AGENT_TEXT_FIELDS,
    TASK_CHECKS,
    TASK_OPTIONS,
    TASK_REQUIRED,
    TASK_TEXT_FIELDS,
)
from ._ordering import check_async, check_context
from ._parse import load_mapping, split_entries
from ._placeholders import placeholders_in
from ._util import child, describe

AGENTS = "agents_yaml"
TASKS = "tasks_yaml"
PROCESSES = ("sequential", "hierarchical")
AGENT_SPEC = (AGENT_REQUIRED, AGENT_CHECKS, AGENT_OPTIONS, "agent")
TASK_SPEC = (TASK_REQUIRED, TASK_CHECKS, TASK_OPTIONS, "task")


def validate_crew(
    agents_yaml: object,
    tasks_yaml: object,
    *,
    known_tools: Collection[str] | None = None,
    disabled_tools: Collection[str] = (),
    blocked_tools: Mapping[str, str] | None = None,
    known_models: Collection[str] | None = None,
    blocked_models: Mapping[str, str] | None = None,
    default_model: str | None = None,
    process: str = "sequential",
    manager_llm: str | None = None,
) -> CrewReport:
    """Parse both fields and apply every rule; never raises for any input.

    ``known_tools``/``known_models`` of ``None`` mean "no catalogue to check
    against".  ``valid`` is true iff there are no errors; warnings (unknown
    options, defaulted agents, unused agents, ...) never block a run.
    ``blocked_tools``/``blocked_models`` are known tools and models that cannot run now, with the reason.
    """
    checker = Checker(_policy(known_tools, disabled_tools, known_models, default_model, process, blocked_tools,
                              blocked_models))
    _check_process(manager_llm, checker)
    agents_map = _load(agents_yaml, AGENTS, "agents", checker)
    tasks_map = _load(tasks_yaml, TASKS, "tasks", checker)
    agents = _check_agents(agents_map, checker)
    agent_keys = None if agents_map is None else Names.of(list(agents_map))
    tasks = _check_tasks(tasks_map, agent_keys, checker)
    if tasks is not None:
        check_context(tasks, checker)
        check_async(tasks, checker)
        if agent_keys is not None and not checker.policy.hierarchical:
            _check_unused_agents(agent_keys, tasks, checker)
    return _report(checker, agents_map, tasks_map, agents, tasks)


def _policy(
    known_tools: Collection[str] | None,
    disabled_tools: Collection[str] | None,
    known_models: Collection[str] | None,
    default_model: str | None,
    process: object,
    blocked_tools: Mapping[str, str] | None = None,
    blocked_models: Mapping[str, str] | None = None,
) -> Policy:
    return Policy(
        known_tools=None if known_tools is None else Names.of(known_tools, sort=True),
        disabled_tools=frozenset(disabled_tools or ()),
        blocked_tools=dict(blocked_tools or {}),
        known_models=None if known_models is None else Names.of(known_models, sort=True),
        default_model=default_model,
        blocked_models=dict(blocked_models or {}),
        process=process,
    )


def _check_process(manager_llm: object, checker: Checker) -> None:
    """Process name, and the manager model a hierarchical crew cannot run without."""
    process = checker.policy.process
    if process not in PROCESSES:
        checker.error("process", f"must be sequential or hierarchical, got {describe(process)}")
    if manager_llm is not None and not (isinstance(manager_llm, str) and manager_llm.strip()):
        checker.error("manager_llm", f"must be a model name, got {describe(manager_llm)}")
    elif manager_llm is None and checker.policy.hierarchical:
        checker.error("manager_llm", "is required for a hierarchical process")
    checker.model(manager_llm, "manager_llm")


def _load(value: object, field: str, plural: str, checker: Checker) -> dict[str, object] | None:
    """Decode one field; an empty map is an error because CrewAI needs both."""
    mapping, findings = load_mapping(value, field=field)
    checker.errors.extend(findings)
    if mapping == {} and not findings:
        checker.error(field, f"defines no {plural}; at least one is required")
    return mapping


def _check_agents(agents_map: dict[str, object] | None, checker: Checker) -> dict[str, dict[str, object]] | None:
    if agents_map is None:
        return None
    agents, findings = split_entries(agents_map, field=AGENTS)
    checker.errors.extend(findings)
    for key, entry in agents.items():
        _check_agent(key, entry, checker)
    return agents


def _check_agent(key: str, entry: dict[str, object], checker: Checker) -> None:
    path = child(AGENTS, key)
    checker.options(entry, path, AGENT_SPEC)
    checker.tools(entry, path)
    checker.model(entry.get("llm"), child(path, "llm"))
    checker.model(entry.get("function_calling_llm"), child(path, "function_calling_llm"))
    _refuse(agent_refusals(entry), path, checker)
    if entry.get("llm") is None and checker.policy.default_model is None:
        checker.warn(child(path, "llm"), "is not set and no default model is configured")
    elif entry.get("llm") is None and (model := checker.policy.default_model or "") in checker.policy.blocked_models:
        checker.error(child(path, "llm"), f"is not set, and the default model {model} cannot run: "
                                          f"{checker.policy.blocked_models[model]}")


def _refuse(refusals: list[Refusal], path: str, checker: Checker) -> None:
    """What a run could not honour is an error here too, worded as when a document is written."""
    for parts, reason in refusals:
        at = path
        for part in parts:
            at = child(at, part)
        checker.error(at, reason)


def _check_tasks(
    tasks_map: dict[str, object] | None, agent_keys: Names | None, checker: Checker
) -> dict[str, dict[str, object]] | None:
    """Per-task rules; the result carries each task's resolved (defaulted) agent."""
    if tasks_map is None:
        return None
    tasks, findings = split_entries(tasks_map, field=TASKS)
    checker.errors.extend(findings)
    return {key: _check_task(key, entry, agent_keys, checker) for key, entry in tasks.items()}


def _check_task(key: str, entry: dict[str, object], agent_keys: Names | None, checker: Checker) -> dict[str, object]:
    path = child(TASKS, key)
    checker.options(entry, path, TASK_SPEC)
    checker.tools(entry, path)
    _refuse(task_refusals(entry), path, checker)
    if agent_keys is None:
        return entry
    return _assign_agent(entry, child(path, "agent"), agent_keys, checker)


def _assign_agent(entry: dict[str, object], path: str, agent_keys: Names, checker: Checker) -> dict[str, object]:
    """Resolve ``task.agent``: it must name an agent, or be implied by a lone agent.

    A hierarchical crew's manager assigns agents itself, so there a missing
    ``agent`` is fine (CrewAI only demands it for the sequential process).
    """
    agent = entry.get("agent")
    if isinstance(agent, str) and agent.strip() and agent not in agent_keys:
        hint = checker.hint(agent, agent_keys.ordered)
        checker.error(path, f"unknown agent {agent!r}{hint}; known agents: {agent_keys.shown}")
    if agent is not None or checker.policy.hierarchical:
        return entry
    if len(agent_keys.ordered) == 1:
        only = agent_keys.ordered[0]
        checker.warn(path, f"is not set; defaulting to the only agent, {only}")
        return {**entry, "agent": only}
    if agent_keys.ordered:
        checker.error(path, f"is required when the crew has several agents; choose one of: {agent_keys.shown}")
    return entry


def _check_unused_agents(agent_keys: Names, tasks: dict[str, dict[str, object]], checker: Checker) -> None:
    """In a sequential crew an agent no task names never does anything."""
    used = {agent for entry in tasks.values() if isinstance(agent := entry.get("agent"), str)}
    for key in agent_keys.ordered:
        if key not in used:
            checker.warn(child(AGENTS, key), "is not assigned to any task, so it will never run")


def _report(
    checker: Checker,
    agents_map: dict[str, object] | None,
    tasks_map: dict[str, object] | None,
    agents: dict[str, dict[str, object]] | None,
    tasks: dict[str, dict[str, object]] | None,
) -> CrewReport:
    parsed = None if agents is None or tasks is None else ParsedCrew(agents=agents, tasks=tasks)
    return CrewReport(
        valid=not checker.errors,
        errors=checker.errors,
        warnings=checker.warnings,
        agents=list(agents_map or ()),
        tasks=list(tasks_map or ()),
        placeholders=_placeholders(agents, tasks),
        parsed=parsed,
    )


def _placeholders(agents: dict[str, dict[str, object]] | None, tasks: dict[str, dict[str, object]] | None) -> list[str]:
    """Names CrewAI interpolates: agent role/goal/backstory; task description/expected_output/output_file."""
    found: set[str] = set()
    for entries, fields in ((agents, AGENT_TEXT_FIELDS), (tasks, TASK_TEXT_FIELDS)):
        for entry in (entries or {}).values():
            for name in fields:
                value = entry.get(name)
                if isinstance(value, str):
                    found |= placeholders_in(value)
    return sorted(found)
