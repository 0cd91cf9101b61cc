"""services/routing/calendar.py on named days: National Day 2025 with its make-up
Sunday and Saturday, Spring Festival 2026, a 2027 date without an official list, slots
past midnight, overrides, closures, daylight saving time, and the guards."""
import time as clock
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.routing.calendar import (
    CalendarError, Closure, DateOverride, HolidayBook, OfficialYear, OverrideKind, Slot, StoreCalendar,
    StoreHours, WallCalendar, library_year, weekly_overlap)

SHANGHAI = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
DAY = (Slot.parse("10:00", "21:00"),)            # 11 hours
WEEKDAYS_ONLY = (DAY,) * 5 + ((), ())              # an office-like store: closed at weekends
EVERY_DAY = (DAY,) * 7                             # most salons


def local(*args, zone=SHANGHAI):
    return datetime(*args, tzinfo=zone).astimezone(timezone.utc)


def store(weekly=WEEKDAYS_ONLY, workday=DAY, observes=True, closures=(), overrides=None, zone="Asia/Shanghai",
          holidays=None):
    return StoreCalendar(zone, StoreHours(weekly, workday, observes, tuple(closures)), overrides, holidays)


def test_library_knows_national_day_2025_and_its_make_up_days():
    year = library_year(2025)
    assert {date(2025, 10, d) for d in range(1, 9)} <= year.holidays
    assert {date(2025, 9, 28), date(2025, 10, 11)} <= year.workdays  # a Sunday and a Saturday
    assert library_year(2027) is None


def test_national_day_2025_is_closed_and_the_make_up_days_open():
    calendar = store()
    assert calendar.is_open(local(2025, 9, 28, 12))       # Sunday, make-up workday
    assert not calendar.is_open(local(2025, 10, 1, 12))
    assert not calendar.is_open(local(2025, 10, 8, 12))   # the eighth day off
    assert calendar.is_open(local(2025, 10, 11, 12))      # Saturday, make-up workday
    assert not calendar.is_open(local(2025, 10, 12, 12))  # an ordinary Sunday
    # the eve of the holiday, 20:00: 1 hour that evening, 11 each on Thursday 9, Friday 10,
    # Saturday 11 (make-up) and Monday 13 (Sunday 12 closed): 45; the last 3 on Tuesday 14
    due = calendar.add(local(2025, 9, 30, 20), timedelta(hours=48))
    assert due == local(2025, 10, 14, 13)
    assert calendar.elapsed(local(2025, 9, 30, 20), due) == timedelta(hours=48)


def test_a_store_open_on_holidays_ignores_them_and_the_make_up_days():
    calendar = store(weekly=EVERY_DAY, observes=False)
    assert calendar.is_open(local(2025, 10, 1, 12))
    assert calendar.elapsed(local(2025, 10, 1), local(2025, 10, 9)) == 8 * 11 * H
    assert calendar.incomplete_years == frozenset()


def test_spring_festival_2026():
    calendar = store(weekly=EVERY_DAY)
    closed = [date(2026, 2, d) for d in range(15, 24)]
    assert not any(calendar.is_open(local(d.year, d.month, d.day, 12)) for d in closed)
    assert calendar.is_open(local(2026, 2, 14, 12)) and calendar.is_open(local(2026, 2, 24, 12))
    # from Saturday 14 (make-up) 20:00, 2 open hours: 20:00-21:00, then Tuesday 24 10:00-11:00
    assert calendar.add(local(2026, 2, 14, 20), 2 * H) == local(2026, 2, 24, 11)


def test_a_year_without_an_official_list_falls_back_to_weekly_hours_and_says_so():
    calendar = store(weekly=EVERY_DAY)
    national_day_2027 = local(2027, 10, 1, 12)
    assert calendar.is_open(national_day_2027)
    assert calendar.incomplete_years == frozenset({2027})
    assert calendar.check_years([2026, 2027, 2028]) == frozenset({2027, 2028})


def test_a_published_year_completes_the_calendar():
    published = {2027: OfficialYear(2027, frozenset({date(2027, 10, 1)}), frozenset({date(2027, 9, 26)}))}
    calendar = store(holidays=HolidayBook(published))
    assert not calendar.is_open(local(2027, 10, 1, 12))
    assert calendar.is_open(local(2027, 9, 26, 12))   # a Sunday made a workday
    assert calendar.incomplete_years == frozenset()


def test_slots_past_midnight_belong_to_the_day_they_start():
    late = (Slot.parse("20:00", "02:00"),)
    calendar = store(weekly=((),) * 4 + (late, (), ()), observes=False)  # Fridays only
    assert calendar.is_open(local(2025, 11, 8, 1, 59))        # Saturday small hours
    assert not calendar.is_open(local(2025, 11, 8, 2))
    assert calendar.add(local(2025, 11, 7, 23), 3 * H) == local(2025, 11, 8, 2)
    assert calendar.add(local(2025, 11, 7, 23), 4 * H) == local(2025, 11, 14, 21)


def test_several_slots_a_day_and_a_break_at_lunch():
    split = (Slot.parse("09:00", "12:00"), Slot.parse("13:30", "18:00"))
    calendar = store(weekly=(split,) * 7, observes=False)
    assert not calendar.is_open(local(2025, 11, 5, 12, 30))
    assert calendar.add(local(2025, 11, 5, 11), 2 * H) == local(2025, 11, 5, 14, 30)


def test_brand_overrides_and_store_closures():
    overrides = {date(2025, 10, 1): DateOverride(date(2025, 10, 1), OverrideKind.CUSTOM,
                                                 (Slot.parse("12:00", "16:00"),), "国庆开门"),
                 date(2025, 10, 2): DateOverride(date(2025, 10, 2), OverrideKind.WORKDAY),
                 date(2025, 11, 3): DateOverride(date(2025, 11, 3), OverrideKind.CLOSED)}
    calendar = store(overrides=overrides, closures=[Closure(date(2025, 10, 2), date(2025, 10, 2), "停电")])
    assert calendar.elapsed(local(2025, 10, 1), local(2025, 10, 2)) == 4 * H
    assert calendar.elapsed(local(2025, 10, 2), local(2025, 10, 3)) == timedelta(0)  # the closure wins
    assert not calendar.is_open(local(2025, 11, 3, 12))


def test_daylight_saving_time_changes_the_length_of_a_slot():
    berlin = ZoneInfo("Europe/Berlin")
    night = (Slot.parse("01:00", "04:00"),)
    calendar = store(weekly=(night,) * 7, observes=False, zone="Europe/Berlin")
    assert calendar.elapsed(local(2025, 3, 30, zone=berlin), local(2025, 3, 31, zone=berlin)) == 2 * H
    assert calendar.elapsed(local(2025, 10, 26, zone=berlin), local(2025, 10, 27, zone=berlin)) == 4 * H
    assert calendar.elapsed(local(2025, 11, 2, zone=berlin), local(2025, 11, 3, zone=berlin)) == 3 * H


def test_a_calendar_without_open_time_says_so_instead_of_looping():
    with pytest.raises(CalendarError, match="no open time"):
        store(weekly=((),) * 7, workday=()).add(local(2025, 11, 5), H)
    closed_for_good = store(closures=[Closure(date(2025, 1, 1), date(2030, 1, 1), "停业")])
    with pytest.raises(CalendarError, match="no open time within"):
        closed_for_good.add(local(2025, 11, 5), H)
    assert closed_for_good.elapsed(local(2025, 11, 5), local(2025, 12, 5)) == timedelta(0)


def test_guards():
    with pytest.raises(CalendarError):
        store().add(datetime(2025, 11, 5, 12), H)  # naive
    with pytest.raises(CalendarError):
        store().add(local(2025, 11, 5), -H)
    with pytest.raises(CalendarError):
        Slot.parse("10:00", "10:00")
    with pytest.raises(CalendarError):
        Slot.parse("24:00", "02:00")
    assert Slot.parse("00:00", "24:00") == Slot(0, 1440)
    assert weekly_overlap(((Slot.parse("20:00", "02:00"),), (Slot.parse("01:00", "05:00"),)) + ((),) * 5)


def test_wall_calendar_counts_every_moment():
    wall, start = WallCalendar(), local(2025, 10, 1)
    assert wall.add(start, 24 * H) == start + 24 * H
    assert wall.elapsed(start, start + 5 * H) == 5 * H
    assert wall.is_open(start) and wall.incomplete_years == frozenset()


def test_forty_eight_business_hours_take_well_under_a_millisecond():
    start, runs = local(2025, 9, 30, 20), 200
    began = clock.perf_counter()
    for _ in range(runs):
        store().add(start, 48 * H)  # a fresh calendar each time: nothing cached but the library's years
    assert (clock.perf_counter() - began) / runs < 0.001
