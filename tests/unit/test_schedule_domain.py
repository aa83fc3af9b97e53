"""Schedules on the in-memory store: their rules, their next run, and firing once per slot."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError
from hypothesis import given, settings
from hypothesis import strategies as st

from application.content import MemoryContentStore
from application.cron import iso, latest_at_or_before
from application.executions import ExecutionService
from application.schedules import CATCH_UP_AFTER, SchedulerService, ScheduleService, slot_execution_id
from application.store import KasalStore, memory_env
from domain.context import Actor, acting_as
from domain.errors import ConflictError, InvalidError, NotFoundError
from domain.execution import Execution
from domain.schedule import SCHEDULER_ACTOR, Schedule
from tests.fakes import FakeClock, FakeCrewCheck, FakeSecretBox, ListedExecutionIndex

UTC = UTC
AGENTS = {"writer": {"role": "Writer", "goal": "Write", "backstory": "b"}}
TASKS = {"report": {"description": "Report on {report_date}", "expected_output": "A report", "agent": "writer"}}
DAILY = {"name": "Daily Reports", "cron_expression": "0 9 * * *", "crew_id": "c0ffee00-0000-4000-8000-000000000000",
         "inputs": {"report_date": "today"}}
GONE_CREW = "dead0000-0000-4000-8000-000000000000"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class StoreScheduleIndex:
    """A fake of ``rm_schedules``' due query, answered from the aggregates themselves."""

    def __init__(self, store: KasalStore) -> None:
        self.store = store

    def due(self, now: datetime, limit: int) -> list[UUID]:
        ids = {n.originator_id for n in self.store.recorder.select_notifications(start=1, limit=100_000)
               if n.topic == Schedule.Created.TOPIC}  # type: ignore[attr-defined]
        due = []
        for schedule_id in ids:
            schedule = self.store.repository.get(schedule_id)
            if not schedule.deleted and schedule.next_run_at and datetime.fromisoformat(schedule.next_run_at) <= now:
                due.append(schedule_id)
        return due[:limit]


class FakePlanner:
    """Plans every schedule as the same small crew; names groups whose crews are "gone"."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.calls = 0

    def plan(self, group_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if definition.get("crew_id") in self.broken:
            raise NotFoundError(f"crew {definition['crew_id']} not found")
        return {"agents": AGENTS, "tasks": TASKS, "model": "offline/echo", "run_name": None,
                "process": "sequential", "manager_llm": None, "crew_id": definition.get("crew_id"),
                "crew_version": 1}


class World:
    """A store, a clock standing at 2025-05-01 08:00 UTC, and the two services over them."""

    def __init__(self) -> None:
        self.store = KasalStore(memory_env())
        self.clock = FakeClock(at(2025, 5, 1, 8, 0))
        self.planner = FakePlanner()
        self.box = FakeSecretBox()
        self.crews = FakeCrewCheck()
        self.schedules = ScheduleService(self.store, self.clock, self.box, self.crews)
        self.executions = ExecutionService(self.store, MemoryContentStore(), ListedExecutionIndex())
        self.scheduler = SchedulerService(self.store, StoreScheduleIndex(self.store), self.planner,
                                          self.executions, self.clock, box=self.box)

    def create(self, **fields: Any) -> UUID:
        with acting_as(Actor("local", "alice@example.com")):
            return self.schedules.create({**DAILY, **fields}).id

    def as_user(self, fn: Any, *args: Any) -> Any:
        with acting_as(Actor("local", "alice@example.com")):
            return fn(*args)

    def schedule(self, schedule_id: UUID) -> Schedule:
        return self.store.repository.get(schedule_id)

    def tick_at(self, when: datetime) -> list[Any]:
        self.clock.set(when)
        return self.scheduler.tick()

    def executions_of(self, schedule_id: UUID) -> list[Execution]:
        found = []
        for n in self.store.recorder.select_notifications(start=1, limit=100_000):
            if n.topic == Execution.Requested.TOPIC:  # type: ignore[attr-defined]
                execution = self.store.repository.get(n.originator_id)
                if execution.schedule_id == str(schedule_id):
                    found.append(execution)
        return found


@pytest.fixture
def world() -> World:
    return World()


# -- the aggregate ------------------------------------------------------------


def test_a_new_schedule_is_enabled_in_utc_with_no_runs_yet() -> None:
    with acting_as(Actor("local", "alice")):
        schedule = Schedule.new("local", DAILY)
    assert schedule.fields["timezone"] == "UTC"
    assert schedule.enabled is True
    assert schedule.fields["last_run_at"] is None and schedule.fields["last_execution_id"] is None


@pytest.mark.parametrize("missing", ["name", "cron_expression", "crew_id"])
def test_a_schedule_needs_a_name_a_cron_expression_and_a_crew(missing: str) -> None:
    with acting_as(Actor("local", "alice")), pytest.raises(InvalidError) as error:
        Schedule.new("local", {k: v for k, v in DAILY.items() if k != missing})
    assert missing in [field for field, _ in error.value.errors]


def test_an_inline_crew_needs_both_agents_and_tasks() -> None:
    with acting_as(Actor("local", "alice")), pytest.raises(InvalidError):
        Schedule.new("local", {"name": "x", "cron_expression": "0 9 * * *", "agents_yaml": AGENTS})


def test_a_slot_fires_once() -> None:
    with acting_as(Actor("local", "alice")):
        schedule = Schedule.new("local", DAILY)
        schedule.fire(slot=iso(at(2025, 5, 1, 9)), execution_id="e1", fired_at=iso(at(2025, 5, 1, 9)),
                      catch_up=False, next_run_at=iso(at(2025, 5, 2, 9)))
        with pytest.raises(ConflictError):
            schedule.fire(slot=iso(at(2025, 5, 1, 9)), execution_id="e2", fired_at=iso(at(2025, 5, 1, 9)),
                          catch_up=False, next_run_at=iso(at(2025, 5, 2, 9)))
    assert schedule.fields["last_execution_id"] == "e1"


def test_a_disabled_or_deleted_schedule_cannot_fire() -> None:
    with acting_as(Actor("local", "alice")):
        disabled = Schedule.new("local", {**DAILY, "enabled": False})
        deleted = Schedule.new("local", DAILY)
        deleted.delete()
        for schedule in (disabled, deleted):
            with pytest.raises((ConflictError, NotFoundError)):
                schedule.fire(slot=iso(at(2025, 5, 1, 9)), execution_id="e", fired_at=iso(at(2025, 5, 1, 9)),
                              catch_up=False, next_run_at=None)


def test_replacing_the_definition_keeps_the_run_history() -> None:
    with acting_as(Actor("local", "alice")):
        schedule = Schedule.new("local", DAILY)
        schedule.fire(slot=iso(at(2025, 5, 1, 9)), execution_id="e1", fired_at=iso(at(2025, 5, 1, 9)),
                      catch_up=True, next_run_at=iso(at(2025, 5, 2, 9)))
        schedule.replace({**DAILY, "name": "Renamed"})
    assert schedule.name == "Renamed"
    assert schedule.fields["last_execution_id"] == "e1" and schedule.fields["last_run_was_catch_up"] is True


def test_fire_events_have_stable_topics() -> None:
    assert Schedule.Fired.TOPIC == "schedule.fired.v1"  # type: ignore[attr-defined]
    assert Schedule.Skipped.TOPIC == "schedule.skipped.v1"  # type: ignore[attr-defined]


# -- next run --------------------------------------------------------------------


def test_a_new_schedule_counts_its_next_run_from_now(world: World) -> None:
    schedule_id = world.create()
    assert world.schedule(schedule_id).next_run_at == iso(at(2025, 5, 1, 9))


def test_an_invalid_cron_expression_is_refused_with_kasals_message(world: World) -> None:
    with pytest.raises(InvalidError, match="^Invalid cron expression: "):
        world.create(cron_expression="0 9 * * * *")


def test_a_disabled_schedule_has_no_next_run_and_enabling_counts_from_then(world: World) -> None:
    schedule_id = world.create()
    world.as_user(world.schedules.toggle, schedule_id)
    assert world.schedule(schedule_id).next_run_at is None
    world.clock.set(at(2025, 5, 3, 10))
    world.as_user(world.schedules.toggle, schedule_id)
    assert world.schedule(schedule_id).next_run_at == iso(at(2025, 5, 4, 9))


def test_changing_the_time_zone_moves_the_next_run(world: World) -> None:
    schedule_id = world.create()
    world.as_user(world.schedules.change, schedule_id, {"timezone": "Europe/Berlin"})
    assert world.schedule(schedule_id).next_run_at == iso(at(2025, 5, 2, 7))  # 09:00 CEST


def test_renaming_keeps_the_pending_next_run(world: World) -> None:
    schedule_id = world.create()
    world.clock.set(at(2025, 5, 1, 9, 30))  # 09:00 is due but not fired yet
    world.as_user(world.schedules.change, schedule_id, {"name": "Renamed"})
    assert world.schedule(schedule_id).next_run_at == iso(at(2025, 5, 1, 9))


def test_a_change_to_what_the_crew_runs_with_is_judged_on_the_schedule_it_leaves(world: World) -> None:
    schedule_id = world.create()
    world.as_user(world.schedules.change, schedule_id, {"inputs": {"report_date": "tomorrow"}})
    judged = world.crews.checked[-1]
    assert (judged["crew_id"], judged["inputs"]) == (DAILY["crew_id"], {"report_date": "tomorrow"})
    assert judged["cron_expression"] == DAILY["cron_expression"]


def test_pointing_a_schedule_at_an_unknown_crew_is_refused_and_records_nothing(world: World) -> None:
    schedule_id = world.create()
    before = world.schedule(schedule_id).version
    world.crews.unknown.add(GONE_CREW)
    with pytest.raises(InvalidError):
        world.as_user(world.schedules.change, schedule_id, {"crew_id": GONE_CREW})
    assert world.schedule(schedule_id).version == before
    assert world.schedule(schedule_id).fields["crew_id"] == DAILY["crew_id"]


def test_a_change_that_leaves_the_crew_alone_does_not_judge_it_again(world: World) -> None:
    schedule_id = world.create()
    world.crews.unknown.add(DAILY["crew_id"])  # deleted since: its slots are skipped, saying so
    world.as_user(world.schedules.change, schedule_id, {"name": "Renamed"})
    assert world.schedule(schedule_id).name == "Renamed"


# -- firing ----------------------------------------------------------------------


def test_nothing_fires_before_the_first_slot(world: World) -> None:
    world.create()
    assert world.tick_at(at(2025, 5, 1, 8, 59, 59)) == []


def test_a_due_slot_starts_one_execution_as_the_scheduler(world: World) -> None:
    schedule_id = world.create()
    [outcome] = world.tick_at(at(2025, 5, 1, 9, 0, 1))
    [execution] = world.executions_of(schedule_id)
    assert outcome.execution_id == execution.id == slot_execution_id(schedule_id, iso(at(2025, 5, 1, 9)))
    assert execution.snapshot["options"]["schedule"] == {"id": str(schedule_id), "slot": iso(at(2025, 5, 1, 9)),
                                                         "catch_up": False}
    assert execution.inputs == {"report_date": "today"} and execution.run_name == "Daily Reports"
    schedule = world.schedule(schedule_id)
    assert schedule.fields["last_execution_id"] == str(execution.id)
    assert schedule.next_run_at == iso(at(2025, 5, 2, 9))
    actors = {e.actor for e in world.store.events.get(schedule_id)} | {
        e.actor for e in world.store.events.get(execution.id)}
    assert SCHEDULER_ACTOR in actors and "alice@example.com" in actors


def test_ticking_again_in_the_same_slot_starts_nothing(world: World) -> None:
    schedule_id = world.create()
    world.tick_at(at(2025, 5, 1, 9, 0, 1))
    assert world.tick_at(at(2025, 5, 1, 9, 0, 30)) == []
    assert world.tick_at(at(2025, 5, 1, 23, 0)) == []
    assert len(world.executions_of(schedule_id)) == 1


def test_each_day_gets_its_own_run(world: World) -> None:
    schedule_id = world.create()
    for day in range(1, 4):
        world.tick_at(at(2025, 5, day, 9, 0, 5))
    assert len(world.executions_of(schedule_id)) == 3


def test_many_missed_slots_give_one_catch_up_run_for_the_latest(world: World) -> None:
    schedule_id = world.create(cron_expression="0 * * * *")
    [outcome] = world.tick_at(at(2025, 5, 3, 14, 20))
    assert outcome.slot == at(2025, 5, 3, 14) and outcome.catch_up is True
    schedule = world.schedule(schedule_id)
    assert schedule.fields["last_run_was_catch_up"] is True
    assert schedule.next_run_at == iso(at(2025, 5, 3, 15))


def test_a_run_within_the_grace_period_is_not_a_catch_up(world: World) -> None:
    world.create()
    [outcome] = world.tick_at(at(2025, 5, 1, 9) + CATCH_UP_AFTER)
    assert outcome.catch_up is False


def test_disabled_and_deleted_schedules_never_fire(world: World) -> None:
    disabled = world.create(enabled=False)
    deleted = world.create()
    world.as_user(world.schedules.delete, deleted)
    assert world.tick_at(at(2025, 5, 2, 9, 0, 1)) == []
    assert world.executions_of(disabled) == [] and world.executions_of(deleted) == []


def test_a_slot_whose_crew_cannot_run_is_skipped_with_the_reason(world: World) -> None:
    schedule_id = world.create()
    world.planner.broken.add(DAILY["crew_id"])
    [outcome] = world.tick_at(at(2025, 5, 1, 9, 1))
    assert outcome.execution_id is None and "not found" in (outcome.skipped_reason or "")
    schedule = world.schedule(schedule_id)
    assert "not found" in schedule.fields["last_error"] and schedule.next_run_at == iso(at(2025, 5, 2, 9))
    assert world.tick_at(at(2025, 5, 1, 9, 2)) == []


def test_a_fire_and_its_execution_are_saved_together_or_not_at_all(world: World) -> None:
    """If the execution cannot be saved, the schedule does not record the slot as fired."""
    schedule_id = world.create()
    slot = iso(at(2025, 5, 1, 9))
    with acting_as(Actor("local", "someone")):
        squatter = Execution.request("local", run_name="x", model="m", inputs={}, snapshot={},
                                     id=slot_execution_id(schedule_id, slot))
    world.store.record(squatter)
    world.clock.set(at(2025, 5, 1, 9, 1))
    with pytest.raises(IntegrityError):
        world.scheduler.fire_due(schedule_id, world.clock.now())
    assert world.schedule(schedule_id).fields["last_slot"] is None


def test_an_october_night_in_berlin_fires_once(world: World) -> None:
    world.clock.set(at(2025, 10, 25, 12))
    schedule_id = world.create(cron_expression="30 2 * * *", timezone="Europe/Berlin")
    for minutes in range(0, 6 * 60, 10):  # 22:00 UTC on the 25th to 04:00 UTC on the 26th
        world.tick_at(at(2025, 10, 25, 22) + timedelta(minutes=minutes))
    [execution] = world.executions_of(schedule_id)
    assert execution.snapshot["options"]["schedule"]["slot"] == iso(at(2025, 10, 26, 0, 30))  # 02:30 CEST


def test_the_march_gap_in_berlin_runs_at_three_oclock(world: World) -> None:
    world.clock.set(at(2025, 3, 29, 12))
    schedule_id = world.create(cron_expression="30 2 * * *", timezone="Europe/Berlin")
    fired = [o for m in range(0, 6 * 60, 10) for o in world.tick_at(at(2025, 3, 29, 22) + timedelta(minutes=m))]
    assert [o.slot for o in fired] == [at(2025, 3, 30, 1, 0)]  # 03:00 CEST, the moment clocks jump
    assert world.schedule(schedule_id).next_run_at == iso(at(2025, 3, 31, 0, 30))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=6 * 60), min_size=1, max_size=12),
       st.sampled_from(["*/20 * * * *", "0 * * * *", "30 2 * * *"]),
       st.sampled_from(["UTC", "Europe/Berlin"]))
def test_any_ticks_fire_each_slot_at_most_once_and_keep_up(gaps: list[int], expression: str, zone: str) -> None:
    world = World()
    world.clock.set(at(2025, 10, 25, 20))
    schedule_id = world.create(cron_expression=expression, timezone=zone)
    now = world.clock.now()
    for gap in gaps:
        now += timedelta(minutes=gap)
        world.tick_at(now)
        last = world.schedule(schedule_id).fields["last_slot"]
        latest = latest_at_or_before(expression, zone, now)
        assert last is None or latest is not None and last == iso(latest)
        if latest is not None and latest > at(2025, 10, 25, 20):
            assert last == iso(latest)
    slots = [e.snapshot["options"]["schedule"]["slot"] for e in world.executions_of(schedule_id)]
    assert len(slots) == len(set(slots))
    assert slots == sorted(slots, key=datetime.fromisoformat)
