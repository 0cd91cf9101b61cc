"""services/reporting/periods.py: the period of a report from its query."""
from datetime import datetime, timedelta, timezone

import pytest

from closeloop_shared.clock import CHINA
from services.reporting.periods import BadPeriod, period

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
