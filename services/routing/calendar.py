"""Business calendars: when a store is open, and time arithmetic in open time.

Pure (no nameko, no pymongo). Datetimes in and out are timezone-aware (UTC); the
arithmetic is done in the store's IANA time zone.

A local date's opening time, first rule that applies:
1. a one-off store closure (renovation, inspection) covering the date: closed;
2. the chain's (brand's) override of that date: closed, a normal workday, or custom slots;
3. if the store observes statutory holidays and the year's official list is known:
   a holiday is closed, a make-up workday (调休, e.g. a working Saturday) has the hours
   of the store's normal workday;
4. the weekly slots of its weekday.
A year whose official list is unknown falls back to 4 and is reported in
`incomplete_years` (never guessed, never a crash).

A slot belongs to the day it starts on: 20:00-02:00 on a Friday runs into Saturday
01:59 even if Saturday is a holiday. Wall times are turned into instants with Python's
fold=0: an opening time inside a spring-forward gap moves past the gap, one inside a
repeated autumn hour is its first occurrence (so a slot spanning the repeated hour is
open through both).
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from typing import Iterator, Mapping, Protocol
from zoneinfo import ZoneInfo

import chinese_calendar

MINUTES_PER_DAY = 24 * 60
# How far add() looks for open time before it calls the calendar empty: longer than any
# closure or holiday run a store could have between two open slots.
SEARCH_HORIZON_DAYS = 3 * 366
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)\Z")


class CalendarError(ValueError):
    """A calendar cannot answer (no open time at all, naive datetime, bad slot)."""


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CalendarError(f"{moment!r} is naive: calendars take timezone-aware datetimes")
    return moment


def parse_hhmm(text: str) -> int:
    """'08:30' -> 510 minutes after midnight; '24:00' is allowed (as an end)."""
    match = _HHMM.match(text)
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise CalendarError(f"{text!r} is not a time HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


def format_hhmm(minutes: int) -> str:
    hours, mins = divmod(minutes % MINUTES_PER_DAY if minutes != MINUTES_PER_DAY else minutes, 60)
    return f"{hours:02d}:{mins:02d}"


@dataclass(frozen=True, order=True)
class Slot:
    """Open from `start` to `end`, minutes after the local midnight of the day it
    starts on; end > 1440 runs past midnight (at most 24 hours long)."""
    start: int
    end: int

    def __post_init__(self):
        if not (0 <= self.start < MINUTES_PER_DAY and self.start < self.end <= self.start + MINUTES_PER_DAY):
            raise CalendarError(f"invalid slot {self.start}-{self.end}")

    @classmethod
    def parse(cls, start: str, end: str) -> Slot:
        """From 'HH:MM' times; an end at or before the start runs past midnight
        ('20:00', '02:00'); equal times are refused."""
        first, last = parse_hhmm(start), parse_hhmm(end)
        if first == MINUTES_PER_DAY:
            raise CalendarError("a slot cannot start at 24:00")
        if first == last:
            raise CalendarError(f"slot {start}-{end} starts and ends at the same time")
        return cls(first, last if last > first else last + MINUTES_PER_DAY)

    def to_record(self) -> dict:
        return {"start": format_hhmm(self.start), "end": format_hhmm(self.end)}

    def __str__(self) -> str:
        return f"{format_hhmm(self.start)}-{format_hhmm(self.end)}"

    @classmethod
    def from_record(cls, record: Mapping) -> Slot:
        return cls.parse(record["start"], record["end"])


def overlapping(slots: tuple[Slot, ...]) -> tuple[Slot, Slot] | None:
    """The first two slots of one day that overlap, or None."""
    ordered = sorted(slots)
    return next(((a, b) for a, b in zip(ordered, ordered[1:]) if b.start < a.end), None)


def weekly_overlap(weekly: tuple[tuple[Slot, ...], ...]) -> tuple[int, Slot, Slot] | None:
    """(weekday, slot, slot of the next weekday it runs into) where a slot past
    midnight overlaps the next day's slots, or an overlap within one day."""
    for weekday, slots in enumerate(weekly):
        clash = overlapping(slots)
        if clash:
            return (weekday, *clash)
        following = weekly[(weekday + 1) % 7]
        for slot in slots:
            for later in following:
                if later.start + MINUTES_PER_DAY < slot.end:
                    return (weekday, slot, later)
    return None


@dataclass(frozen=True)
class OfficialYear:
    """A year's statutory holidays and make-up workdays, as the State Council published them."""
    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]


class HolidaySource(Protocol):
    def official_year(self, year: int) -> OfficialYear | None: ...


@functools.cache
def library_year(year: int) -> OfficialYear | None:
    """The year from chinese-calendar (chinesecalendar on PyPI), or None when the
    library does not know it yet."""
    days = [date(year, 1, 1) + timedelta(days=n) for n in range((date(year + 1, 1, 1) - date(year, 1, 1)).days)]
    try:
        details = [(day, *chinese_calendar.get_holiday_detail(day)) for day in days]
    except NotImplementedError:
        return None
    # a named day off is statutory (weekends inside the holiday included); a named day on is a make-up workday
    return OfficialYear(year, frozenset(d for d, off, name in details if off and name),
                        frozenset(d for d, off, name in details if not off and name))


@dataclass(frozen=True)
class HolidayBook:
    """Official years: those published through the API or a data file first (they
    correct or extend the library), then the library's."""
    published: Mapping[int, OfficialYear] = field(default_factory=dict)

    def official_year(self, year: int) -> OfficialYear | None:
        return self.published.get(year) or library_year(year)


class OverrideKind(str, Enum):
    CLOSED = "closed"
    WORKDAY = "workday"   # open with the store's normal workday hours
    CUSTOM = "custom"     # open with the override's own slots


@dataclass(frozen=True)
class DateOverride:
    """A chain-wide decision about one date (e.g. the brand opens on a holiday)."""
    day: date
    kind: OverrideKind
    slots: tuple[Slot, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Closure:
    """A one-off store closure, first_day to last_day inclusive."""
    first_day: date
    last_day: date
    reason: str

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True)
class WallCalendar:
    """Wall-clock time: every moment counts (the promise to the customer, "24 hours")."""
    incomplete_years: frozenset[int] = frozenset()

    def add(self, start: datetime, duration: timedelta) -> datetime:
        if duration < timedelta(0):
            raise CalendarError("durations are not negative")
        return _aware(start) + duration

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        return max(_aware(end) - _aware(start), timedelta(0))

    def is_open(self, at: datetime) -> bool:
        _aware(at)
        return True


@dataclass(frozen=True)
class StoreHours:
    """A store's own settings: weekly slots Monday..Sunday, the hours of a normal
    workday (used on make-up workdays and 'workday' overrides), whether it closes on
    statutory holidays, and its one-off closures."""
    weekly: tuple[tuple[Slot, ...], ...]
    workday: tuple[Slot, ...]
    observes_holidays: bool = True
    closures: tuple[Closure, ...] = ()

    def __post_init__(self):
        if len(self.weekly) != 7:
            raise CalendarError("weekly hours need seven days, Monday first")


class StoreCalendar:
    """A store's opening time in its time zone (see the module docstring for the rules)."""

    def __init__(self, timezone_name: str, hours: StoreHours,
                 overrides: Mapping[date, DateOverride] | None = None,
                 holidays: HolidaySource | None = None):
        self.zone = ZoneInfo(timezone_name)
        self.hours = hours
        self.overrides = dict(overrides or {})
        self.holidays = holidays if holidays is not None else HolidayBook()
        self._days: dict[date, tuple[tuple[datetime, datetime], ...]] = {}
        self._years: dict[int, OfficialYear | None] = {}
        self._incomplete: set[int] = set()
        self._may_open = any(hours.weekly) or bool(hours.workday) or any(
            o.kind is OverrideKind.CUSTOM and o.slots for o in self.overrides.values())

    @property
    def incomplete_years(self) -> frozenset[int]:
        """Years this calendar consulted without an official list and so counted on
        weekly hours alone (only for stores that observe holidays)."""
        return frozenset(self._incomplete)

    def check_years(self, years) -> frozenset[int]:
        """Consult `years` now (e.g. this year and the next) so incomplete ones show
        before a deadline reaches them (a store open on holidays needs no list)."""
        for year in years if self.hours.observes_holidays else ():
            self._official(year)
        return self.incomplete_years

    # -- what a local date is -------------------------------------------------------

    def _official(self, year: int) -> OfficialYear | None:
        if year not in self._years:
            self._years[year] = self.holidays.official_year(year)
            if self._years[year] is None:
                self._incomplete.add(year)
        return self._years[year]

    def slots_on(self, day: date) -> tuple[Slot, ...]:
        """The slots starting on local date `day`, by the rules in order."""
        hours = self.hours
        if any(closure.covers(day) for closure in hours.closures):
            return ()
        override = self.overrides.get(day)
        if override is not None:
            return {OverrideKind.CLOSED: (), OverrideKind.WORKDAY: hours.workday,
                    OverrideKind.CUSTOM: override.slots}[override.kind]
        if hours.observes_holidays:
            official = self._official(day.year)
            if official is not None:
                if day in official.holidays:
                    return ()
                if day in official.workdays:
                    return hours.workday
        return hours.weekly[day.weekday()]

    def _instant(self, day: date, minutes: int) -> datetime:
        wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
        return wall.replace(tzinfo=self.zone).astimezone(timezone.utc)

    def _intervals_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        cached = self._days.get(day)
        if cached is None:
            cached = self._days[day] = tuple(sorted(
                (self._instant(day, s.start), self._instant(day, s.end)) for s in self.slots_on(day)))
        return cached

    def _open_intervals(self, start: datetime, until: datetime | None = None
                        ) -> Iterator[tuple[datetime, datetime]]:
        """Disjoint open intervals in time order, merged across slots and days, from
        the one containing or following `start` (to `until` if given). Raises
        CalendarError after SEARCH_HORIZON_DAYS without any open time."""
        if not self._may_open:
            raise CalendarError("the calendar has no open time at all")
        first = start.astimezone(self.zone).date() - timedelta(days=1)  # yesterday's slots may run into today
        current, last_open_day = None, first
        for day in (first + timedelta(days=n) for n in itertools.count()):
            if until is not None and self._instant(day, 0) > until:
                break
            intervals = self._intervals_on(day)
            if intervals:
                last_open_day = day
            elif (day - last_open_day).days > SEARCH_HORIZON_DAYS:
                raise CalendarError(f"no open time within {SEARCH_HORIZON_DAYS} days after {start.isoformat()}")
            for begin, end in intervals:
                if begin >= end:  # a slot swallowed by a spring-forward gap
                    continue
                if current is None:
                    current = (begin, end)
                elif begin <= current[1]:
                    current = (current[0], max(current[1], end))
                else:
                    if current[1] > start:
                        yield current
                    current = (begin, end)
            # later days' slots start after this day's midnight: what ends before it is final
            if current is not None and current[1] <= self._instant(day + timedelta(days=1), 0):
                if current[1] > start:
                    yield current
                current = None
        if current is not None and current[1] > start:
            yield current

    # -- the interface ---------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        at = _aware(at).astimezone(timezone.utc)
        local_day = at.astimezone(self.zone).date()
        return any(begin <= at < end
                   for day in (local_day - timedelta(days=1), local_day)
                   for begin, end in self._intervals_on(day))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of open time after `start` (start itself for zero)."""
        start = _aware(start).astimezone(timezone.utc)
        if duration < timedelta(0):
            raise CalendarError("durations are not negative")
        if not duration:
            return start
        remaining = duration
        for begin, end in self._open_intervals(start):
            begin = max(begin, start)
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        raise AssertionError("unreachable: _open_intervals is endless or raises")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Open time between start and end (zero if end is not after start)."""
        start = _aware(start).astimezone(timezone.utc)
        end = _aware(end).astimezone(timezone.utc)
        total = timedelta(0)
        if end <= start or not self._may_open:
            return total
        for begin, finish in self._open_intervals(start, until=end):
            if begin >= end:
                break
            total += min(finish, end) - max(begin, start)
        return total
