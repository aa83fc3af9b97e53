"""Planning an execution: which crew runs, checked as ``/crews/debug`` checks it.

A run comes from a saved crew (``crew_id``: its YAML, or on the canvas its
agent and task documents), from an inline ``agents_yaml``/``tasks_yaml``, or
from both (the inline config overrides the saved one). ``POST /executions``
and the scheduler plan with the same ``Planner``, so a request that could
never run is a 422 naming what is wrong rather than a FAILED run a moment
later. The plan is what ``ExecutionService.prepare_request`` records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from msgspec import UNSET

from application.crew_config import missing_inputs
from application.crew_drafts import CrewDrafts, DraftRequest
from application.ids import parse_id
from application.ports import DocumentLookup
from domain.context import current_actor
from domain.errors import InvalidError, NotFoundError

CREW_SETTINGS = ("verbose", "max_rpm")  # a saved crew's settings that reach crewai's Crew


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """A crew to run: ``crew_id`` of a saved crew, or an inline config, or both.

    Kasal also reads ``process`` and ``manager_llm`` from ``inputs``.
    """

    crew_id: str | None = None
    agents_yaml: Any = None
    tasks_yaml: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    process: str | None = None
    manager_llm: str | None = None
    run_name: str | None = None
    schedule_id: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What will run; ``fields()`` are keyword arguments of ``ExecutionService.prepare_request``."""

    agents: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    model: str
    run_name: str | None
    process: str
    manager_llm: str | None
    crew_id: str | None
    crew_version: int | None
    planning: bool = False
    crew_settings: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return asdict(self)


class Planner:
    """Turns a ``PlanRequest`` into a checked ``Plan``, in the caller's group."""

    def __init__(self, drafts: CrewDrafts, *, tasks: DocumentLookup, schedules: DocumentLookup,
                 default_model: str) -> None:
        self.drafts = drafts
        self.tasks = tasks
        self.schedules = schedules
        self.default_model = default_model

    async def plan(self, request: PlanRequest) -> Plan:
        """The plan, or ``InvalidError`` (422) listing what stops the crew from running.

        An unknown saved crew is ``NotFoundError``; an unknown ``schedule_id``
        (another group's included) is ``InvalidError``.
        """
        if request.agents_yaml is None and request.tasks_yaml is None and not request.crew_id:
            raise InvalidError("Send crew_id, or agents_yaml and tasks_yaml",
                               errors=[("crew_id", "or agents_yaml and tasks_yaml, is required")])
        if request.schedule_id is not None:
            await self._require_schedule(request.schedule_id)
        crew = await self.drafts.saved_crew(request.crew_id) if request.crew_id else {}
        inputs = request.inputs
        draft = await self.drafts.draft(DraftRequest(
            agents_yaml=UNSET if request.agents_yaml is None else request.agents_yaml,
            tasks_yaml=UNSET if request.tasks_yaml is None else request.tasks_yaml,
            process=request.process or inputs.get("process") or None,
            manager_llm=request.manager_llm or inputs.get("manager_llm") or None,
            model=request.model or crew.get("model") or self.default_model,
        ), crew or None)
        report = await self.drafts.report(draft)
        if not report.valid or report.parsed is None:
            raise InvalidError("The crew configuration cannot run: " + "; ".join(
                f"{f.path}: {f.message}" for f in report.errors[:5]),
                errors=[(f.path, f.message) for f in report.errors])
        missing = missing_inputs(report, inputs)
        if missing:
            raise InvalidError("Missing inputs for placeholders: " + ", ".join(missing),
                               errors=[(f"inputs.{name}", f"no value for placeholder {{{name}}}") for name in missing])
        canvas_name = await self._first_task_name(crew) if request.tasks_yaml is None else None
        return Plan(
            agents=report.parsed.agents, tasks=report.parsed.tasks, model=str(draft.model),
            run_name=request.run_name or canvas_name, process=draft.process, manager_llm=draft.manager_llm,
            crew_id=crew.get("id"), crew_version=crew.get("version"), planning=bool(crew.get("planning")),
            crew_settings={name: crew[name] for name in CREW_SETTINGS if crew.get(name) is not None},
        )

    async def check_schedule(self, fields: dict[str, Any]) -> None:
        """422 unless the crew a schedule names is the group's own and could run now."""
        crew_id = fields.get("crew_id")
        if crew_id and not await self._crew_exists(str(crew_id)):
            raise InvalidError(f"Unknown crew: {crew_id!r}", errors=[("crew_id", "no such crew in this group")])
        await self.plan(PlanRequest(
            crew_id=crew_id, agents_yaml=fields.get("agents_yaml"), tasks_yaml=fields.get("tasks_yaml"),
            inputs=dict(fields.get("inputs") or {}), model=fields.get("model"),
        ))

    async def _crew_exists(self, crew_id: str) -> bool:
        try:
            await self.drafts.saved_crew(crew_id)
        except NotFoundError:
            return False
        return True

    async def _require_schedule(self, schedule_id: str) -> None:
        found_id = parse_id(schedule_id)
        found = None if found_id is None else await self.schedules.get(current_actor().group_id, found_id)
        if found is None:
            raise InvalidError(f"Unknown schedule: {schedule_id!r}",
                               errors=[("schedule_id", "no such schedule in this group")])

    async def _first_task_name(self, crew: dict[str, Any]) -> str | None:
        """A canvas crew's run is named after its first task document (config keys are slugs)."""
        task_ids = crew.get("task_ids") or []
        if not task_ids or crew.get("tasks_yaml") is not None:
            return None
        task_id = parse_id(task_ids[0])
        task = None if task_id is None else await self.tasks.get(current_actor().group_id, task_id)
        return str(task["name"]) if task and task.get("name") else None
