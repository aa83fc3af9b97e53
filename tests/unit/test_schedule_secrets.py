"""A schedule's secret-looking inputs: sealed before any event, opened only for the run it fires."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from application.schedules import inputs_associated_data
from domain.context import Actor, acting_as
from domain.redaction import REDACTED
from domain.schedule import SEALED_INPUTS, Schedule
from tests.fakes import FakeSecretBox, ListedExecutionIndex
from tests.unit.test_schedule_domain import DAILY, World, at

SECRET = "tok-9f8e7d6c5b4a-PRIVATE"
INPUTS = {"report_date": "today", "SERVICE_TOKEN": SECRET, "db": {"password": "pw-0123456789", "host": "db.local"}}


@pytest.fixture
def world() -> World:
    return World()


def stored(world: World) -> list[bytes]:
    return [n.state for n in world.store.recorder.select_notifications(start=1, limit=100_000)]


def leaks(world: World, *secrets: str) -> list[bytes]:
    return [state for state in stored(world) if any(s.encode() in state for s in secrets)]


def fired_inputs(world: World, when: Any) -> dict[str, Any]:
    """The inputs the runner gets for the run ``when``'s tick starts."""
    [outcome] = world.tick_at(when)
    assert outcome.execution_id is not None, outcome.skipped_reason
    world.executions.index = ListedExecutionIndex([outcome.execution_id])
    job = world.executions.claim_next("r1")
    assert job is not None
    return job.inputs


class ChangedKeyBox(FakeSecretBox):
    """The box after ``KASAL_SECRET_KEY`` changed: nothing sealed before opens."""

    def decrypt(self, token: str, *, associated_data: bytes = b"") -> str:
        raise ValueError("wrong key")


def test_secret_inputs_are_sealed_before_any_event(world: World) -> None:
    schedule_id = world.create(inputs=INPUTS)
    schedule = world.schedule(schedule_id)
    assert schedule.fields["inputs"] == {"report_date": "today", "SERVICE_TOKEN": REDACTED,
                                         "db": {"password": REDACTED, "host": "db.local"}}
    assert schedule.fields[SEALED_INPUTS].startswith(FakeSecretBox.PREFIX)
    assert leaks(world, SECRET, "pw-0123456789") == []


def test_a_fired_run_gets_the_secret_inputs_and_its_events_redact_them(world: World) -> None:
    world.create(inputs=INPUTS)
    assert fired_inputs(world, at(2025, 5, 1, 9, 0)) == INPUTS
    assert leaks(world, SECRET, "pw-0123456789") == []


def test_a_secret_sent_back_redacted_keeps_its_value_and_a_new_one_replaces_it(world: World) -> None:
    schedule_id = world.create(inputs=INPUTS)
    shown = world.schedule(schedule_id).fields["inputs"]
    world.as_user(world.schedules.change, schedule_id, {"inputs": {**shown, "report_date": "tomorrow"}})
    assert fired_inputs(world, at(2025, 5, 1, 9, 0)) == {**INPUTS, "report_date": "tomorrow"}
    world.as_user(world.schedules.change, schedule_id, {"inputs": {**shown, "SERVICE_TOKEN": "tok-rotated-000111"}})
    assert fired_inputs(world, at(2025, 5, 2, 9, 0))["SERVICE_TOKEN"] == "tok-rotated-000111"
    assert leaks(world, SECRET, "tok-rotated-000111") == []


def test_sending_the_shown_inputs_back_records_nothing(world: World) -> None:
    schedule_id = world.create(inputs=INPUTS)
    before = world.schedule(schedule_id)
    written = world.as_user(world.schedules.change, schedule_id, {"inputs": before.fields["inputs"]})
    assert written.version == before.version


def test_removing_the_secret_inputs_drops_their_ciphertext(world: World) -> None:
    schedule_id = world.create(inputs=INPUTS)
    world.as_user(world.schedules.change, schedule_id, {"inputs": {"report_date": "today"}})
    assert world.schedule(schedule_id).fields[SEALED_INPUTS] is None


def test_sealed_inputs_are_bound_to_their_schedule_and_group(world: World) -> None:
    schedule_id = world.create(inputs=INPUTS)
    token = world.schedule(schedule_id).fields[SEALED_INPUTS]
    assert world.box.decrypt(token, associated_data=inputs_associated_data("local", schedule_id))
    for group, other in (("local", UUID(int=1)), ("other", schedule_id)):
        with pytest.raises(ValueError):
            world.box.decrypt(token, associated_data=inputs_associated_data(group, other))


def test_a_schedule_whose_secrets_no_longer_open_skips_its_slot_saying_why(world: World) -> None:
    schedule_id = world.create(inputs=INPUTS)
    world.scheduler.box = ChangedKeyBox()
    [outcome] = world.tick_at(at(2025, 5, 1, 9, 0))
    assert outcome.execution_id is None and "cannot be decrypted" in str(outcome.skipped_reason)
    assert world.executions_of(schedule_id) == []


def test_the_schedule_refuses_plaintext_secrets_so_no_path_can_forget_to_seal() -> None:
    with acting_as(Actor("local", "alice")), pytest.raises(ValueError, match="plaintext secret"):
        Schedule.new("local", {**DAILY, "inputs": INPUTS})


def test_a_schedule_stored_in_plaintext_before_sealing_is_sealed_by_its_next_change(world: World) -> None:
    with acting_as(Actor("local", "alice")):
        legacy = Schedule._create(Schedule.Created, group_id="local", fields=Schedule.prepare({
            **DAILY, "next_run_at": "2025-05-01T09:00:00+00:00"}) | {"inputs": INPUTS})
    world.store.record(legacy)
    world.as_user(world.schedules.toggle, legacy.id)
    latest = list(world.store.repository.event_store.get(legacy.id))[-1]
    assert latest.changes["inputs"]["SERVICE_TOKEN"] == REDACTED and latest.changes[SEALED_INPUTS]
    world.as_user(world.schedules.toggle, legacy.id)
    assert fired_inputs(world, at(2025, 5, 2, 9, 0)) == INPUTS
