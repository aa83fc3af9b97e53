"""``validate_crew``: every rule a CrewAI crew config must satisfy before a run.

Rules that CrewAI itself enforces when a ``Crew`` is built (sequential tasks
need an agent, no context on future tasks, at most one trailing async task,
no async context inside a parallel async run) are errors here, so a config
reported valid does not fail later at kickoff.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from ._graph import find_cycles
from ._model import CrewReport, Finding, ParsedCrew
from ._options import (
    AGENT_CHECKS,
    AGENT_OPTIONS,
    AGENT_REQUIRED,
    AGENT_TEXT_FIELDS,
    TASK_CHECKS,
    TASK_OPTIONS,
    TASK_REQUIRED,
    TASK_TEXT_FIELDS,
    Check,
)
from ._parse import load_mapping, split_entries
from ._placeholders import placeholders_in
from ._util import child, describe, item, listing, suggestion

AGENTS = "agents_yaml"
TASKS = "tasks_yaml"
PROCESSES = ("sequential", "hierarchical")


@dataclass(frozen=True)
class _Policy:
    """What the deployment allows: tools, models and the crew process."""

    known_tools: frozenset[str] | None
    disabled_tools: frozenset[str]
    known_models: frozenset[str] | None
    default_model: str | None
    process: object

    @property
    def hierarchical(self) -> bool:
        return self.process == "hierarchical"


@dataclass
class _Checker:
    """Collects findings while the rules run, so each rule stays a small method."""

    policy: _Policy
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(Finding(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Finding(path, message))

    def options(
        self,
        entry: Mapping,
        path: str,
        spec: tuple[tuple[str, ...], dict[str, Check], frozenset[str], str],
    ) -> None:
        """Required fields present, typed fields well-typed, unknown ones flagged."""
        required, checks, known, noun = spec
        for name in required:
            if entry.get(name) is None:
                self.error(child(path, name), "is required")
        for name, value in entry.items():
            if not isinstance(name, str) or value is None:
                continue
            check = checks.get(name)
            if check is None and name not in known:
                hint = suggestion(name, known)
                self.warn(child(path, name), f"is not a known CrewAI {noun} option and will be ignored{hint}")
            problem = check(value) if check else None
            if problem:
                self.error(child(path, name), problem)

    def names(self, value: object, path: str, what: str) -> Iterator[tuple[str, str]]:
        """``(path, name)`` for the usable strings of a name list; reports the rest.

        A generator, so callers' findings about good names and ours about bad
        ones come out in list order.
        """
        if not isinstance(value, list):
            return
        for index, name in enumerate(value):
            if isinstance(name, str) and name.strip():
                yield item(path, index), name
            else:
                self.error(item(path, index), f"must be a {what} name, got {describe(name)}")

    def tools(self, entry: Mapping, path: str) -> None:
        """Each tool must exist (when a catalogue is given) and not be disabled."""
        known = self.policy.known_tools
        listed: set[str] = set()
        for tool_path, name in self.names(entry.get("tools"), child(path, "tools"), "tool"):
            if name in listed:
                self.warn(tool_path, f"tool {name} is listed more than once")
            listed.add(name)
            if name in self.policy.disabled_tools:
                self.error(tool_path, f"tool {name} is disabled")
            elif known is not None and name not in known:
                hint = suggestion(name, known)
                self.error(tool_path, f"unknown tool {name!r}{hint}; known tools: {listing(sorted(known))}")

    def model(self, value: object, path: str) -> None:
        """A model name must be in the catalogue when one is given."""
        known = self.policy.known_models
        if known is not None and isinstance(value, str) and value.strip() and value not in known:
            hint = suggestion(value, known)
            self.error(path, f"unknown model {value!r}{hint}; known models: {listing(sorted(known))}")

    def process(self, manager_llm: object) -> None:
        """Process name, and the manager model a hierarchical crew cannot run without."""
        process = self.policy.process
        if process not in PROCESSES:
            self.error("process", f"must be sequential or hierarchical, got {describe(process)}")
        if manager_llm is not None and not (isinstance(manager_llm, str) and manager_llm.strip()):
            self.error("manager_llm", f"must be a model name, got {describe(manager_llm)}")
        elif manager_llm is None and self.policy.hierarchical:
            self.error("manager_llm", "is required for a hierarchical process")
        self.model(manager_llm, "manager_llm")

    def agent(self, key: str, entry: dict) -> None:
        """All per-agent rules."""
        path = child(AGENTS, key)
        self.options(entry, path, (AGENT_REQUIRED, AGENT_CHECKS, AGENT_OPTIONS, "agent"))
        self.tools(entry, path)
        self.model(entry.get("llm"), child(path, "llm"))
        self.model(entry.get("function_calling_llm"), child(path, "function_calling_llm"))
        if entry.get("llm") is None and self.policy.default_model is None:
            self.warn(child(path, "llm"), "is not set and no default model is configured")

    def task(self, key: str, entry: dict, agent_keys: list[str] | None) -> dict:
        """All per-task rules; returns the task with its defaulted agent filled in."""
        path = child(TASKS, key)
        self.options(entry, path, (TASK_REQUIRED, TASK_CHECKS, TASK_OPTIONS, "task"))
        self.tools(entry, path)
        if agent_keys is None:
            return entry
        return self.assignment(entry, child(path, "agent"), agent_keys)

    def assignment(self, entry: dict, path: str, agent_keys: list[str]) -> dict:
        """Resolve ``task.agent``: it must name an agent, or be implied by a lone agent.

        A hierarchical crew's manager assigns agents itself, so there a
        missing ``agent`` is fine (CrewAI only demands it for sequential).
        """
        agent = entry.get("agent")
        if isinstance(agent, str) and agent.strip() and agent not in agent_keys:
            hint = suggestion(agent, agent_keys)
            self.error(path, f"unknown agent {agent!r}{hint}; known agents: {listing(agent_keys)}")
        if agent is not None or self.policy.hierarchical:
            return entry
        if len(agent_keys) == 1:
            self.warn(path, f"is not set; defaulting to the only agent, {agent_keys[0]}")
            return {**entry, "agent": agent_keys[0]}
        if agent_keys:
            self.error(path, f"is required when the crew has several agents; choose one of: {listing(agent_keys)}")
        return entry


def validate_crew(
    agents_yaml: object,
    tasks_yaml: object,
    *,
    known_tools: Collection[str] | None = None,
    disabled_tools: Collection[str] = (),
    known_models: Collection[str] | None = None,
    default_model: str | None = None,
    process: str = "sequential",
    manager_llm: str | None = None,
) -> CrewReport:
    """Parse both fields and apply every rule; never raises for any input.

    ``known_tools``/``known_models`` of ``None`` mean "no catalogue to check
    against".  ``valid`` is true iff there are no errors; warnings (unknown
    options, defaulted agents, unused agents, ...) never block a run.
    """
    policy = _Policy(
        known_tools=_frozen(known_tools),
        disabled_tools=_frozen(disabled_tools) or frozenset(),
        known_models=_frozen(known_models),
        default_model=default_model,
        process=process,
    )
    checker = _Checker(policy)
    checker.process(manager_llm)
    agents_map = _load(agents_yaml, AGENTS, "agents", checker)
    tasks_map = _load(tasks_yaml, TASKS, "tasks", checker)
    agents = _check_agents(agents_map, checker)
    tasks = _check_tasks(tasks_map, agents_map, checker)
    if tasks is not None:
        _check_context(tasks, checker)
        _check_async(tasks, checker)
        if agents_map is not None and not policy.hierarchical:
            _check_unused_agents(agents_map, tasks, checker)
    return _report(checker, agents_map, tasks_map, agents, tasks)


def _frozen(names: Collection[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


def _load(value: object, field_name: str, plural: str, checker: _Checker) -> dict[str, object] | None:
    """Decode one field; an empty map is an error because CrewAI needs both."""
    mapping, findings = load_mapping(value, field=field_name)
    checker.errors.extend(findings)
    if mapping == {} and not findings:
        checker.error(field_name, f"defines no {plural}; at least one is required")
    return mapping


def _check_agents(agents_map: dict[str, object] | None, checker: _Checker) -> dict[str, dict] | None:
    if agents_map is None:
        return None
    agents, findings = split_entries(agents_map, field=AGENTS)
    checker.errors.extend(findings)
    for key, entry in agents.items():
        checker.agent(key, entry)
    return agents


def _check_tasks(
    tasks_map: dict[str, object] | None,
    agents_map: dict[str, object] | None,
    checker: _Checker,
) -> dict[str, dict] | None:
    if tasks_map is None:
        return None
    tasks, findings = split_entries(tasks_map, field=TASKS)
    checker.errors.extend(findings)
    agent_keys = None if agents_map is None else list(agents_map)
    return {key: checker.task(key, entry, agent_keys) for key, entry in tasks.items()}


def _check_context(tasks: dict[str, dict], checker: _Checker) -> None:
    """Context entries name existing tasks, earlier ones, without cycles.

    CrewAI refuses a context task that runs later ("context dependency on a
    future task") whatever the process, so that is an error too, except for
    edges already reported as part of a cycle.
    """
    order = {key: index for index, key in enumerate(tasks)}
    edges = {key: _context_edges(key, entry, order, checker) for key, entry in tasks.items()}
    graph = {key: [target for target, _ in targets] for key, targets in edges.items()}
    in_cycle: set[tuple[str, str]] = set()
    for cycle in find_cycles(graph):
        in_cycle.update(zip(cycle, cycle[1:]))
        source, target = cycle[-2], cycle[-1]
        path = dict(edges[source])[target]
        checker.error(path, _cycle_message(cycle))
    for key, targets in edges.items():
        for target, path in targets:
            if order[target] > order[key] and (key, target) not in in_cycle:
                checker.error(path, f"refers to {target}, which runs after {key}; context may only name earlier tasks")


def _context_edges(key: str, entry: dict, order: dict[str, int], checker: _Checker) -> list[tuple[str, str]]:
    """``(target, path)`` for each resolvable context entry of one task."""
    path = child(child(TASKS, key), "context")
    edges: list[tuple[str, str]] = []
    for entry_path, target in checker.names(entry.get("context"), path, "task"):
        if target not in order:
            hint = suggestion(target, order)
            checker.error(entry_path, f"unknown task {target!r}{hint}; known tasks: {listing(order)}")
        elif any(seen == target for seen, _ in edges):
            checker.warn(entry_path, f"task {target} is listed more than once")
        else:
            edges.append((target, entry_path))
    return edges


def _cycle_message(cycle: list[str]) -> str:
    if len(cycle) == 2:
        return f"a task cannot be its own context ({cycle[0]} -> {cycle[1]})"
    return f"context cycle: {' -> '.join(cycle)}"


def _check_async(tasks: dict[str, dict], checker: _Checker) -> None:
    """CrewAI's two async rules: one trailing async task, no async-on-async context.

    Consecutive async tasks run in parallel, so one cannot consume another's
    output; and the crew's final output needs a single last task to wait on.
    """
    keys = list(tasks)
    is_async = [tasks[key].get("async_execution") is True for key in keys]
    trailing = len(keys) - next((i + 1 for i in range(len(keys) - 1, -1, -1) if not is_async[i]), 0)
    if trailing > 1:
        names = ", ".join(keys[-trailing:])
        checker.error(TASKS, f"the crew must end with at most one asynchronous task; {names} all run asynchronously at the end")
    for index, key in enumerate(keys):
        if is_async[index]:
            _check_parallel_context(keys, is_async, index, tasks[key], checker)


def _check_parallel_context(
    keys: list[str], is_async: list[bool], index: int, entry: dict, checker: _Checker
) -> None:
    """Report context on async tasks of the same parallel run (before ``index``)."""
    parallel = set()
    for earlier in range(index - 1, -1, -1):
        if not is_async[earlier]:
            break
        parallel.add(keys[earlier])
    context = entry.get("context")
    if not isinstance(context, list):
        return
    for position, target in enumerate(context):
        if isinstance(target, str) and target in parallel:
            checker.error(
                item(child(child(TASKS, keys[index]), "context"), position),
                f"{target} runs asynchronously in parallel with this task, so its output is not available; "
                "put a synchronous task between them",
            )


def _check_unused_agents(agents_map: dict[str, object], tasks: dict[str, dict], checker: _Checker) -> None:
    """In a sequential crew an agent no task names never does anything."""
    used = {agent for entry in tasks.values() if isinstance(agent := entry.get("agent"), str)}
    for key in agents_map:
        if key not in used:
            checker.warn(child(AGENTS, key), "is not assigned to any task, so it will never run")


def _report(
    checker: _Checker,
    agents_map: dict[str, object] | None,
    tasks_map: dict[str, object] | None,
    agents: dict[str, dict] | None,
    tasks: dict[str, dict] | None,
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


def _placeholders(agents: dict[str, dict] | None, tasks: dict[str, dict] | None) -> list[str]:
    """Names CrewAI will interpolate: agent role/goal/backstory, task description/expected_output/output_file."""
    found: set[str] = set()
    for entries, fields in ((agents, AGENT_TEXT_FIELDS), (tasks, TASK_TEXT_FIELDS)):
        for entry in (entries or {}).values():
            for name in fields:
                value = entry.get(name)
                if isinstance(value, str):
                    found |= placeholders_in(value)
    return sorted(found)
