"""Cron and time-zone arithmetic for schedules: when is a schedule's next run, and which
scheduled time ("slot") is due now.

A cron expression (exactly five fields: minute hour day-of-month month
day-of-week) is read in the schedule's IANA time zone, as wall-clock times,
and every match is turned into one UTC instant. Slots are those UTC
instants, so "fire each slot once" is well defined even when the wall clock
jumps. The daylight-saving rule (DST), chosen so that every calendar day's
matches run exactly once:

- Clocks go back (a wall time happens twice, e.g. 02:30 on the last Sunday
  of October in Europe/Berlin): the match runs at the *first* occurrence
  only; the repeated hour adds no runs.
- Clocks go forward (a wall time never happens, e.g. 02:30 on the last
  Sunday of March in Europe/Berlin): the match runs at the moment the clocks
  jump (03:00 local), as Vixie cron does. Several matches that fall into one
  gap (``*/15 2 * * *``) become one run at that moment, together with any
  match at the jump itself.

The mapping from wall time to instant never goes backwards, which is what
lets ``next_after`` and ``latest_at_or_before`` walk the wall-clock matches
in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from domain.errors import InvalidError

FIELDS = 5
# A daylight-saving change shifts wall time by at most a couple of hours.
TRANSITION_WINDOW = timedelta(hours=3)
# How many repeated/skipped wall times one search may step over before giving up.
MAX_STEPS = 10_000


def zone_of(name: str | None) -> ZoneInfo:
    """The IANA time zone ``name`` (default UTC), or InvalidError."""
    key = (name or "UTC").strip()
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidError(
            f"Invalid time zone: {name!r} is not an IANA time zone name (e.g. 'UTC', 'Europe/Berlin')",
            errors=[("timezone", "unknown IANA time zone")],
        ) from None


def check_expression(expression: str, zone_name: str | None = None) -> None:
    """Refuse anything but a five-field cron expression that matches some date, and unknown zones."""
    expression = (expression or "").strip()
    if len(expression.split()) != FIELDS:
        raise _invalid(expression, "expected five fields: minute hour day-of-month month day-of-week")
    if not croniter.is_valid(expression):
        raise _invalid(expression, "a field is malformed or out of range")
    zone_of(zone_name)
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise _invalid(expression, "it never matches a date") from None


def next_after(expression: str, zone_name: str | None, after: datetime) -> datetime:
    """The first slot strictly after ``after`` (a UTC-aware instant)."""
    zone = zone_of(zone_name)
    after = after.astimezone(UTC)
    for slot in _slots_forward(expression, zone, _wall(after, zone)):
        if slot > after:
            return slot
    raise _invalid(expression, "no run found after " + after.isoformat())


def latest_at_or_before(expression: str, zone_name: str | None, now: datetime) -> datetime | None:
    """The last slot at or before ``now``; None if the expression has none in range."""
    zone = zone_of(zone_name)
    now = now.astimezone(UTC)
    start = _wall(now, zone)
    if now.astimezone(zone).utcoffset() != (now - TRANSITION_WINDOW).astimezone(zone).utcoffset():
        # Just after clocks went back, later wall times than now's may already have passed.
        start += TRANSITION_WINDOW
    # croniter's get_prev excludes its start, so start one second past a whole minute.
    start = start.replace(microsecond=0) + timedelta(seconds=1)
    for slot in _slots_backward(expression, zone, start):
        if slot <= now:
            return slot
    return None


def iso(instant: datetime) -> str:
    """The one text form of instants in events and read models (UTC, ISO 8601)."""
    return instant.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- wall clock ↔ instants -------------------------------------------------


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a wall-clock match runs at, by the DST rule of this module."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first  # exists; the first occurrence when the hour repeats
    # Skipped by clocks going forward: run when they jump. PEP 495 reads a skipped
    # time with the offset after the change for fold=1 (an instant before the jump)
    # and with the offset before it for fold=0 (one after), so the jump lies between.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _transition(before, first, zone)


def _transition(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first whole second in (before, after] with ``after``'s UTC offset."""
    target = after.astimezone(zone).utcoffset()
    lo, hi = int(before.timestamp()), int(after.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _slots_forward(expression: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    matches = croniter(expression, start)
    for _ in range(MAX_STEPS):
        yield _instant(matches.get_next(datetime), zone)


def _slots_backward(expression: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    matches = croniter(expression, start)
    for _ in range(MAX_STEPS):
        try:
            wall = matches.get_prev(datetime)
        except CroniterError:
            return
        yield _instant(wall, zone)


def _invalid(expression: str, why: str) -> InvalidError:
    return InvalidError(
        f"Invalid cron expression: {expression!r}: {why}",
        errors=[("cron_expression", why)],
    )
