"""Cron and time-zone arithmetic: which slots a schedule has, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from application.cron import check_expression, latest_at_or_before, next_after
from domain.errors import InvalidError

UTC = UTC
BERLIN = "Europe/Berlin"
ZONES = ["UTC", BERLIN, "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]
EXPRESSIONS = ["30 2 * * *", "0 9 * * 1-5", "*/15 * * * *", "0 */6 * * *", "15 2,3 * * *", "0 0 1 * *", "45 1 * * 0"]


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def slots(expression: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    found, cursor = [], start
    while (cursor := next_after(expression, zone, cursor)) <= end:
        found.append(cursor)
    return found


instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31),
                        timezones=st.just(UTC))


# -- validation ------------------------------------------------------------


@pytest.mark.parametrize("expression", ["0 9 * * * *", "0 9 * *", "@daily", "", "every day", "0 9 * * * 2025"])
def test_only_five_field_expressions_are_accepted(expression: str) -> None:
    with pytest.raises(InvalidError, match=r"^Invalid cron expression: .*five fields"):
        check_expression(expression)


@pytest.mark.parametrize("expression", ["61 * * * *", "0 25 * * *", "* * 32 * *", "a b c d e"])
def test_out_of_range_fields_are_an_invalid_cron_expression(expression: str) -> None:
    with pytest.raises(InvalidError, match=r"^Invalid cron expression: "):
        check_expression(expression)


def test_an_expression_that_never_matches_is_invalid() -> None:
    with pytest.raises(InvalidError, match=r"^Invalid cron expression: .*never matches"):
        check_expression("0 0 31 2 *")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "/etc/localtime", "utc+2"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(InvalidError, match="^Invalid time zone"):
        check_expression("0 9 * * *", zone)


def test_a_valid_expression_and_zone_pass() -> None:
    check_expression("0 9 * * 1-5", BERLIN)


# -- plain time zones ---------------------------------------------------------


def test_the_next_run_of_a_daily_schedule_is_the_next_day_after_its_time() -> None:
    assert next_after("0 9 * * *", "UTC", at(2025, 5, 1, 9, 0)) == at(2025, 5, 2, 9, 0)
    assert next_after("0 9 * * *", "UTC", at(2025, 5, 1, 8, 59, 59)) == at(2025, 5, 1, 9, 0)


def test_the_schedules_time_is_read_in_its_zone() -> None:
    assert next_after("0 9 * * *", "Asia/Kolkata", at(2025, 5, 1)) == at(2025, 5, 1, 3, 30)


def test_the_latest_slot_includes_now_itself() -> None:
    assert latest_at_or_before("0 9 * * *", "UTC", at(2025, 5, 1, 9, 0)) == at(2025, 5, 1, 9, 0)
    assert latest_at_or_before("0 9 * * *", "UTC", at(2025, 5, 1, 8, 59)) == at(2025, 4, 30, 9, 0)


@settings(max_examples=200, deadline=None)
@given(instants, st.sampled_from(EXPRESSIONS))
def test_in_utc_slots_are_exactly_croniters_matches(after: datetime, expression: str) -> None:
    expected = croniter(expression, after.replace(tzinfo=None)).get_next(datetime).replace(tzinfo=UTC)
    assert next_after(expression, "UTC", after) == expected


# -- daylight saving: Europe/Berlin -------------------------------------------


def test_a_time_skipped_in_march_runs_when_the_clocks_jump() -> None:
    """2025-03-30: 02:00 CET becomes 03:00 CEST, so 02:30 never happens; the run is at 03:00 CEST."""
    slot = next_after("30 2 * * *", BERLIN, at(2025, 3, 29, 12))
    assert slot == at(2025, 3, 30, 1, 0)
    assert slot.astimezone(ZoneInfo(BERLIN)).strftime("%H:%M %Z") == "03:00 CEST"
    assert next_after("30 2 * * *", BERLIN, slot) == at(2025, 3, 31, 0, 30)


def test_several_times_inside_the_march_gap_become_one_run() -> None:
    day = slots("*/15 2-3 * * *", BERLIN, at(2025, 3, 29, 23), at(2025, 3, 30, 3))
    local = [s.astimezone(ZoneInfo(BERLIN)).strftime("%H:%M") for s in day]
    assert local == ["03:00", "03:15", "03:30", "03:45"]


def test_a_time_repeated_in_october_runs_once_at_its_first_occurrence() -> None:
    """2025-10-26: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice; only the first one runs."""
    day = slots("30 2 * * *", BERLIN, at(2025, 10, 25, 12), at(2025, 10, 26, 23))
    assert day == [at(2025, 10, 26, 0, 30)]
    assert day[0].astimezone(ZoneInfo(BERLIN)).strftime("%H:%M %Z") == "02:30 CEST"


def test_during_the_repeated_hour_the_slot_already_passed_is_the_latest() -> None:
    second_0230 = at(2025, 10, 26, 1, 30)  # 02:30 CET, the repeat
    assert latest_at_or_before("30 2 * * *", BERLIN, second_0230) == at(2025, 10, 26, 0, 30)
    assert next_after("30 2 * * *", BERLIN, second_0230) == at(2025, 10, 27, 1, 30)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("expression", ["30 2 * * *", "0 0 * * *", "59 23 * * *"])
def test_a_daily_schedule_runs_once_on_every_calendar_day_of_a_year(zone: str, expression: str) -> None:
    start = datetime(2025, 1, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    end = datetime(2026, 1, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC) - timedelta(seconds=1)
    found = slots(expression, zone, start - timedelta(seconds=1), end)
    days = [s.astimezone(ZoneInfo(zone)).date() for s in found]
    assert days == [date(2025, 1, 1) + timedelta(days=n) for n in range(365)]


# -- properties ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(instants, st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES))
def test_the_next_slot_is_later_and_the_latest_slot_is_not(now: datetime, expression: str, zone: str) -> None:
    upcoming = next_after(expression, zone, now)
    latest = latest_at_or_before(expression, zone, now)
    assert upcoming > now
    assert latest is not None and latest <= now
    assert next_after(expression, zone, latest) == upcoming


@settings(max_examples=200, deadline=None)
@given(instants, st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES))
def test_a_slot_is_its_own_latest_slot(now: datetime, expression: str, zone: str) -> None:
    slot = next_after(expression, zone, now)
    assert latest_at_or_before(expression, zone, slot) == slot
    assert latest_at_or_before(expression, zone, slot - timedelta(microseconds=1)) < slot  # type: ignore[operator]
