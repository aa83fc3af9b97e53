"""Hypothesis strategies for Kasal REST API request bodies.

Everything here produces bodies a conforming server must accept (201), except
``invalid_bodies``, which pairs each refused body with the status and the words
the refusal must carry. Texts avoid ``{`` and ``}`` unless they are meant as
placeholders, and input names avoid the secret-looking words (``key``,
``token``, ``secret``, ``password``) whose values a server hides, so what is
sent is what a read answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from hypothesis import strategies as st

OFFLINE_MODEL = "offline/echo"
PLACEHOLDERS = ("topic", "audience", "region", "year", "tone", "language")
"""Input names the generated texts use as ``{placeholders}``."""
ZONES = ("UTC", "Europe/Berlin", "Europe/London", "America/New_York", "America/Sao_Paulo", "Asia/Tokyo",
         "Asia/Kolkata", "Australia/Sydney", "Africa/Nairobi")
"""IANA zones every tz database has."""

_WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éüßçøæ"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

words = st.text(alphabet=_WORD_CHARS, min_size=1, max_size=10)
"""One word: letters (some beyond ASCII) and digits."""


def texts(max_words: int = 6) -> st.SearchStrategy[str]:
    """A short sentence: words joined by single spaces (servers may trim or fold white space)."""
    return st.lists(words, min_size=1, max_size=max_words).map(" ".join)


names = st.lists(st.text(alphabet=_WORD_CHARS, min_size=1, max_size=12), min_size=1, max_size=3).map(" ".join)
"""A resource name: one to three words."""


def placeholder_texts() -> st.SearchStrategy[str]:
    """A sentence with zero to two ``{placeholders}`` from ``PLACEHOLDERS`` among its words."""
    token = st.one_of(words, words, st.sampled_from(PLACEHOLDERS).map(lambda name: "{" + name + "}"))
    return st.lists(token, min_size=1, max_size=6).map(" ".join)


def placeholders_in(*values: Any) -> list[str]:
    """The ``{placeholder}`` names in the given texts (nested lists and mappings too), in order, once each."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.extend(name for name in _PLACEHOLDER.findall(value) if name not in found)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    for value in values:
        walk(value)
    return found


def inputs_for(*values: Any) -> st.SearchStrategy[dict[str, str]]:
    """Inputs giving every placeholder of the values a non-empty text."""
    wanted = placeholders_in(*values)
    return st.fixed_dictionaries({name: texts(3) for name in wanted})


# -- definitions -------------------------------------------------------------


def agent_bodies(llm: str = OFFLINE_MODEL) -> st.SearchStrategy[dict[str, Any]]:
    """``POST /agents`` bodies: the required texts and a few settings every run honours."""
    return st.fixed_dictionaries(
        {"name": names, "role": texts(), "goal": placeholder_texts(), "backstory": texts(), "llm": st.just(llm)},
        optional={
            "allow_delegation": st.booleans(),
            "verbose": st.booleans(),
            "cache": st.booleans(),
            "max_iter": st.integers(1, 50),
            "max_rpm": st.integers(1, 600),
            "max_retry_limit": st.integers(0, 5),
            "temperature": st.sampled_from([0.0, 0.2, 0.5, 1.0]),
            "tools": st.just([]),
        },
    )


def agent_changes() -> st.SearchStrategy[dict[str, Any]]:
    """``PUT /agents/{id}`` bodies: one to three of an agent's texts and settings."""
    return st.fixed_dictionaries(
        {},
        optional={"name": names, "role": texts(), "goal": placeholder_texts(), "backstory": texts(),
                  "verbose": st.booleans(), "max_iter": st.integers(1, 50)},
    ).filter(bool)


def task_bodies(agent_ids: Sequence[str] = (), task_ids: Sequence[str] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """``POST /tasks`` bodies; ``agent_id`` one of ``agent_ids`` and ``context`` some of ``task_ids`` when given."""
    optional: dict[str, st.SearchStrategy[Any]] = {"markdown": st.booleans(), "tools": st.just([])}
    if agent_ids:
        optional["agent_id"] = st.sampled_from(list(agent_ids))
    if task_ids:
        optional["context"] = st.lists(st.sampled_from(list(task_ids)), unique=True, max_size=3)
    return st.fixed_dictionaries(
        {"name": names, "description": placeholder_texts(), "expected_output": texts()}, optional=optional,
    )


def task_changes() -> st.SearchStrategy[dict[str, Any]]:
    """``PUT /tasks/{id}`` (partial) bodies."""
    return st.fixed_dictionaries(
        {}, optional={"name": names, "description": placeholder_texts(), "expected_output": texts(),
                      "markdown": st.booleans()},
    ).filter(bool)


def crew_bodies(agent_ids: Sequence[str] = (), task_ids: Sequence[str] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """``POST /crews`` bodies over existing agents and tasks (some of each, in a drawn order).

    Crew names are unique in a group: callers that create several crews add
    something unique to ``name`` (``KasalMachine`` appends ``#<n>``).
    """
    return st.fixed_dictionaries(
        {
            "name": names,
            "agent_ids": st.lists(st.sampled_from(list(agent_ids)), unique=True) if agent_ids else st.just([]),
            "task_ids": st.lists(st.sampled_from(list(task_ids)), unique=True) if task_ids else st.just([]),
        },
        optional={"description": texts(), "process": st.just("sequential"), "verbose": st.booleans(),
                  "planning": st.just(False), "memory": st.just(False)},
    )


def crew_changes() -> st.SearchStrategy[dict[str, Any]]:
    """``PUT /crews/{id}`` bodies that keep the crew's name."""
    return st.fixed_dictionaries({"description": texts()}, optional={"verbose": st.booleans()})


class TaskPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A task of a ``CrewPlan``: its body, and its agent and context as indexes into the plan."""

    body: dict[str, Any]
    agent: int
    context: tuple[int, ...] = ()


class CrewPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Agents, tasks and a crew whose references agree, before any of them has an id.

    Create the agents, then the tasks in order (``task_body`` names the
    agent and earlier tasks by the ids already made), then the crew.
    """

    agents: list[dict[str, Any]]
    tasks: list[TaskPlan]
    crew: dict[str, Any]

    def task_body(self, index: int, agent_ids: Sequence[str], task_ids: Sequence[str]) -> dict[str, Any]:
        plan = self.tasks[index]
        body = {**plan.body, "agent_id": agent_ids[plan.agent]}
        if plan.context:
            body["context"] = [task_ids[i] for i in plan.context]
        return body

    def crew_body(self, agent_ids: Sequence[str], task_ids: Sequence[str]) -> dict[str, Any]:
        return {**self.crew, "agent_ids": list(agent_ids), "task_ids": list(task_ids)}

    def inputs(self) -> dict[str, str]:
        """A value for every placeholder the plan's texts use (for running or scheduling its crew)."""
        return {name: f"value of {name}" for name in placeholders_in(self.agents, [t.body for t in self.tasks])}


@st.composite
def crew_plans(draw: st.DrawFn, max_agents: int = 3, max_tasks: int = 4) -> CrewPlan:
    """A crew with one to ``max_agents`` agents and one to ``max_tasks`` tasks, each task
    assigned to one of the agents and taking context only from tasks before it."""
    agents = draw(st.lists(agent_bodies(), min_size=1, max_size=max_agents))
    count = draw(st.integers(1, max_tasks))
    tasks = []
    for index in range(count):
        body = draw(st.fixed_dictionaries({"name": names, "description": placeholder_texts(),
                                           "expected_output": texts()}))
        context = draw(st.lists(st.integers(0, index - 1), unique=True, max_size=2)) if index else []
        tasks.append(TaskPlan(body=body, agent=draw(st.integers(0, len(agents) - 1)), context=tuple(sorted(context))))
    crew = draw(st.fixed_dictionaries({"name": names}, optional={"description": texts(),
                                                                  "process": st.just("sequential")}))
    return CrewPlan(agents=agents, tasks=tasks, crew=crew)


def template_bodies() -> st.SearchStrategy[dict[str, Any]]:
    """``POST /templates`` bodies whose ``variables`` are exactly the template's placeholders.

    Template names are unique in a group (see ``crew_bodies``).
    """

    def with_variables(parts: tuple[str, str]) -> dict[str, Any]:
        name, template = parts
        return {"name": name, "template": template, "variables": placeholders_in(template)}

    return st.tuples(names, placeholder_texts()).map(with_variables)


def template_changes() -> st.SearchStrategy[dict[str, Any]]:
    """``PUT /templates/{id}`` bodies that keep the template's name."""
    return st.fixed_dictionaries({}, optional={"description": texts(), "template": placeholder_texts()}).filter(bool)


def crons() -> st.SearchStrategy[str]:
    """Valid five-field cron expressions: fixed or stepped minutes and hours, some weekdays."""
    minute = st.one_of(st.integers(0, 59).map(str), st.sampled_from(["*/5", "*/15", "0,30"]))
    hour = st.one_of(st.integers(0, 23).map(str), st.sampled_from(["*", "*/2", "9-17"]))
    day = st.sampled_from(["*", "1", "15", "1-7"])
    month = st.sampled_from(["*", "1", "6", "*/3"])
    weekday = st.sampled_from(["*", "1-5", "0", "6", "1,3,5"])
    return st.tuples(minute, hour, day, month, weekday).map(" ".join)


def schedule_bodies(crew_id: str, inputs: Mapping[str, str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """``POST /scheduler/schedules`` bodies for a saved crew; ``inputs`` must fill the crew's placeholders."""
    return st.fixed_dictionaries(
        {"name": names, "cron_expression": crons(), "crew_id": st.just(crew_id),
         "inputs": st.just(dict(inputs or {}))},
        optional={"timezone": st.sampled_from(ZONES), "enabled": st.booleans()},
    )


@st.composite
def execution_bodies(draw: st.DrawFn, max_agents: int = 2, max_tasks: int = 3) -> dict[str, Any]:
    """``POST /executions`` bodies with an inline crew on ``offline/echo`` and inputs for every placeholder."""
    agent_keys = draw(st.lists(st.sampled_from(["researcher", "writer", "editor", "critic"]), min_size=1,
                               max_size=max_agents, unique=True))
    agents = {key: {"role": draw(texts(3)), "goal": draw(placeholder_texts()), "backstory": draw(texts()),
                    "llm": OFFLINE_MODEL} for key in agent_keys}
    task_keys = draw(st.lists(st.sampled_from(["research", "outline", "draft", "review"]), min_size=1,
                              max_size=max_tasks, unique=True))
    tasks = {key: {"description": draw(placeholder_texts()), "expected_output": draw(texts(3)),
                   "agent": draw(st.sampled_from(agent_keys))} for key in task_keys}
    return {"agents_yaml": agents, "tasks_yaml": tasks, "inputs": draw(inputs_for(agents, tasks))}


# -- refusals -----------------------------------------------------------------


class InvalidBody(msgspec.Struct, frozen=True, kw_only=True):
    """A body a server must refuse: where to send it, the status, and what the answer must say."""

    resource: str
    """Path under ``/api/v1`` to POST to (``agents``, ``tasks``, ``crews``, ``templates``, ``executions``)."""
    body: Any
    status: int
    mentions: str
    """Text the error body must contain (case-insensitive): the field or the reason."""
    why: str

    def matches(self, status: int, text: str) -> bool:
        """Whether an answer is the refusal this body must get."""
        return status == self.status and self.mentions.casefold() in text.casefold()


def _without(field: str) -> Any:
    return lambda body: {k: v for k, v in body.items() if k != field}


def _with(field: str, value: Any) -> Any:
    return lambda body: {**body, field: value}


def invalid_bodies() -> st.SearchStrategy[InvalidBody]:
    """Bodies each refused for one reason, built from a valid body so that only that reason applies."""

    def refused(resource: str, valid: st.SearchStrategy[Any], change: Any, status: int, mentions: str,
                why: str) -> st.SearchStrategy[InvalidBody]:
        return valid.map(lambda body: InvalidBody(resource=resource, body=change(body), status=status,
                                                  mentions=mentions, why=why))

    agents, tasks, templates = agent_bodies(), task_bodies(), template_bodies()
    crews, executions = crew_bodies(), execution_bodies()
    return st.one_of(
        refused("agents", agents, _without("role"), 422, "role", "an agent needs a role"),
        refused("agents", agents, _without("goal"), 422, "goal", "an agent needs a goal"),
        refused("agents", agents, _with("allow_code_execution", True), 422, "sandbox",
                "code execution needs a sandbox"),
        refused("agents", agents, _with("max_iter", "many"), 422, "max_iter", "max_iter is a number"),
        refused("tasks", tasks, _without("description"), 422, "description", "a task needs a description"),
        refused("tasks", tasks, _with("human_input", True), 422, "human_input", "no person waits at the terminal"),
        refused("tasks", tasks, _with("output_file", "/tmp/out.txt"), 422, "output_file",
                "a task may not write on the server"),
        refused("crews", crews, _with("memory", True), 422, "memory", "crew memory needs an embedding service"),
        refused("crews", crews, _without("name"), 422, "name", "a crew needs a name"),
        refused("templates", templates, _without("template"), 422, "template", "a template needs its text"),
        refused("executions", executions, lambda body: {**body, "inputs": {}}, 422, "placeholder",
                "every placeholder needs an input")
        .filter(lambda invalid: bool(placeholders_in(invalid.body["agents_yaml"], invalid.body["tasks_yaml"]))),
        refused("executions", executions, _without("tasks_yaml"), 422, "", "an inline crew needs its tasks"),
        refused("scheduler/schedules", st.just({"name": "nightly", "crew_id": "00000000-0000-0000-0000-000000000000"}),
                _with("cron_expression", "61 * * * *"), 422, "cron", "minutes run 0-59"),
        refused("scheduler/schedules", st.just({"name": "nightly", "cron_expression": "0 9 * * *",
                                                "crew_id": "00000000-0000-0000-0000-000000000000"}),
                _with("timezone", "Mars/Olympus_Mons"), 422, "timezone", "not an IANA zone"),
    )
