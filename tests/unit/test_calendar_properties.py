"""services/routing/calendar.py against a brute-force reference: walk the UTC minutes one
by one, ask for each whether a slot of its local day or the day before covers it (the
rules written out again, plainly), and count. The calendar under test jumps over whole
intervals and merges slots across days; the two must agree to the minute, in time zones
with odd offsets and with daylight saving time."""
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.routing.calendar import (
    Closure, DateOverride, OfficialYear, OverrideKind, Slot, StoreCalendar, StoreHours)

MINUTE = timedelta(minutes=1)
WINDOW_DAYS = 9
# Shanghai; Urumqi (UTC+6); Kathmandu (+05:45, a quarter-hour offset); Berlin (DST at
# 02:00/03:00) and Santiago (DST at midnight): the windows below straddle their changes.
ZONES = ("Asia/Shanghai", "Asia/Urumqi", "Asia/Kathmandu", "Europe/Berlin", "America/Santiago")
FIRST_DAYS = (date(2025, 3, 27), date(2025, 10, 23), date(2025, 9, 26), date(2026, 2, 11),
              date(2025, 4, 3), date(2025, 9, 4),  # America/Santiago changes at midnight
              date(2026, 12, 27))  # the last runs into a year without an official list


@dataclass
class FakeHolidays:
    years: dict

    def official_year(self, year):
        return self.years.get(year)


slots = st.builds(lambda start, length: Slot(start * 15, start * 15 + length * 15),
                  st.integers(0, 95), st.integers(1, 96))
day_slots = st.lists(slots, max_size=3).map(tuple)


@st.composite
def scenarios(draw):
    zone = draw(st.sampled_from(ZONES))
    first = draw(st.sampled_from(FIRST_DAYS)) + timedelta(days=draw(st.integers(0, 3)))
    window = [first + timedelta(days=n) for n in range(WINDOW_DAYS)]
    some_days = st.lists(st.sampled_from(window), max_size=3, unique=True)
    holidays, workdays = draw(some_days), draw(some_days)
    workdays = [d for d in workdays if d not in holidays]
    years = {y: OfficialYear(y, frozenset(d for d in holidays if d.year == y),
                             frozenset(d for d in workdays if d.year == y))
             for y in {first.year, first.year - 1} if y < 2027}
    closures = tuple(Closure(d, d + timedelta(days=draw(st.integers(0, 2))), "装修")
                     for d in draw(st.lists(st.sampled_from(window), max_size=2)))
    overrides = {d: DateOverride(d, kind, draw(day_slots) if kind is OverrideKind.CUSTOM else ())
                 for d in draw(some_days)
                 for kind in [draw(st.sampled_from(list(OverrideKind)))]}
    hours = StoreHours(weekly=tuple(draw(day_slots) for _ in range(7)), workday=draw(day_slots),
                       observes_holidays=draw(st.booleans()), closures=closures)
    return zone, first, hours, overrides, FakeHolidays(years)


def reference_slots(day, hours, overrides, holidays):
    for closure in hours.closures:
        if closure.first_day <= day <= closure.last_day:
            return ()
    if day in overrides:
        override = overrides[day]
        if override.kind is OverrideKind.CLOSED:
            return ()
        return hours.workday if override.kind is OverrideKind.WORKDAY else override.slots
    official = holidays.official_year(day.year)
    if hours.observes_holidays and official:
        if day in official.holidays:
            return ()
        if day in official.workdays:
            return hours.workday
    return hours.weekly[day.weekday()]


class Reference:
    def __init__(self, zone, hours, overrides, holidays):
        self.zone, self.args = ZoneInfo(zone), (hours, overrides, holidays)

    def wall(self, day, minutes):
        naive = datetime.combine(day, time()) + timedelta(minutes=minutes)
        return naive.replace(tzinfo=self.zone).astimezone(timezone.utc)

    def is_open(self, minute):
        local = minute.astimezone(self.zone).date()
        return any(self.wall(day, slot.start) <= minute < self.wall(day, slot.end)
                   for day in (local - timedelta(days=1), local)
                   for slot in reference_slots(day, *self.args))

    def open_minutes(self, start, end):
        count, minute = 0, start
        while minute < end:
            count += self.is_open(minute)
            minute += MINUTE
        return count

    def add(self, start, minutes, limit):
        """The end of the `minutes`-th open minute from start, or None before `limit`."""
        if minutes == 0:
            return start
        moment = start
        while moment < limit:
            if self.is_open(moment):
                minutes -= 1
                if minutes == 0:
                    return moment + MINUTE
            moment += MINUTE
        return None


def _start(zone, first, offset_minutes):
    return datetime.combine(first, time(), ZoneInfo(zone)).astimezone(timezone.utc) + offset_minutes * MINUTE


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios(), st.integers(0, 2 * 24 * 60), st.integers(0, 3 * 24 * 60))
def test_elapsed_counts_the_open_minutes(scenario, offset, span):
    zone, first, hours, overrides, holidays = scenario
    calendar = StoreCalendar(zone, hours, overrides, holidays)
    start = _start(zone, first, offset)
    end = start + span * MINUTE
    assert calendar.elapsed(start, end) == Reference(zone, hours, overrides, holidays).open_minutes(start, end) * MINUTE


@PROPERTY
@given(scenarios(), st.integers(0, 2 * 24 * 60), st.integers(0, 20 * 60))
def test_add_lands_where_the_reference_does_and_inverts_elapsed(scenario, offset, minutes):
    zone, first, hours, overrides, holidays = scenario
    calendar = StoreCalendar(zone, hours, overrides, holidays)
    start = _start(zone, first, offset)
    expected = Reference(zone, hours, overrides, holidays).add(
        start, minutes, _start(zone, first, WINDOW_DAYS * 24 * 60))
    assume(expected is not None)  # enough open time inside the window
    due = calendar.add(start, minutes * MINUTE)
    assert due == expected
    assert calendar.elapsed(start, due) == minutes * MINUTE


@PROPERTY
@given(scenarios(), st.integers(0, 2 * 24 * 60), st.integers(0, 10 * 60), st.integers(0, 10 * 60))
def test_add_and_elapsed_are_monotonic(scenario, offset, shorter, longer):
    zone, first, hours, overrides, holidays = scenario
    shorter, longer = sorted((shorter, longer))
    calendar = StoreCalendar(zone, hours, overrides, holidays)
    assume(any(hours.weekly))  # closures and holidays are short: open time always comes
    start = _start(zone, first, offset)
    early, late = calendar.add(start, shorter * MINUTE), calendar.add(start, longer * MINUTE)
    assert start <= early <= late
    assert calendar.elapsed(start, early) <= calendar.elapsed(start, late)
    assert calendar.elapsed(start, late) - calendar.elapsed(start, early) == (longer - shorter) * MINUTE


@PROPERTY
@given(scenarios(), st.integers(0, WINDOW_DAYS * 24 * 60 - 1))
def test_is_open_agrees_with_the_reference(scenario, offset):
    zone, first, hours, overrides, holidays = scenario
    moment = _start(zone, first, offset)
    assert StoreCalendar(zone, hours, overrides, holidays).is_open(moment) == \
        Reference(zone, hours, overrides, holidays).is_open(moment)
