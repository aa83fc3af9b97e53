"""Schedules API: ``/api/v1/scheduler/schedules`` and Kasal's ``/api/v1/schedules`` aliases.

A schedule runs a saved crew (``crew_id``) or an inline config
(``agents_yaml``/``tasks_yaml``) at the times its five-field cron expression
names, read in its IANA ``timezone`` (default UTC). Writes are checked the
way ``POST /executions`` checks a run, so a schedule that could never start
its crew is a 422 now rather than a skipped run later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put

from domain.errors import InvalidError
from interface.http.common import (
    IfMatch,
    Limit,
    Offset,
    etag,
    expected_version,
    group_id,
    location,
    settle,
    settled_resource,
)
from interface.http.history import AsOf, read
from interface.http.structs import UNSET, Page, Resource, UnsetType, sent_fields, to_struct
from interface.wiring import Kasal

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Cron = Annotated[str, msgspec.Meta(max_length=200)]
Zone = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ConfigMap = str | dict[str, Any]


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


class SchedulePage(Page[ScheduleRead]):
    items: list[ScheduleRead]


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


async def create_schedule(
    request: Request[Any, Any, Any], kasal: Kasal, data: ScheduleCreate,
) -> Response[ScheduleRead]:
    written = await kasal.run(kasal.services.schedules.create, definition(data))
    row, headers = await settled_resource(kasal, written, kasal.views.schedules, "schedule")
    kasal.scheduler.wake()
    headers["Location"] = location(request, written.id)
    return Response(schedule_read(row), status_code=201, headers=headers)


async def update_schedule(
    kasal: Kasal, schedule_id: UUID, data: ScheduleUpdate, if_match: str | None,
) -> Response[ScheduleRead]:
    changes = definition(data)
    written = await kasal.run(kasal.services.schedules.change, schedule_id, changes, expected_version(if_match))
    return await _answer(kasal, schedule_id, written)


async def toggle_schedule(kasal: Kasal, schedule_id: UUID, if_match: str | None) -> Response[ScheduleRead]:
    written = await kasal.run(kasal.services.schedules.toggle, schedule_id, expected_version(if_match))
    return await _answer(kasal, schedule_id, written)


async def _answer(kasal: Kasal, schedule_id: UUID, written: Any) -> Response[ScheduleRead]:
    row, headers = await settled_resource(kasal, written, kasal.views.schedules, "schedule")
    kasal.scheduler.wake()
    return Response(schedule_read(row), headers=headers)


class _ScheduleRoutes(Controller):
    """The verbs both paths share; subclasses set the path and their toggle verb."""

    tags = ["schedules"]

    @post("/", summary="Create a schedule")
    async def create(
        self, request: Request[Any, Any, Any], kasal: Kasal, data: ScheduleCreate,
    ) -> Response[ScheduleRead]:
        """Create a schedule: ``name``, a five-field ``cron_expression``, ``timezone`` (IANA, default
        UTC), the crew (``crew_id``, or ``agents_yaml`` and ``tasks_yaml``), ``inputs``, ``model``, and
        ``enabled`` (alias ``is_active``, default true). An invalid cron expression or time zone, or a
        crew that is unknown in the caller's group or could not run, is 422. Inputs whose names look
        secret (containing key, token, secret or password) are stored encrypted and always answered as
        ``"[REDACTED]"``; sending ``"[REDACTED]"`` back keeps the stored value. Across daylight-saving
        changes each matching wall-clock time runs once: a repeated time at its first occurrence, a
        skipped time at the moment the clocks jump forward. After downtime, only the latest missed
        time runs, marked ``last_run_was_catch_up``."""
        return await create_schedule(request, kasal, data)

    @get("/", summary="List schedules")
    async def list_schedules(self, kasal: Kasal, limit: Limit = 20, offset: Offset = 0) -> SchedulePage:
        """Schedules of the caller's group, newest first, with their next and last runs."""
        page = await kasal.views.schedules.list(group_id(), limit=limit, offset=offset)
        page["items"] = [schedule_read(row) for row in page["items"]]
        return to_struct(page, SchedulePage)

    @get("/{schedule_id:uuid}", summary="Get a schedule")
    async def get_schedule(self, kasal: Kasal, schedule_id: UUID, as_of: AsOf = None) -> Response[ScheduleRead]:
        """One schedule; ``last_run_was_catch_up`` says whether its last run made up for a missed time.
        ``?as_of=`` answers it as it was then."""
        row = await read(kasal, "schedule", schedule_id, as_of)
        return Response(schedule_read(row), headers=etag(row))

    @put("/{schedule_id:uuid}", summary="Update a schedule")
    async def update(
        self, kasal: Kasal, schedule_id: UUID, data: ScheduleUpdate, if_match: IfMatch = None
    ) -> Response[ScheduleRead]:
        """Change only the fields sent. A new cron expression or time zone, or enabling, counts the
        next run from now. ``If-Match: "<version>"`` makes the change conditional."""
        return await update_schedule(kasal, schedule_id, data, if_match)

    @delete("/{schedule_id:uuid}", summary="Delete a schedule", status_code=204)
    async def remove(self, kasal: Kasal, schedule_id: UUID, if_match: IfMatch = None) -> Response[None]:
        """Delete a schedule; it never fires again. Executions it started are kept."""
        written = await kasal.run(kasal.services.schedules.delete, schedule_id, expected_version(if_match))
        headers = await settle(kasal, written)
        kasal.scheduler.wake()
        return Response(None, status_code=204, headers=headers)


class SchedulerController(_ScheduleRoutes):
    path = "/api/v1/scheduler/schedules"

    @patch("/{schedule_id:uuid}/toggle", summary="Enable or disable a schedule")
    async def toggle(self, kasal: Kasal, schedule_id: UUID, if_match: IfMatch = None) -> Response[ScheduleRead]:
        """Flip ``enabled``. A schedule enabled again counts its next run from now: times that
        passed while it was disabled are not made up."""
        return await toggle_schedule(kasal, schedule_id, if_match)


class ScheduleAliasController(_ScheduleRoutes):
    """Kasal's own paths for the same resource."""

    path = "/api/v1/schedules"

    @post("/{schedule_id:uuid}/toggle", summary="Enable or disable a schedule (Kasal alias)", status_code=200)
    async def toggle(self, kasal: Kasal, schedule_id: UUID, if_match: IfMatch = None) -> Response[ScheduleRead]:
        """Same as ``PATCH /scheduler/schedules/{id}/toggle``; the verb Kasal's clients use."""
        return await toggle_schedule(kasal, schedule_id, if_match)

    @patch("/{schedule_id:uuid}/toggle", summary="Enable or disable a schedule (PATCH on the alias)")
    async def toggle_patch(self, kasal: Kasal, schedule_id: UUID, if_match: IfMatch = None) -> Response[ScheduleRead]:
        """Same as ``POST /schedules/{id}/toggle``."""
        return await toggle_schedule(kasal, schedule_id, if_match)

