"""Crew commands and crew debugging.

A crew keeps ``agents_yaml``/``tasks_yaml`` exactly as sent (YAML text, JSON
text or objects) and, when they decode cleanly, the decoded entries in
``agents_config``/``tasks_config`` so readers need not parse again. Names are
unique per group (``NameIndex``), so two concurrent creates of one name
cannot both win. ``agent_ids``/``task_ids`` are checked when written: an id
the group has no agent or task for (another group's, or none at all) is 422.

Debugging reports what would stop a crew from running. A crew drawn on the
canvas has no YAML, only ``agent_ids``/``task_ids``; ``canvas_config`` turns
those documents into the same config maps so one validator covers both.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from application.crew_config import CrewReport, Finding, parse_config_map, validate_crew
from application.documents import DocumentService
from application.store import KasalStore
from domain.agent import Agent
from domain.crew import Crew
from domain.task import Task

CONFIG_FIELDS = {"agents_yaml": "agents_config", "tasks_yaml": "tasks_config"}

AGENT_OPTIONS = (
    "role", "goal", "backstory", "llm", "tools", "function_calling_llm", "max_iter", "max_rpm",
    "max_execution_time", "verbose", "allow_delegation", "cache", "memory", "temperature",
    "system_template", "prompt_template", "response_template", "max_retry_limit",
    "use_system_prompt", "respect_context_window", "tool_configs",
)
TASK_OPTIONS = (
    "description", "expected_output", "tools", "async_execution", "human_input", "markdown",
    "output_json", "output_file", "config",
)


def decoded_configs(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``agents_config``/``tasks_config`` for the YAML fields present in ``fields``.

    Each is a list of ``{key, config}`` in definition order, not a mapping:
    CrewAI runs tasks in the order they are written, and a list keeps that
    order even for clients whose JSON decoders do not. A field that does not
    decode cleanly (syntax error, not a map, an entry that is not a map) gets
    ``None``: the crew is still saved, as sent.
    """
    decoded: dict[str, Any] = {}
    for source, target in CONFIG_FIELDS.items():
        if source not in fields:
            continue
        value = fields[source]
        if value is None:
            decoded[target] = None
            continue
        entries, findings = parse_config_map(value, field=source)
        decoded[target] = None if entries is None or findings else [{"key": k, "config": v} for k, v in entries.items()]
    return decoded


class CrewService(DocumentService[Crew]):
    def __init__(self, store: KasalStore) -> None:
        super().__init__(store, Crew, unique_names=True)

    def checked(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Decoded configs added; every id in ``agent_ids``/``task_ids`` must be the group's own."""
        for name, cls in (("agent_ids", Agent), ("task_ids", Task)):
            self.require_own(cls, [(f"{name}[{i}]", ref) for i, ref in enumerate(fields.get(name) or [])])
        return {**fields, **decoded_configs(fields)}


@dataclass(frozen=True, slots=True)
class Catalogue:
    """What a group may use; ``None`` means "no catalogue installed, do not check"."""

    known_tools: frozenset[str] | None = None
    disabled_tools: frozenset[str] = frozenset()
    blocked_tools: Mapping[str, str] = field(default_factory=dict)
    """Tools the group sees that cannot run now (``ToolAccess.blocked``), with why."""
    known_models: frozenset[str] | None = None
    blocked_models: Mapping[str, str] = field(default_factory=dict)
    """Models the group may name but cannot call now (a missing key), with why."""


@dataclass(frozen=True, slots=True)
class CrewDraft:
    """Everything ``/crews/debug`` checks, however it was gathered."""

    agents_yaml: Any
    tasks_yaml: Any
    process: str = "sequential"
    manager_llm: str | None = None
    model: str | None = None
    problems: tuple[Finding, ...] = ()


def debug_crew(draft: CrewDraft, catalogue: Catalogue) -> CrewReport:
    """Validate a draft; ``problems`` found while gathering it are errors too."""
    report = validate_crew(
        draft.agents_yaml,
        draft.tasks_yaml,
        known_tools=catalogue.known_tools,
        disabled_tools=catalogue.disabled_tools,
        blocked_tools=catalogue.blocked_tools,
        known_models=catalogue.known_models,
        blocked_models=catalogue.blocked_models,
        default_model=draft.model,
        process=draft.process,
        manager_llm=draft.manager_llm,
    )
    if not draft.problems:
        return report
    errors = [*draft.problems, *report.errors]
    return CrewReport(
        valid=False, errors=errors, warnings=report.warnings, agents=report.agents,
        tasks=report.tasks, placeholders=report.placeholders, parsed=report.parsed,
    )


def config_key(name: str, taken: Collection[str]) -> str:
    """A readable, unique config key for a document name (``Research Agent`` → ``research_agent``)."""
    base = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "item"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


def canvas_config(
    agent_ids: list[str],
    task_ids: list[str],
    agents: Mapping[str, dict[str, Any] | None],
    tasks: Mapping[str, dict[str, Any] | None],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[Finding]]:
    """Config maps for a canvas crew from its agent and task documents (by id).

    A task assigned to an agent outside the crew, or to a reference that never
    resolved, keeps that reference, so the validator reports it as an unknown
    agent; ids whose documents are gone are reported here.
    """
    problems: list[Finding] = []
    agent_keys: dict[str, str] = {}
    agents_map: dict[str, dict[str, Any]] = {}
    for index, agent_id in enumerate(agent_ids):
        agent = agents.get(str(agent_id))
        if agent is None:
            problems.append(Finding(f"agent_ids[{index}]", f"agent {agent_id} not found"))
            continue
        key = config_key(str(agent.get("name") or agent.get("role") or "agent"), agents_map)
        agent_keys[str(agent_id)] = key
        agents_map[key] = {k: agent[k] for k in AGENT_OPTIONS if agent.get(k) not in (None, {})}
    task_keys: dict[str, str] = {}
    found_tasks: list[tuple[str, dict[str, Any]]] = []
    for index, task_id in enumerate(task_ids):
        task = tasks.get(str(task_id))
        if task is None:
            problems.append(Finding(f"task_ids[{index}]", f"task {task_id} not found"))
            continue
        task_keys[str(task_id)] = config_key(str(task.get("name") or "task"), task_keys.values())
        found_tasks.append((str(task_id), task))
    tasks_map: dict[str, dict[str, Any]] = {}
    for task_id, task in found_tasks:
        entry = {k: task[k] for k in TASK_OPTIONS if task.get(k) not in (None, {})}
        reference = task.get("agent_id") or task.get("agent")
        if reference is not None:
            entry["agent"] = agent_keys.get(str(reference), str(reference))
        entry["context"] = [task_keys.get(str(c), str(c)) for c in task.get("context") or []]
        tasks_map[task_keys[task_id]] = entry
    return agents_map, tasks_map, problems
