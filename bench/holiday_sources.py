"""Compare the two holiday libraries on mainland China's statutory holidays and make-up
workdays (调休), the data the business calendars (services/routing/calendar.py) rest on.

    .venv/bin/python -m bench.holiday_sources            # chinese-calendar only (pinned)
    pip install holidays==0.108 && python -m bench.holiday_sources   # both, side by side

For each year it prints the days off on weekdays, the weekend days that are statutory,
and the make-up workdays each library gives, and where they differ. `holidays` has no
structured make-up workdays for China (only the 'substituted from MM/DD/YYYY' text of a
day off), so they are read from that text: a library that needs this is the weaker one.
"""
import re
import sys
from datetime import datetime

from services.routing.calendar import library_year

YEARS = (2025, 2026, 2027)
_SUBSTITUTED = re.compile(r"substituted from (\d\d/\d\d/\d{4})")


def holidays_year(year):
    """(days off, make-up workdays) from the `holidays` package, or None if absent."""
    try:
        import holidays
    except ImportError:
        return None
    days = holidays.China(years=year)
    off = frozenset(days)
    workdays = frozenset(datetime.strptime(m.group(1), "%m/%d/%Y").date()
                         for name in days.values() for m in [_SUBSTITUTED.search(name)] if m)
    return off, workdays


def _days(dates):
    return " ".join(d.strftime("%m-%d%a")[:8] for d in sorted(dates)) or "-"


def main():
    for year in YEARS:
        print(f"== {year}")
        official = library_year(year)
        other = holidays_year(year)
        if official is None:
            print("chinese-calendar: year unknown (NotImplementedError)")
        else:
            print(f"chinese-calendar  off ({len(official.holidays)}): {_days(official.holidays)}")
            print(f"chinese-calendar  make-up workdays: {_days(official.workdays)}")
        if other is None:
            print("holidays: not installed (pip install holidays==0.108 to compare)")
            continue
        off, workdays = other
        print(f"holidays          off ({len(off)}): {_days(off)}")
        print(f"holidays          make-up workdays (parsed from names): {_days(workdays)}")
        if official is not None:
            weekday_off = frozenset(d for d in official.holidays if d.weekday() < 5)
            print(f"  weekday days off only in chinese-calendar: {_days(weekday_off - off)}")
            print(f"  days off only in holidays: {_days(off - official.holidays)}")
            print(f"  make-up workdays differing: {_days(official.workdays ^ workdays)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
