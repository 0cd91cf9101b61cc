"""services/reporting/periods.py: the period of a report from its query."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared.clock import CHINA
from services.reporting.periods import MAX_LENGTH, BadPeriod, period

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def test_default_is_the_seven_days_up_to_now():
    assert period(None, None, NOW) == (NOW - timedelta(days=7), NOW)


def test_plain_dates_are_china_days_and_to_includes_its_day():
    start, end = period("2026-11-24", "2026-11-24", NOW)
    assert start == datetime(2026, 11, 24, tzinfo=CHINA)
    assert end == datetime(2026, 11, 25, tzinfo=CHINA)


def test_datetimes_without_zone_are_china_time():
    start, _ = period("2026-11-20T09:30:00", None, NOW)
    assert start == datetime(2026, 11, 20, 9, 30, tzinfo=CHINA)


@pytest.mark.parametrize("start, end, field", [
    ("yesterday", None, "from"), (None, "0001-01-01", "to"), ("0001-01-01", None, "from"),
    ("2026-11-25", "2026-11-20", "from"),
])
def test_bad_periods_name_the_field(start, end, field):
    with pytest.raises(BadPeriod) as bad:
        period(start, end, NOW)
    assert bad.value.field == field


def test_a_report_covers_at_most_max_length():
    assert MAX_LENGTH == timedelta(days=366)
    # a leap year, 2024-01-01 .. 2024-12-31 inclusive: exactly 366 days
    start, end = period("2024-01-01", "2024-12-31", NOW)
    assert end - start == MAX_LENGTH
    with pytest.raises(BadPeriod) as bad:
        period("2024-01-01", "2025-01-01", NOW)
    assert bad.value.field == "from" and "366" in bad.value.message


def test_the_bound_holds_for_datetimes_to_the_second():
    start = datetime(2025, 1, 1, 12, 0, tzinfo=CHINA)
    end = start + MAX_LENGTH
    assert period(start.isoformat(), end.isoformat(), NOW) == (start, end)
    with pytest.raises(BadPeriod):
        period(start.isoformat(), (end + timedelta(seconds=1)).isoformat(), NOW)


def test_a_from_alone_long_ago_is_refused_too():
    """`to` defaults to now: a bare `from` years back would scan years."""
    with pytest.raises(BadPeriod) as bad:
        period("2020-01-01", None, NOW)
    assert bad.value.field == "from"
    assert period("2026-01-01", None, NOW) == (datetime(2026, 1, 1, tzinfo=CHINA), NOW)


@given(st.integers(min_value=1, max_value=800))
def test_any_period_of_whole_days_up_to_the_bound_is_accepted(days):
    start = datetime(2025, 3, 1, tzinfo=CHINA)
    last_day = (start + timedelta(days=days - 1)).date().isoformat()
    if days <= MAX_LENGTH.days:
        begin, end = period("2025-03-01", last_day, NOW)
        assert end - begin == timedelta(days=days)
    else:
        with pytest.raises(BadPeriod):
            period("2025-03-01", last_day, NOW)
