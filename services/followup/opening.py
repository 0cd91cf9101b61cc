"""When a store is open, as followup knows it from routing's announcements
(store_calendar_changed): the weekly slots and the dates that differ from them
(closures, statutory holidays, make-up workdays, brand overrides) up to a horizon.
routing owns the calendars; this is followup's copy, to put revisit calls and
appointment reminders where the store is open (a customer who calls back reaches
someone). Pure: no nameko, no pymongo; datetimes are aware.

A slot belongs to the local day it starts on (as in routing): 20:00-02:00 on a Friday
is open on Saturday until 02:00. Before routing announced a store, followup counts it
open all day (the customer's contact hours alone decide), as it did before calendars."""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60
ALL_DAY = ((0, MINUTES_PER_DAY),)
# How far a call or a reminder looks for a day the store is open in the customer's
# contact hours before it gives up and keeps the customer's hours alone (a store closed
# that long is being renovated: better planned than dropped).
SEARCH_DAYS = 62
# A reminder whose day before is closed goes on the last open day before that, at most
# this many days ahead of the appointment.
REMINDER_LOOKBACK_DAYS = 3


@dataclass(frozen=True)
class OpeningHours:
    timezone: str
    weekly: tuple = (ALL_DAY,) * 7         # Monday first: ((start, end) minutes, ...)
    exceptions: dict = field(default_factory=dict)  # date -> ((start, end), ...); () closed
    horizon_to: date | None = None         # dates after it count on the weekly slots
    # answers already worked out (a pure function of the fields): planning a year for a
    # million customers asks the same few days and hours again and again
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def always_open(cls, tz):
        return cls(tz)

    @classmethod
    def from_announcement(cls, announced):
        """From a loaded store_calendar_changed payload (or the stored copy of one)."""
        def slots(records):
            return tuple(sorted((int(s["start"]), int(s["end"])) for s in records))
        return cls(announced["timezone"], tuple(slots(day) for day in announced["weekly"]),
                   {_day(e["date"]): slots(e["slots"]) for e in announced.get("exceptions") or ()},
                   _day(announced.get("horizon_to")))

    @property
    def zone(self):
        zone = self._memo.get("zone")
        if zone is None:
            zone = self._memo["zone"] = ZoneInfo(self.timezone)
        return zone

    def slots_on(self, day):
        """The slots starting on local `day` (an exception inside the horizon, else its weekday's)."""
        if day in self.exceptions:
            return self.exceptions[day]
        return self.weekly[day.weekday()]

    def windows_on(self, day):
        """[(start, end)) minutes of local `day` the store is open, merged: the day's own
        slots up to midnight and the previous day's running past it."""
        windows = self._memo.get(day)
        if windows is None:
            windows = self._memo[day] = self._windows_on(day)
        return windows

    def _windows_on(self, day):
        parts = [(start, min(end, MINUTES_PER_DAY)) for start, end in self.slots_on(day)]
        parts += [(0, end - MINUTES_PER_DAY) for _, end in self.slots_on(day - timedelta(days=1))
                  if end > MINUTES_PER_DAY]
        return _merged(parts)

    def contact_windows(self, day, hours):
        """The minutes of `day` the store is open and the customer may be called."""
        low, high = hours.start_hour * 60, hours.end_hour * 60
        return [(max(start, low), min(end, high)) for start, end in self.windows_on(day)
                if max(start, low) < min(end, high)]

    def is_open(self, moment):
        local = moment.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.windows_on(local.date()))

    def instant(self, day, minute):
        return datetime.combine(day, time(minute // 60, minute % 60), self.zone).astimezone(timezone.utc)

    def first_open(self, moment):
        """`moment` if the store is open then, else when it next opens (within
        SEARCH_DAYS; a store closed longer keeps `moment`: better late than never asked)."""
        local = moment.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        for offset in range(SEARCH_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            for start, end in self.windows_on(day):
                if offset == 0 and end <= minute:
                    continue
                if offset == 0 and start <= minute:
                    return moment
                return self.instant(day, start)
        return moment


def _day(value):
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    return value.date() if isinstance(value, datetime) else date.fromisoformat(value)


def _merged(parts):
    merged = []
    for start, end in sorted(p for p in parts if p[0] < p[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _marks(windows):
    """The moments a call may be placed at: each window's start and every hour after it."""
    return [minute for start, end in windows for minute in range(start, end, 60)]


def call_time(day, hours, attempt, opening):
    """The moment (UTC) of attempt `attempt` (0-based) of a revisit call planned for
    local `day`: on the first day from `day` on when the store is open during the
    customer's contact hours; the first attempt at the start of that common time, each
    retry at another hour of it (a customer busy mornings is tried later). With no such
    day within SEARCH_DAYS, the customer's hours on `day` alone."""
    key = ("call", day, hours.start_hour, hours.end_hour, attempt)
    if key not in opening._memo:
        opening._memo[key] = _call_time(day, hours, attempt, opening)
    return opening._memo[key]


def _call_time(day, hours, attempt, opening):
    for candidate in (day + timedelta(days=n) for n in range(SEARCH_DAYS)):
        marks = _marks(opening.contact_windows(candidate, hours))
        if marks:
            choices = sorted({0, len(marks) // 2, len(marks) - 1})
            return opening.instant(candidate, marks[choices[attempt % len(choices)]])
    return call_time(day, hours, attempt, OpeningHours.always_open(opening.timezone))


def reminder_time(starts_at, hour, quiet, opening, now):
    """The day-before reminder of an appointment starting at `starts_at` (UTC), or None.
    The store-local day before at `hour` if the store is open then and it is not quiet;
    else the first moment of that day after `hour` (then before it) when both hold; a
    day before when the store is closed gives way to the last open day before it (at
    most REMINDER_LOOKBACK_DAYS ahead), and a store closed all that time to the
    customer's hour alone. None when that moment has passed or is not before the
    appointment (a booking made the evening before: its confirmation is the reminder)."""
    appointment_day = starts_at.astimezone(opening.zone).date()
    for calendar in (opening, OpeningHours.always_open(opening.timezone)):
        for back in range(1, REMINDER_LOOKBACK_DAYS + 1):
            moment = _first_good(appointment_day - timedelta(days=back), hour, quiet, calendar)
            if moment is not None:
                return moment if now < moment < starts_at else None
    return None


def _first_good(day, hour, quiet, opening):
    minutes = [m for start, end in opening.windows_on(day) for m in range(start, end, 15)]
    for minute in [m for m in minutes if m >= hour * 60] + [m for m in minutes if m < hour * 60]:
        moment = opening.instant(day, minute)
        if quiet is None or not quiet.contains(moment.astimezone(opening.zone)):
            return moment
    return None


def changed_spans(old, new, today):
    """The store-local days from `today` on whose open hours differ between followup's
    previous copy `old` (None: none, open all day) and `new`: [(first, last)] spans,
    `last` None for "and every day after" (the weekly slots changed, which is what the
    days past the announced horizon count on). Waiting calls and reminders on these
    days are checked again; on the other days nothing moved."""
    old = old or OpeningHours.always_open(new.timezone)
    if old.weekly != new.weekly or old.timezone != new.timezone:
        return [(today, None)]
    last = max(d for d in (old.horizon_to, new.horizon_to, today) if d is not None)
    spans = []
    for day in (today + timedelta(days=n) for n in range((last - today).days + 1)):
        if old.windows_on(day) == new.windows_on(day):
            continue
        if spans and spans[-1][1] == day - timedelta(days=1):
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    return spans
