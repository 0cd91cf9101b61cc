"""Duty rosters, assignment and the shift-end handover (issue 7, item 1). Pure: no
nameko, no pymongo; instants are timezone-aware UTC, shift times are the store's local
wall-clock times.

A store's roster is a list of shifts. A shift runs on some weekdays, or on one date (a
holiday rota: on a date that has dated shifts, only those run), from a start to an end
time; an end at or before the start crosses midnight. Whoever is on a running shift and
still an active member of the store is on duty.

A new case goes to the person on duty whose role fits its severity and category
(ROLE_FIT: the one table to change), then to the one with the fewest open cases, then by
staff id; with nobody fitting (or no roster), to the people on the ladder's first rung
held from the severity's start. At a shift's end its people's open cases pass to the
next shift by the same rule (seed 004: "记录在工作记录本上,告之下个班次的同事").
"""
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from closeloop_shared.contract import Category, Role, Severity
from services.routing import ladder

# Who fits a case, as tiers of preference: the first tier with anyone on duty wins, and
# within a tier the fewest open cases. Severity decides before category.
MANAGERS = frozenset({Role.SUPERVISOR, Role.STORE_MANAGER})
ROLE_FIT = {
    Severity.CRITICAL: (frozenset({Role.STORE_MANAGER}), frozenset({Role.SUPERVISOR})),
    Severity.HIGH: (MANAGERS,),
    # a technician's skill or the store's hygiene is judged by someone above the floor
    Category.TECHNICIAN_SKILL: (MANAGERS,),
    Category.HYGIENE: (MANAGERS,),
}
DEFAULT_FIT = (frozenset({Role.STORE_STAFF}), MANAGERS)
# How far ahead a shift end looks for the next shift when the store is closed between them.
NEXT_SHIFT_HORIZON = timedelta(days=8)


def role_fit(category, severity):
    """The tiers of roles that fit a case, most preferred first."""
    return ROLE_FIT.get(Severity(severity)) or ROLE_FIT.get(Category(category)) or DEFAULT_FIT


def fits(person, category, severity):
    return any(person.role in tier for tier in role_fit(category, severity))


@dataclass(frozen=True)
class Shift:
    shift_id: str
    start: time
    end: time                              # at or before start: ends the next day
    staff_ids: tuple
    weekdays: frozenset = frozenset()      # 0 = Monday ... 6 = Sunday
    on_date: date | None = None            # instead of weekdays: this date only

    def runs_on(self, day, dated_days):
        if self.on_date is not None:
            return self.on_date == day
        return day not in dated_days and day.weekday() in self.weekdays

    def to_doc(self):
        return {"shift_id": self.shift_id, "start": self.start.strftime("%H:%M"),
                "end": self.end.strftime("%H:%M"), "staff_ids": list(self.staff_ids),
                "weekdays": sorted(self.weekdays),
                "date": self.on_date.isoformat() if self.on_date else None}

    @classmethod
    def from_doc(cls, doc):
        return cls(doc["shift_id"], time.fromisoformat(doc["start"]), time.fromisoformat(doc["end"]),
                   tuple(doc["staff_ids"]), frozenset(doc.get("weekdays") or ()),
                   date.fromisoformat(doc["date"]) if doc.get("date") else None)


@dataclass(frozen=True)
class Roster:
    store_id: str
    shifts: tuple = ()
    version: int = 0

    def to_doc(self):
        return {"store_id": self.store_id, "version": self.version,
                "shifts": [shift.to_doc() for shift in self.shifts]}

    @classmethod
    def from_doc(cls, doc):
        return cls(doc["store_id"], tuple(Shift.from_doc(s) for s in doc["shifts"]), doc["version"])


@dataclass(frozen=True)
class Occurrence:
    """One shift on one day, as UTC instants."""
    shift: Shift
    starts_at: datetime
    ends_at: datetime

    def covers(self, at):
        return self.starts_at <= at < self.ends_at


def occurrences(roster, timezone, first_day, last_day):
    """The shifts starting on the local days first_day..last_day, in start order."""
    zone = ZoneInfo(timezone)
    dated = {s.on_date for s in roster.shifts if s.on_date is not None}
    found, day = [], first_day
    while day <= last_day:
        for shift in roster.shifts:
            if shift.runs_on(day, dated):
                starts = datetime.combine(day, shift.start, zone)
                ends = datetime.combine(day + timedelta(days=shift.end <= shift.start), shift.end, zone)
                found.append(Occurrence(shift, starts.astimezone(ZoneInfo("UTC")),
                                        ends.astimezone(ZoneInfo("UTC"))))
        day += timedelta(days=1)
    return sorted(found, key=lambda o: (o.starts_at, o.shift.shift_id))


def _local_day(org, store_id, at):
    return at.astimezone(ZoneInfo(org.stores[store_id].timezone)).date()


def _running(roster, org, store_id, at):
    day = _local_day(org, store_id, at)
    return [o for o in occurrences(roster, org.stores[store_id].timezone, day - timedelta(days=1), day)
            if o.covers(at)]


def _members(org, store_id, staff_ids):
    """The active members of the store among staff_ids, by staff id."""
    people = (org.staff.get(staff_id) for staff_id in set(staff_ids))
    return tuple(sorted((p for p in people if p is not None and p.active and p.store_id == store_id),
                        key=lambda p: p.staff_id))


def on_duty(roster, org, store_id, at):
    """The active members of the store on a shift running at `at`, by staff id."""
    if roster is None:
        return ()
    return _members(org, store_id, [i for o in _running(roster, org, store_id, at) for i in o.shift.staff_ids])


def choose_assignee(candidates, category, severity, open_counts):
    """The candidate in the first fitting tier with the fewest open cases (then the
    smallest staff id), or None when nobody fits."""
    for tier in role_fit(category, severity):
        fitting = [p for p in candidates if p.role in tier]
        if fitting:
            return min(fitting, key=lambda p: (open_counts.get(p.staff_id, 0), p.staff_id))
    return None


@dataclass(frozen=True)
class Assignment:
    person: object                 # closeloop_shared.org.Staff
    on_duty: bool                  # False: nobody on duty fitted, the ladder's rung took it


def assign(roster, org, store_id, category, severity, open_counts, at):
    """Whom a new case goes to: the fitting person on duty, else the person with the
    fewest open cases on the ladder's first rung held from the severity's start and the
    lowest role that fits (the top rung held when none above is)."""
    chosen = choose_assignee(on_duty(roster, org, store_id, at), category, severity, open_counts)
    if chosen is not None:
        return Assignment(chosen, True)
    rungs = ladder.resolve_rungs(org, store_id)
    lowest_fitting = min(ladder.LEVEL_OF_ROLE[role] for tier in role_fit(category, severity) for role in tier)
    rung = next((r for r in rungs[max(ladder.start_level(severity), lowest_fitting):] if r.present), None) \
        or next(r for r in reversed(rungs) if r.present)
    people = [org.staff[staff_id] for staff_id in rung.people]
    return Assignment(min(people, key=lambda p: (open_counts.get(p.staff_id, 0), p.staff_id)), False)


@dataclass(frozen=True)
class OpenCase:
    case_id: str
    assignee_id: str
    category: str
    severity: str


@dataclass(frozen=True)
class Handover:
    case_id: str
    from_id: str
    to: object                     # closeloop_shared.org.Staff
    shift_id: str                  # the shift that ended
    next_shift_id: str


def shift_ends(roster, org, store_id, after, until):
    """The instants in (after, until] at which shifts of the roster end, in order."""
    zone_day = lambda at: _local_day(org, store_id, at)  # noqa: E731
    found = occurrences(roster, org.stores[store_id].timezone,
                        zone_day(after) - timedelta(days=1), zone_day(until))
    return sorted({o.ends_at for o in found if after < o.ends_at <= until})


def _next_shift(roster, org, store_id, at):
    """The shifts running at `at`, else those starting first after it (a store closed
    overnight hands over to the morning shift)."""
    running = _running(roster, org, store_id, at)
    if running:
        return running
    day = _local_day(org, store_id, at)
    later = [o for o in occurrences(roster, org.stores[store_id].timezone, day,
                                    day + NEXT_SHIFT_HORIZON) if o.starts_at > at]
    return [o for o in later if o.starts_at == later[0].starts_at] if later else []


def shift_handover(roster, org, store_id, open_cases, ended_at, open_counts=None):
    """The handovers at `ended_at`, when one or more shifts end: each open case of a
    person leaving (on a shift ending then, and on no shift running on) passes to the
    fitting person of the next shift with the fewest open cases (counting the cases
    handed over so far). A case nobody on the next shift fits stays with its owner (its
    ladder keeps climbing if nobody acknowledges it)."""
    day = _local_day(org, store_id, ended_at)
    ending = [o for o in occurrences(roster, org.stores[store_id].timezone, day - timedelta(days=1), day)
              if o.ends_at == ended_at]
    staying = {i for o in _running(roster, org, store_id, ended_at) for i in o.shift.staff_ids}
    leaving = {i: o.shift.shift_id for o in ending for i in o.shift.staff_ids if i not in staying}
    following = _next_shift(roster, org, store_id, ended_at)
    successors = _members(org, store_id, [i for o in following for i in o.shift.staff_ids])
    shift_of = {i: o.shift.shift_id for o in reversed(following) for i in o.shift.staff_ids}
    counts = dict(open_counts or {})
    handovers = []
    for case in sorted(open_cases, key=lambda c: c.case_id):
        if case.assignee_id not in leaving:
            continue
        to = choose_assignee(successors, case.category, case.severity, counts)
        if to is None:
            continue
        counts[to.staff_id] = counts.get(to.staff_id, 0) + 1
        handovers.append(Handover(case.case_id, case.assignee_id, to, leaving[case.assignee_id],
                                  shift_of[to.staff_id]))
    return handovers


def open_counts(cases):
    """{staff_id: number of open cases} of OpenCase-s."""
    counts = {}
    for case in cases:
        counts[case.assignee_id] = counts.get(case.assignee_id, 0) + 1
    return counts
