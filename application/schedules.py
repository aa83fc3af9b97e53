"""Commands on schedules, and the scheduler that fires them.

``ScheduleService`` keeps each schedule's ``next_run_at`` right as its
definition changes. ``SchedulerService.tick(now)`` fires what is due: for
each schedule, the latest slot at or before ``now`` starts one execution.
The fire is ``Schedule.Fired`` appended at the version just read, saved in
one ``store.record`` with the execution's ``Requested`` event, so both
happen or neither; a second scheduler (another process) racing for the same
slot fails the version check, re-reads, and finds nothing due. The
execution's id is derived from (schedule, slot) as a second guard.

Runs missed while no scheduler ran are not replayed one by one: the next
tick (the service's first one runs during start-up) fires only the latest
missed slot. A run that starts more than ``CATCH_UP_AFTER`` after its slot
is recorded as a catch-up (``catch_up`` on the fire event, the execution's
``options.schedule`` and the schedule's ``last_run_was_catch_up``).

Secret-looking inputs (an API token a crew needs) are sealed here before a
schedule event is made: the event keeps them as ``[REDACTED]`` next to an
AES-GCM ciphertext of the whole inputs, bound to (group, schedule), so no
event, read model or response holds the value. A client that sends
``[REDACTED]`` back (a GET body, edited) keeps the stored value. A fired run
gets the decrypted inputs, handed to the runner in memory as for a request
(``ExecutionService.prepare_request``), and its own events redact them again;
a schedule whose ciphertext no longer opens (the encryption key changed)
skips its slots, saying to send the inputs again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import msgspec

from application.cron import check_expression, iso, latest_at_or_before, next_after, parse_iso
from application.documents import DocumentService, ExpectedVersions, Written
from application.executions import ExecutionService
from application.ports import Clock, SecretBox
from application.store import KasalStore, retry_on_conflict
from domain.context import Actor, acting_as, current_actor
from domain.errors import ConflictError, DomainError, InvalidError
from domain.redaction import REDACTED, SECRET_NAME, check_nesting, redact
from domain.schedule import SCHEDULER_ACTOR, SEALED_INPUTS, STATE_DEFAULTS, STATE_FIELDS, Schedule

log = logging.getLogger("kasal.scheduler")

# A run that starts later than this after its slot was missed (the service was
# down or stalled): it is recorded as a catch-up.
CATCH_UP_AFTER = timedelta(seconds=60)


class ScheduleIndex(Protocol):
    """Read-model queries the scheduler needs (answered from ``rm_schedules``)."""

    def due(self, now: datetime, limit: int) -> list[UUID]:
        """Schedules of any group whose ``next_run_at`` is at or before ``now``, earliest first."""
        ...


class ExecutionPlanner(Protocol):
    """Turns a schedule's definition into what ``ExecutionService.prepare_request`` takes.

    Runs as the schedule's group. Raises a ``DomainError`` when the crew cannot
    run (deleted, invalid, inputs missing); the scheduler records that slot as
    skipped with the reason.
    """

    def plan(self, group_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        ...


class CrewCheck(Protocol):
    """Whether the crew a schedule's definition names could run now, checked as a run is checked.

    Runs as the caller, in the caller's group. Raises a ``DomainError`` (422)
    naming what stops the crew: an unknown crew, an invalid config, an input
    its placeholders need.
    """

    def check(self, definition: Mapping[str, Any]) -> None:
        ...


# A change to any of these may make the schedule's crew unable to run.
CREW_FIELDS = frozenset({"crew_id", "agents_yaml", "tasks_yaml", "inputs", "model"})


@dataclass(frozen=True, slots=True)
class FireOutcome:
    """What one tick did for one schedule."""

    schedule_id: UUID
    slot: datetime
    execution_id: UUID | None
    catch_up: bool
    position: int | None
    skipped_reason: str | None = None


def _timing(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    return fields.get("cron_expression"), fields.get("timezone") or "UTC", fields.get("enabled", True)


def slot_execution_id(schedule_id: UUID, slot: str) -> UUID:
    """The id of the execution a slot starts: one slot, one possible execution."""
    return uuid5(NAMESPACE_URL, f"kasal:schedule:{schedule_id}:{slot}")


class ScheduleInputsUnreadableError(InvalidError):
    """A schedule's sealed inputs no longer decrypt: the encryption key changed, or they were altered."""

    type = "schedule_inputs_unreadable"


def inputs_associated_data(group_id: str, schedule_id: UUID) -> bytes:
    """Binds a schedule's sealed inputs to it: copied to another schedule or group, they fail to open."""
    return f"kasal-schedule-inputs\x00{group_id}\x00{schedule_id}".encode()


def open_inputs(box: SecretBox, group_id: str, schedule_id: UUID, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs a schedule runs with: its sealed inputs decrypted, else the stored ones."""
    token = fields.get(SEALED_INPUTS)
    if not token:
        return dict(fields.get("inputs") or {})
    try:
        opened = msgspec.json.decode(box.decrypt(token, associated_data=inputs_associated_data(group_id, schedule_id)))
    except Exception as error:  # any failure of the box: say what to do, never run with "[REDACTED]"
        raise ScheduleInputsUnreadableError(
            f"The secret inputs of schedule {schedule_id} cannot be decrypted: the encryption key "
            "(KASAL_SECRET_KEY or the local key file) differs from the one they were stored with. "
            "Send the schedule's inputs again.",
            errors=[("inputs", "stored secrets cannot be decrypted; send them again")],
        ) from error
    return dict(opened)


def kept_secrets(sent: Any, stored: Any) -> Any:
    """``sent`` with each ``[REDACTED]`` under a secret-looking name replaced by the value stored at
    the same place, so a body read back and sent again keeps its secrets. ``sent`` is at most
    ``MAX_INPUT_DEPTH`` deep (checked before), which bounds the recursion."""
    if isinstance(sent, dict) and isinstance(stored, Mapping):
        return {
            key: stored[key] if value == REDACTED and SECRET_NAME.search(str(key)) and key in stored
            else kept_secrets(value, stored.get(key))
            for key, value in sent.items()
        }
    if isinstance(sent, list) and isinstance(stored, list):
        return [kept_secrets(value, stored[i] if i < len(stored) else None) for i, value in enumerate(sent)]
    return sent


def _has_plaintext_secret(inputs: Any) -> bool:
    return isinstance(inputs, dict) and redact(inputs)[0] != inputs


class ScheduleService(DocumentService[Schedule]):
    """Create/change/toggle/delete schedules; ``next_run_at`` follows every timing change.

    A write that names a crew, or changes what the crew runs with, is refused
    unless that crew could run now (``crews``), judged on the schedule as the
    write leaves it: the aggregate just loaded, so never a read model that lags.
    """

    def __init__(self, store: KasalStore, clock: Clock, box: SecretBox, crews: CrewCheck) -> None:
        super().__init__(store, Schedule, unique_names=False)
        self.clock = clock
        self.box = box
        self.crews = crews

    def create(self, fields: dict[str, Any], *, id: UUID | None = None) -> Written:
        schedule_id = id or uuid4()  # known before the save: the sealed inputs are bound to it
        timed = self.timed(None, fields)
        self.crews.check(timed)
        sealed = self.sealed(current_actor().group_id, schedule_id, None, timed)
        return super().create(sealed, id=schedule_id)

    def change(
        self, document_id: UUID, changes: dict[str, Any], expected_version: ExpectedVersions | None = None,
    ) -> Written:
        def change(schedule: Schedule) -> None:
            sent = self._sealed_for(schedule, self.timed(schedule.fields, changes))
            if CREW_FIELDS & changes.keys():
                self.crews.check({**schedule.fields, **sent})
            schedule.change(sent)

        return self._mutate(document_id, change, expected_version)

    def replace(
        self, document_id: UUID, fields: dict[str, Any], expected_version: ExpectedVersions | None = None,
    ) -> Written:
        def replace(schedule: Schedule) -> None:
            sent = self._sealed_for(schedule, self.timed(schedule.fields, fields, replace=True))
            self.crews.check(sent)
            schedule.replace(sent)

        return self._mutate(document_id, replace, expected_version)

    def toggle(self, document_id: UUID, expected_version: ExpectedVersions | None = None) -> Written:
        """Enable a disabled schedule or disable an enabled one."""
        return self._mutate(
            document_id, lambda s: s.change(self._sealed_for(s, self.timed(s.fields, {"enabled": not s.enabled}))),
            expected_version,
        )

    def restored_fields(self, schedule: Schedule, fields: dict[str, Any]) -> dict[str, Any]:
        """An earlier definition (its sealed inputs as they were) with what firing recorded kept.

        The next run is counted afresh when the timing differs from now's, and
        from now for a schedule brought back from deletion, as for a new one.
        The crew must be able to run, as for any write of the definition.
        """
        definition = {k: v for k, v in fields.items() if k not in STATE_FIELDS}
        state = {k: schedule.fields.get(k, default) for k, default in STATE_DEFAULTS.items()}
        if schedule.deleted:
            state["next_run_at"] = None
        restored = self.timed(None if schedule.deleted else schedule.fields, {**state, **definition}, replace=True)
        self.crews.check(restored)
        return restored

    def sealed(
        self, group_id: str, schedule_id: UUID, stored: Mapping[str, Any] | None, sent: dict[str, Any],
    ) -> dict[str, Any]:
        """``sent`` with its inputs' secrets replaced by ``[REDACTED]`` and the whole inputs encrypted.

        ``stored`` (the schedule's current fields) supplies the values of secrets
        sent back as ``[REDACTED]``; its ciphertext is kept when nothing changed,
        so an unchanged PUT records nothing. Inputs stored in plaintext before
        secrets were sealed are sealed by the schedule's next change of any kind.
        """
        if "inputs" in sent:
            inputs = {} if sent["inputs"] is None else sent["inputs"]
        elif stored is not None and _has_plaintext_secret(stored.get("inputs")):
            inputs = stored["inputs"]
        else:
            return sent
        if not isinstance(inputs, dict):
            return sent  # the schedule refuses it, with the reason
        check_nesting(inputs)
        previous: dict[str, Any] | None = None
        if stored is not None:
            try:
                previous = open_inputs(self.box, group_id, schedule_id, stored)
            except ScheduleInputsUnreadableError:
                if b'"[REDACTED]"' in msgspec.json.encode(inputs):
                    raise  # a secret to keep that cannot be read: the client must send it again
            if previous is not None:
                inputs = kept_secrets(inputs, previous)
        shown, hidden = redact(inputs)
        token = None
        if hidden and stored is not None and stored.get(SEALED_INPUTS) and previous == inputs:
            token = stored[SEALED_INPUTS]
        elif hidden:
            plaintext = msgspec.json.encode(inputs).decode()
            token = self.box.encrypt(plaintext, associated_data=inputs_associated_data(group_id, schedule_id))
        return {**sent, "inputs": shown, SEALED_INPUTS: token}

    def _sealed_for(self, schedule: Schedule, sent: dict[str, Any]) -> dict[str, Any]:
        return self.sealed(schedule.group_id, schedule.id, schedule.fields, sent)

    def timed(self, old: Mapping[str, Any] | None, sent: Mapping[str, Any], *, replace: bool = False) -> dict[str, Any]:
        """``sent`` plus the ``next_run_at`` it implies; checks the cron expression and time zone.

        Counting starts afresh (from now) when a schedule is created, enabled,
        or its cron expression or time zone changes; a disabled schedule has no
        next run. Other changes keep the pending next run.
        """
        merged = dict(sent) if replace or old is None else {**old, **sent}
        merged.setdefault("timezone", "UTC")
        merged.setdefault("enabled", True)
        expression = str(merged.get("cron_expression") or "")
        check_expression(expression, merged["timezone"])
        out = dict(sent)
        if not merged["enabled"]:
            out["next_run_at"] = None
            return out
        if old is None or _timing(merged) != _timing(old) or old.get("next_run_at") is None:
            start = self.clock.now()
            last = None if old is None else old.get("last_slot")
            if last is not None and parse_iso(last) > start:
                start = parse_iso(last)
            out["next_run_at"] = iso(next_after(expression, merged["timezone"], start))
        return out


class SchedulerService:
    """Fires due schedules; safe to run in several processes at once."""

    def __init__(
        self, store: KasalStore, index: ScheduleIndex, planner: ExecutionPlanner, executions: ExecutionService,
        clock: Clock, *, box: SecretBox, batch: int = 100,
    ) -> None:
        self.store = store
        self.box = box
        self.index = index
        self.planner = planner
        self.executions = executions
        self.clock = clock
        self.batch = batch

    def tick(self, now: datetime | None = None) -> list[FireOutcome]:
        """Fire every schedule due at ``now`` (default: the clock's now), once per slot."""
        now = now or self.clock.now()
        outcomes = []
        for schedule_id in self.index.due(now, self.batch):
            try:
                outcome = retry_on_conflict(partial(self.fire_due, schedule_id, now), attempts=3)
            except ConflictError:
                log.warning("schedule %s: gave up after repeated concurrent changes", schedule_id)
                continue
            except Exception:
                # One broken schedule must not stop the others; it is tried again next tick.
                log.exception("schedule %s could not fire", schedule_id)
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def fire_due(self, schedule_id: UUID, now: datetime) -> FireOutcome | None:
        """Fire ``schedule_id`` for its latest slot at or before ``now``, if that is still due.

        A version conflict (another scheduler fired, or a user edited the
        schedule) surfaces as ``IntegrityError``; the caller retries on the
        fresh aggregate, where the slot is no longer due.
        """
        schedule = self.store.find(schedule_id)
        if not isinstance(schedule, Schedule) or schedule.deleted or not schedule.enabled:
            return None
        if schedule.next_run_at is None or parse_iso(schedule.next_run_at) > now:
            return None  # fired already (the read model lags) or not yet due
        definition = schedule.fields
        expression, zone = definition["cron_expression"], definition.get("timezone") or "UTC"
        slot_at = latest_at_or_before(expression, zone, now)
        if slot_at is None or slot_at < parse_iso(schedule.next_run_at):
            return None
        slot, next_run = iso(slot_at), iso(next_after(expression, zone, slot_at))
        catch_up = now - slot_at > CATCH_UP_AFTER
        actor = Actor(schedule.group_id, SCHEDULER_ACTOR, "operator", f"schedule:{schedule_id}:{slot}")
        with acting_as(actor):
            try:
                inputs = open_inputs(self.box, schedule.group_id, schedule_id, definition)
                plan = self.planner.plan(schedule.group_id, definition)
                # Under the single-job rule a busy group skips the slot, as a crew that cannot run does.
                places = self.executions.admission.admit(schedule.group_id, slot_execution_id(schedule_id, slot))
            except DomainError as error:
                schedule.skip(slot=slot, reason=error.detail, next_run_at=next_run)
                position = self.store.record(schedule)
                log.warning("schedule %s skipped %s: %s", schedule_id, slot, error.detail)
                return FireOutcome(schedule_id, slot_at, None, catch_up, position, error.detail)
            execution = self.executions.prepare_request(
                **{**plan, "run_name": schedule.name}, inputs=inputs,
                schedule_id=str(schedule_id), id=slot_execution_id(schedule_id, slot),
                options={"schedule": {"id": str(schedule_id), "slot": slot, "catch_up": catch_up}},
            )
            schedule.fire(slot=slot, execution_id=str(execution.id), fired_at=iso(now), catch_up=catch_up,
                          next_run_at=next_run)
            position = self.store.record(schedule, execution, *places)
        self.executions.requested(execution, inputs, position)
        return FireOutcome(schedule_id, slot_at, execution.id, catch_up, position)
