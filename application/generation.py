"""AI generation of agents, tasks and crews from a description.

A prompt (from the template store, filled by the caller) goes to the model;
the reply is parsed leniently (``lenient_json``), checked against the shape
asked for, and on any problem the model is asked once more with the problem
appended to the conversation. A reply that is still unusable is the model's
failure, answered as ``ModelOutputError`` (502): the request itself was fine.

Tools a model names are kept only when the group may use them, spelled as
the catalogue spells them. Saving a crew goes through the ordinary agent,
task and crew services, so the events are the same as if a person had
created each definition, with the caller as actor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from application import offline_generation
from application.agents import AgentService
from application.crews import CrewService
from application.lenient_json import LenientJsonError, extract_object
from application.ports import ModelClient, ModelProviderError
from application.store import retry_on_conflict
from application.tasks import TaskService
from domain.agent import Agent
from domain.crew import Crew
from domain.errors import ConflictError
from domain.model_config import ModelCall
from domain.name_index import NameIndex
from domain.task import Task

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
MAX_AGENTS = 12
MAX_TASKS = 24
ATTEMPTS = 2
"""The first answer, and one more after telling the model what was wrong."""

SYSTEM_PROMPT = (
    "You generate configurations for CrewAI agents and tasks. "
    "Reply with exactly one JSON object and nothing else."
)


class GeneratedAgent(msgspec.Struct, kw_only=True):
    name: Name
    role: Text
    goal: Text
    backstory: Text
    tools: list[str] = []


class GeneratedTask(msgspec.Struct, kw_only=True):
    name: Name
    description: Text
    expected_output: Text
    tools: list[str] = []


class GeneratedCrewTask(GeneratedTask, kw_only=True):
    """A task of a generated crew: ``agent`` is an agent's name, ``context`` earlier tasks' names."""

    agent: str = ""
    context: list[str] = []


class GeneratedCrew(msgspec.Struct, kw_only=True):
    agents: Annotated[list[GeneratedAgent], msgspec.Meta(min_length=1, max_length=MAX_AGENTS)]
    tasks: Annotated[list[GeneratedCrewTask], msgspec.Meta(min_length=1, max_length=MAX_TASKS)]


class ModelOutputError(ModelProviderError):
    """The model's answers stayed unusable after the retry (502: the request was fine)."""

    type = "model_output_invalid"


class Unusable(ValueError):
    """Why one answer cannot be used, worded for the model to read and correct."""


T = TypeVar("T")


@dataclass(frozen=True)
class Kind(Generic[T]):
    """One thing that can be generated: its template, its shape, its extra rules, and what the
    offline models answer for it (JSON derived from the description and the allowed tools)."""

    noun: str
    template: str
    struct: type[T]
    wrapper: str
    rules: Callable[[T, Collection[str]], T]
    offline_reply: Callable[[str, Iterable[str]], str]


@dataclass(frozen=True)
class Generation:
    """One generation call: the filled prompt, the model and keys, and the tools allowed."""

    model: str
    prompt: str
    credentials: Mapping[str, str]
    allowed_tools: Collection[str]
    mock_response: str | None = None
    call: ModelCall | None = None


def normalised(name: str) -> str:
    """Names compare ignoring case, spaces, hyphens and underscores (as task references do)."""
    return re.sub(r"[\s_\-]+", "", name.casefold())


def allowed_only(names: Sequence[str], allowed: Collection[str]) -> list[str]:
    """The names that are allowed tools, spelled as the catalogue does, once each, in order."""
    spelled = {normalised(name): name for name in allowed}
    kept: list[str] = []
    for name in names:
        tool = spelled.get(normalised(name))
        if tool is not None and tool not in kept:
            kept.append(tool)
    return kept


def _tidy(value: Any) -> Any:
    """Trim strings, and accept the tool lists models write as text or as objects."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    if not isinstance(value, dict):
        return value
    tidied = {key: _tidy(item) for key, item in value.items()}
    for key in ("tools", "context"):
        entries = tidied.get(key)
        if entries is None:
            tidied.pop(key, None)
        elif isinstance(entries, str):
            tidied[key] = [part.strip() for part in entries.split(",") if part.strip()]
        elif isinstance(entries, list):
            tidied[key] = [e.get("name", "") if isinstance(e, dict) else e for e in entries]
    return tidied


def _agent_rules(agent: GeneratedAgent, allowed: Collection[str]) -> GeneratedAgent:
    return msgspec.structs.replace(agent, tools=allowed_only(agent.tools, allowed))


def _task_rules(task: GeneratedTask, allowed: Collection[str]) -> GeneratedTask:
    return msgspec.structs.replace(task, tools=allowed_only(task.tools, allowed))


def _unique(names: list[str], noun: str) -> None:
    seen: dict[str, str] = {}
    for name in names:
        if normalised(name) in seen:
            raise Unusable(f"two {noun}s are named '{name}'; every {noun} needs its own name")
        seen[normalised(name)] = name


def _crew_rules(crew: GeneratedCrew, allowed: Collection[str]) -> GeneratedCrew:
    """Names are unique, each task's agent is one of the agents, context names earlier tasks."""
    _unique([a.name for a in crew.agents], "agent")
    _unique([t.name for t in crew.tasks], "task")
    agents = {normalised(a.name): a.name for a in crew.agents}
    roles = {normalised(a.role): a.name for a in crew.agents}
    earlier: dict[str, str] = {}
    tasks: list[GeneratedCrewTask] = []
    for task in crew.tasks:
        agent = agents.get(normalised(task.agent)) or roles.get(normalised(task.agent))
        if agent is None and not task.agent and len(crew.agents) == 1:
            agent = crew.agents[0].name
        if agent is None:
            raise Unusable(f"task '{task.name}' names agent '{task.agent}', which is not one of the agents: "
                           + ", ".join(repr(a.name) for a in crew.agents))
        context: list[str] = []
        for reference in task.context:
            name = earlier.get(normalised(reference))
            if name is None:
                raise Unusable(f"task '{task.name}' lists '{reference}' in its context, which is not an "
                               "earlier task; context may only name tasks that come before it")
            context.append(name)
        tasks.append(msgspec.structs.replace(task, agent=agent, context=context,
                                             tools=allowed_only(task.tools, allowed)))
        earlier[normalised(task.name)] = task.name
    return GeneratedCrew(agents=[_agent_rules(a, allowed) for a in crew.agents], tasks=tasks)


AGENT: Kind[GeneratedAgent] = Kind("agent", "generate_agent", GeneratedAgent, "agent", _agent_rules,
                                   offline_generation.agent_reply)
TASK: Kind[GeneratedTask] = Kind("task", "generate_task", GeneratedTask, "task", _task_rules,
                                 offline_generation.task_reply)
CREW: Kind[GeneratedCrew] = Kind("crew", "generate_crew", GeneratedCrew, "crew", _crew_rules,
                                 offline_generation.crew_reply)


def read_answer(kind: Kind[T], text: str, allowed_tools: Collection[str]) -> T:
    """The generated thing in one model answer, or ``Unusable`` saying what is wrong with it."""
    try:
        found = extract_object(text)
    except LenientJsonError as exc:
        raise Unusable(str(exc)) from None
    inner = found.get(kind.wrapper)
    if isinstance(inner, dict) and len(found) == 1:
        found = inner  # {"agent": {...}} for {...}
    try:
        value = msgspec.convert(_tidy(found), kind.struct, strict=False)
    except msgspec.ValidationError as exc:
        raise Unusable(f"the JSON object does not have the shape asked for: {exc}") from None
    return kind.rules(value, allowed_tools)


def retry_message(problem: str) -> str:
    return (f"That answer could not be used: {problem}. Answer again with ONE JSON object in exactly "
            "the shape asked for, and nothing else.")


class Generator:
    """Asks a model for one agent, task or crew and returns it checked."""

    def __init__(self, client: ModelClient, attempts: int = ATTEMPTS) -> None:
        self.client = client
        self.attempts = attempts

    def generate(self, kind: Kind[T], call: Generation) -> T:
        messages: list[dict[str, str]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": call.prompt},
        ]
        problem = "no answer"
        for _ in range(self.attempts):
            answer = self.client.complete(call.model, messages, call.credentials, mock_response=call.mock_response,
                                          call=call.call)
            try:
                return read_answer(kind, answer.text, call.allowed_tools)
            except Unusable as exc:
                problem = str(exc)
            messages += [{"role": "assistant", "content": answer.text},
                         {"role": "user", "content": retry_message(problem)}]
        raise ModelOutputError(
            f"The model did not return a usable {kind.noun} after {self.attempts} attempts: {problem}",
            errors=[("model", problem)],
        )


@dataclass(frozen=True, slots=True)
class SavedCrew:
    crew_id: str
    agent_ids: list[str]
    task_ids: list[str]
    position: int | None


class CrewSaver:
    """Records a generated crew as ordinary agents, tasks and a crew (canvas style, by ids)."""

    def __init__(self, agents: AgentService, tasks: TaskService, crews: CrewService) -> None:
        self.agents = agents
        self.tasks = tasks
        self.crews = crews

    def save(self, crew: GeneratedCrew, *, name: str, description: str, model: str) -> SavedCrew:
        """Agents, tasks (pointing at them by id) and the crew that lists both, in one save.

        One save, so the crew never lists what does not exist and a request's
        idempotency key covers all of it; the crew's name is made unique
        (``Name (2)``) rather than failing.
        """
        return retry_on_conflict(partial(self._save, crew, name, description, model), attempts=3)

    def _save(self, crew: GeneratedCrew, name: str, description: str, model: str) -> SavedCrew:
        agents: dict[str, Agent] = {}
        for generated in crew.agents:
            agents[generated.name], _ = self.agents.draft({**msgspec.to_builtins(generated), "llm": model})
        tasks: dict[str, Task] = {}
        for generated_task in crew.tasks:
            fields = msgspec.to_builtins(generated_task)
            fields.update(agent_id=str(agents[generated_task.agent].id), agent=generated_task.agent,
                          context=[str(tasks[c].id) for c in generated_task.context])
            tasks[generated_task.name], _ = self.tasks.draft(fields, trusted=True)
        agent_ids = [str(a.id) for a in agents.values()]
        task_ids = [str(t.id) for t in tasks.values()]
        crew_fields = {"description": description, "model": model, "process": "sequential",
                       "agent_ids": agent_ids, "task_ids": task_ids}
        saved, index = self._draft_crew(name, crew_fields)
        position = self.crews.store.record(saved, index, *agents.values(), *tasks.values())
        return SavedCrew(str(saved.id), agent_ids, task_ids, position)

    def _draft_crew(self, name: str, fields: dict[str, Any]) -> tuple[Crew, NameIndex | None]:
        for n in range(1, 100):
            candidate = name if n == 1 else f"{name[:190]} ({n})"
            try:
                return self.crews.draft({**fields, "name": candidate}, trusted=True)
            except ConflictError:
                continue
        raise ConflictError(f"Too many crews are named '{name}'; send another name",
                            errors=[("name", "choose a name that is not in use")])


def crew_name(description: str) -> str:
    """A readable crew name from a description: its first sentence, cut at a word (≤ 60 chars)."""
    first = re.split(r"(?<=[.!?])\s", " ".join(description.split()), maxsplit=1)[0].rstrip(".!?")
    if len(first) > 60:
        first = first[:60].rsplit(" ", 1)[0] + " ..."
    return first or "Generated Crew"
