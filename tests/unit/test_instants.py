"""The one ISO 8601 parser every ``since``, ``until`` and ``as_of`` goes through (and the export's flags).

Whatever a client writes for an instant, the answer is the same aware UTC
instant or a ValueError (which the API turns into a 422): never another
exception, which would be a 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.exceptions import ValidationException

from interface.http.common import instant_param, parse_instant

DAY_S = 24 * 60 * 60
# Whole seconds: ISO 8601 offsets are hours and minutes, and Python 3.11 drops an offset's microseconds.
offsets = st.integers(-DAY_S + 1, DAY_S - 1).map(lambda seconds: timezone(timedelta(seconds=seconds)))
zones = st.one_of(st.just(UTC), offsets, st.timezones())
# A day inside either end: every offset keeps these within the years a datetime holds once in UTC.
inner = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
edges = st.one_of(st.datetimes(min_value=datetime(9999, 12, 30, 12), timezones=offsets),
                  st.datetimes(max_value=datetime(1, 1, 2, 12), timezones=offsets))
iso_ish = st.text(alphabet="0123456789-:+.TtZz W\u0661\uff11", max_size=40)


def utc(text: str) -> datetime:
    parsed = parse_instant(text)
    assert parsed.tzinfo is UTC, text
    return parsed


@given(inner)
def test_an_aware_instant_reads_back_as_the_same_instant_in_utc(moment: datetime) -> None:
    written, same = moment.isoformat(), moment.astimezone(UTC)  # (a zone's repeated hour never equals UTC's)
    assert utc(written) == same
    assert utc(f" {written}\n") == same
    if moment.utcoffset() == timedelta(0):
        assert utc(written.replace("+00:00", "Z")) == utc(written.replace("+00:00", "z")) == same


@given(st.datetimes())
def test_an_instant_without_an_offset_is_utc(moment: datetime) -> None:
    assert utc(moment.isoformat()) == moment.replace(tzinfo=UTC)
    assert utc(moment.isoformat(sep=" ", timespec="seconds")) == moment.replace(microsecond=0, tzinfo=UTC)


@given(st.dates())
def test_a_date_is_its_midnight_in_utc(day: date) -> None:
    assert utc(day.isoformat()) == datetime(day.year, day.month, day.day, tzinfo=UTC)


@given(edges)
def test_instants_beyond_the_years_a_datetime_holds_in_utc_are_a_value_error(moment: datetime) -> None:
    try:
        assert utc(moment.isoformat()) == moment
    except ValueError:
        with pytest.raises(OverflowError):
            moment.astimezone(UTC)


@pytest.mark.parametrize("text", ["9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59.999999-00:01",
                                  "0001-01-01T00:00:00+05:00", "0001-01-01T00:30+01:00"])
def test_the_first_and_last_instants_moved_out_of_range_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="beyond"):
        parse_instant(text)


@given(st.one_of(st.text(), iso_ish))
def test_anything_else_is_a_value_error_and_nothing_else(text: str) -> None:
    try:
        parsed = parse_instant(text)
    except ValueError:
        return
    assert parsed.tzinfo is UTC


@given(st.one_of(st.text(), iso_ish))
def test_a_query_parameter_is_an_instant_a_422_naming_it_or_blank(text: str) -> None:
    try:
        parsed = instant_param(text, "since", blank_is_none=True)
    except ValidationException as error:
        assert error.extra == [{"message": error.detail, "key": "since", "source": "query"}]
        with pytest.raises(ValueError):
            parse_instant(text)
        return
    assert parsed is None if not text.strip() else parsed == parse_instant(text)


def test_blank_is_a_422_unless_the_parameter_treats_it_as_not_given() -> None:
    assert instant_param(None, "as_of") is None
    assert instant_param("  ", "since", blank_is_none=True) is None
    with pytest.raises(ValidationException):
        instant_param("", "as_of")
