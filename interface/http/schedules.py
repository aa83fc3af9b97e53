"""Schedules API: ``/api/v1/scheduler/schedules`` and Kasal's ``/api/v1/schedules`` aliases.

A schedule runs a saved crew (``crew_id``) or an inline config
(``agents_yaml``/``tasks_yaml``) at the times its five-field cron expression
names, read in its IANA ``timezone`` (default UTC). Writes are checked the
way ``POST /executions`` checks a run, so a schedule that could never start
its crew is a 422 now rather than a skipped run later.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from psycopg_pool import ConnectionPool

from application.cron import check_expression
from application.executions import ExecutionService
from application.ports import Clock
from application.schedules import FireOutcome, ScheduleService, SchedulerService
from domain.errors import InvalidError
from interface.core import Core, Feature
from interface.http.common import IfMatch, Limit, Offset, etag, expected_version, found, group_id, location, settle
from interface.http.crews import CrewsFeature
from interface.http.executions import ExecutionsFeature
from interface.http.structs import UNSET, Resource, UnsetType, page_type, sent_fields, to_struct
from interface.scheduler import CrewPlanner, SchedulerLoop, SystemClock, plan_crew_request
from projections.documents import DocumentView
from projections.schedules import TABLE, NextRunQuery, ScheduleIndexQueries, SchedulesProjection

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Cron = Annotated[str, msgspec.Meta(max_length=200)]
Zone = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ConfigMap = str | dict[str, Any]
CREW_FIELDS = ("crew_id", "agents_yaml", "tasks_yaml", "inputs", "model")


class ScheduleFields(msgspec.Struct, kw_only=True, omit_defaults=True):
    timezone: Zone | UnsetType = UNSET
    crew_id: str | None | UnsetType = UNSET
    agents_yaml: ConfigMap | None | UnsetType = UNSET
    tasks_yaml: ConfigMap | None | UnsetType = UNSET
    inputs: dict[str, Any] | None | UnsetType = UNSET
    model: str | None | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET


class ScheduleCreate(ScheduleFields, kw_only=True):
    name: Name
    cron_expression: Cron


class ScheduleUpdate(ScheduleFields, kw_only=True):
    name: Name | UnsetType = UNSET
    cron_expression: Cron | UnsetType = UNSET


class ScheduleRead(Resource, kw_only=True):
    name: str
    cron_expression: str
    timezone: str
    crew_id: str | None
    agents_yaml: ConfigMap | None
    tasks_yaml: ConfigMap | None
    inputs: dict[str, Any]
    model: str | None
    enabled: bool
    is_active: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_slot: datetime | None
    last_execution_id: str | None
    last_run_was_catch_up: bool
    last_error: str | None


SchedulePage = page_type(ScheduleRead, "SchedulePage")


def schedule_read(row: dict[str, Any]) -> ScheduleRead:
    return to_struct({**row, "is_active": row.get("enabled", True)}, ScheduleRead)


def definition(data: ScheduleFields) -> dict[str, Any]:
    """The fields a client sent, with Kasal's ``is_active`` read as ``enabled``.

    Sending a crew id without a config switches the schedule to that crew,
    and sending a config without a crew id switches it to the config.
    """
    sent = sent_fields(data)
    if "is_active" in sent:
        active = sent.pop("is_active")
        if sent.get("enabled", active) != active:
            raise InvalidError("enabled and is_active disagree", errors=[("is_active", "must equal enabled")])
        sent["enabled"] = active
    inline = sent.get("agents_yaml") is not None or sent.get("tasks_yaml") is not None
    if sent.get("crew_id") and not inline:
        sent.setdefault("agents_yaml", None)
        sent.setdefault("tasks_yaml", None)
    elif inline:
        sent.setdefault("crew_id", None)
    return sent


class SchedulesFeature(Feature):
    """Schedule definitions, their read model, and the scheduler that fires them (``interface.scheduler``)."""

    name = "schedules"

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.clock: Clock = SystemClock()
        self.service = ScheduleService(core.store, self.clock)
        self.view = DocumentView(core.pool, TABLE)
        # The scheduler fires from worker threads, so its due-query uses a small sync pool.
        self.sync_pool = ConnectionPool(core.database_url, open=False, min_size=1, max_size=2)
        self.planner = CrewPlanner(core)
        self.scheduler: SchedulerService | None = None
        self.loop: SchedulerLoop | None = None

    def projections(self) -> list[Any]:
        return [SchedulesProjection()]

    def route_handlers(self) -> list[Any]:
        return [SchedulerController, ScheduleAliasController]

    def use_clock(self, clock: Clock) -> None:
        """Put every part of the feature on ``clock`` (tests stand at chosen instants)."""
        self.clock = clock
        self.service.clock = clock
        for part in (self.scheduler, self.loop):
            if part is not None:
                part.clock = clock

    def scheduler_for(self, store: Any, executions: ExecutionService) -> SchedulerService:
        """A scheduler over ``store`` sharing this feature's read-side adapters (one per process)."""
        return SchedulerService(store, ScheduleIndexQueries(self.sync_pool), self.planner, executions, self.clock)

    async def start(self) -> None:
        await self.core.run(functools.partial(self.sync_pool.open, wait=True, timeout=30))
        self.planner.bind()
        self.scheduler = self.scheduler_for(self.core.store, self.core.get(ExecutionsFeature).service)
        self.loop = SchedulerLoop(self.core, self.scheduler, NextRunQuery(self.core.pool), self.clock)
        if self.core.settings.run_scheduler:
            await self.loop.tick()  # the catch-up pass: runs missed while no scheduler ran
            self.loop.start()

    async def stop(self) -> None:
        if self.loop is not None:
            await self.loop.stop()
        await self.core.run(self.sync_pool.close)

    async def tick(self, now: datetime | None = None) -> list[FireOutcome]:
        """One scheduler pass at ``now``, as the loop makes them (tests call it directly)."""
        if self.loop is None:
            raise RuntimeError("the schedules feature has not started")
        return await self.loop.tick(now)

    def changed(self) -> None:
        if self.loop is not None:
            self.loop.wake()

    async def check_runnable(self, fields: dict[str, Any]) -> None:
        """422 unless the crew a schedule names exists in the caller's group and could run now."""
        inline = fields.get("agents_yaml") is not None or fields.get("tasks_yaml") is not None
        crew_id = fields.get("crew_id")
        if crew_id and not inline and not await self._crew_exists(str(crew_id)):
            raise InvalidError(f"Unknown crew: {crew_id!r}", errors=[("crew_id", "no such crew in this group")])
        await plan_crew_request(self.core, fields)

    async def _crew_exists(self, crew_id: str) -> bool:
        try:
            crew_uuid = UUID(crew_id)
            crews = self.core.get(CrewsFeature)
        except (ValueError, LookupError):
            return False
        return await crews.view.get(group_id(), crew_uuid) is not None

    async def get_or_404(self, schedule_id: UUID) -> dict[str, Any]:
        return found(await self.view.get(group_id(), schedule_id), "schedule", schedule_id)


async def create_schedule(request: Request[Any, Any, Any], core: Core, data: ScheduleCreate) -> Response[ScheduleRead]:
    schedules = core.get(SchedulesFeature)
    fields = definition(data)
    check_expression(fields["cron_expression"], fields.get("timezone"))
    await schedules.check_runnable(fields)
    written = await core.run(schedules.service.create, fields)
    headers = await settle(core, written)
    schedules.changed()
    row = await schedules.get_or_404(written.id)
    headers["Location"] = location(request, written.id)
    return Response(schedule_read(row), status_code=201, headers=headers)


async def update_schedule(core: Core, schedule_id: UUID, data: ScheduleUpdate, if_match: str | None) -> Response[ScheduleRead]:
    schedules = core.get(SchedulesFeature)
    current = await schedules.get_or_404(schedule_id)
    changes = definition(data)
    merged = {**current, **changes}
    if {"cron_expression", "timezone"} & changes.keys():
        check_expression(merged["cron_expression"], merged.get("timezone"))
    if set(CREW_FIELDS) & changes.keys():
        await schedules.check_runnable(merged)
    written = await core.run(schedules.service.change, schedule_id, changes, expected_version(if_match))
    return await _answer(core, schedule_id, written)


async def toggle_schedule(core: Core, schedule_id: UUID, if_match: str | None) -> Response[ScheduleRead]:
    schedules = core.get(SchedulesFeature)
    written = await core.run(schedules.service.toggle, schedule_id, expected_version(if_match))
    return await _answer(core, schedule_id, written)


async def _answer(core: Core, schedule_id: UUID, written: Any) -> Response[ScheduleRead]:
    schedules = core.get(SchedulesFeature)
    headers = await settle(core, written)
    schedules.changed()
    return Response(schedule_read(await schedules.get_or_404(schedule_id)), headers=headers)


class _ScheduleRoutes(Controller):
    """The verbs both paths share; subclasses set the path and their toggle verb."""

    tags = ["schedules"]

    @post("/", summary="Create a schedule")
    async def create(self, request: Request[Any, Any, Any], core: Core, data: ScheduleCreate) -> Response[ScheduleRead]:
        """Create a schedule: ``name``, a five-field ``cron_expression``, ``timezone`` (IANA, default
        UTC), the crew (``crew_id``, or ``agents_yaml`` and ``tasks_yaml``), ``inputs``, ``model``, and
        ``enabled`` (alias ``is_active``, default true). An invalid cron expression or time zone, or a
        crew that is unknown in the caller's group or could not run, is 422. Across daylight-saving
        changes each matching wall-clock time runs once: a repeated time at its first occurrence, a
        skipped time at the moment the clocks jump forward. After downtime, only the latest missed
        time runs, marked ``last_run_was_catch_up``."""
        return await create_schedule(request, core, data)

    @get("/", summary="List schedules")
    async def list_schedules(self, core: Core, limit: Limit = 20, offset: Offset = 0) -> SchedulePage:  # type: ignore[valid-type]
        """Schedules of the caller's group, newest first, with their next and last runs."""
        page = await core.get(SchedulesFeature).view.list(group_id(), limit=limit, offset=offset)
        page["items"] = [schedule_read(row) for row in page["items"]]
        return to_struct(page, SchedulePage)

    @get("/{schedule_id:uuid}", summary="Get a schedule")
    async def get_schedule(self, core: Core, schedule_id: UUID) -> Response[ScheduleRead]:
        """One schedule; ``last_run_was_catch_up`` says whether its last run made up for a missed time."""
        row = await core.get(SchedulesFeature).get_or_404(schedule_id)
        return Response(schedule_read(row), headers=etag(row))

    @put("/{schedule_id:uuid}", summary="Update a schedule")
    async def update(
        self, core: Core, schedule_id: UUID, data: ScheduleUpdate, if_match: IfMatch = None
    ) -> Response[ScheduleRead]:
        """Change only the fields sent. A new cron expression or time zone, or enabling, counts the
        next run from now. ``If-Match: "<version>"`` makes the change conditional."""
        return await update_schedule(core, schedule_id, data, if_match)

    @delete("/{schedule_id:uuid}", summary="Delete a schedule", status_code=204)
    async def remove(self, core: Core, schedule_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete a schedule; it never fires again. Executions it started are kept."""
        schedules = core.get(SchedulesFeature)
        written = await core.run(schedules.service.delete, schedule_id, expected_version(if_match))
        headers = await settle(core, written)
        schedules.changed()
        return Response(None, status_code=204, headers=headers)


class SchedulerController(_ScheduleRoutes):
    path = "/api/v1/scheduler/schedules"

    @patch("/{schedule_id:uuid}/toggle", summary="Enable or disable a schedule")
    async def toggle(self, core: Core, schedule_id: UUID, if_match: IfMatch = None) -> Response[ScheduleRead]:
        """Flip ``enabled``. A schedule enabled again counts its next run from now: times that
        passed while it was disabled are not made up."""
        return await toggle_schedule(core, schedule_id, if_match)


class ScheduleAliasController(_ScheduleRoutes):
    """Kasal's own paths for the same resource."""

    path = "/api/v1/schedules"

    @post("/{schedule_id:uuid}/toggle", summary="Enable or disable a schedule (Kasal alias)", status_code=200)
    async def toggle(self, core: Core, schedule_id: UUID, if_match: IfMatch = None) -> Response[ScheduleRead]:
        """Same as ``PATCH /scheduler/schedules/{id}/toggle``; the verb Kasal's clients use."""
        return await toggle_schedule(core, schedule_id, if_match)

    @patch("/{schedule_id:uuid}/toggle", summary="Enable or disable a schedule (PATCH on the alias)")
    async def toggle_patch(self, core: Core, schedule_id: UUID, if_match: IfMatch = None) -> Response[ScheduleRead]:
        """Same as ``POST /schedules/{id}/toggle``."""
        return await toggle_schedule(core, schedule_id, if_match)

