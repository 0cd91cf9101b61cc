"""Business calendars as use cases: read, validate and save a store's hours, its
closures, a brand's date overrides and the official holiday lists of a year; and
`calendar_for`, the StoreCalendar the SLA engine counts business time on.

Where a year's official list comes from, first found: published over HTTP (stored in
routing's `calendars`), a YAML file in services/routing/calendar_data/, the
chinese-calendar library. A year none of them knows falls back to weekly hours and shows
in `incomplete_years` (the service raises a metric and logs a warning)."""
import functools
import time as monotonic_clock
import uuid
from datetime import date, timedelta
from pathlib import Path

import yaml

from closeloop_shared.config import CALENDAR_DEFAULT_HOURS, DEFAULTS
from closeloop_shared.contract import Role
from services.routing.calendar import (
    Closure, DateOverride, HolidayBook, OfficialYear, OverrideKind, Slot, StoreCalendar,
    StoreHours, library_year)

CALENDAR_DATA = Path(__file__).with_name("calendar_data")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CACHE_SECONDS = 30  # how long another replica may count on hours changed elsewhere


class CalendarNotFound(Exception):
    """An unknown store or brand, or one outside the caller's scope (answered 404 alike)."""


# -- records <-> domain --------------------------------------------------------------

def parse_hours(text):
    """'10:00-14:00,15:00-21:00' -> (Slot, Slot)."""
    return tuple(Slot.parse(*part.strip().split("-")) for part in text.split(",") if part.strip())


def _slots(records):
    return tuple(Slot.from_record(r) for r in records)


def _slot_records(slots):
    return [slot.to_record() for slot in slots]


def store_hours(record, default_hours):
    """The store's StoreHours from its record (None: never set up, the defaults)."""
    if record is None or "weekly" not in record:
        daily = parse_hours(default_hours)
        hours = StoreHours(weekly=(daily,) * 7, workday=daily, observes_holidays=False)
    else:
        hours = StoreHours(weekly=tuple(_slots(record["weekly"].get(day, [])) for day in WEEKDAYS),
                           workday=_slots(record["workday"]), observes_holidays=record["observes_holidays"])
    closures = tuple(Closure(date.fromisoformat(c["first_day"]), date.fromisoformat(c["last_day"]), c["reason"])
                     for c in (record or {}).get("closures", []))
    return StoreHours(hours.weekly, hours.workday, hours.observes_holidays, closures)


def brand_overrides(record):
    return {date.fromisoformat(o["date"]): DateOverride(date.fromisoformat(o["date"]), OverrideKind(o["kind"]),
                                                        _slots(o.get("slots", [])), o.get("note", ""))
            for o in (record or {}).get("overrides", [])}


def official_year(record):
    return OfficialYear(record["year"], frozenset(date.fromisoformat(d) for d in record["holidays"]),
                        frozenset(date.fromisoformat(d) for d in record["workdays"]))


def year_problems(year, holidays, workdays):
    """{field: [message]} for a year list that cannot be right."""
    problems = {}
    for field, days in (("holidays", holidays), ("workdays", workdays)):
        outside = sorted(d.isoformat() for d in days if d.year != year)
        if outside:
            problems[field] = [f"dates outside {year}: {', '.join(outside)}"]
        if len(set(days)) != len(days):
            problems.setdefault(field, []).append("a date is listed twice")
    both = sorted(d.isoformat() for d in set(holidays) & set(workdays))
    if both:
        problems.setdefault("workdays", []).append(f"both a holiday and a workday: {', '.join(both)}")
    return problems


@functools.cache
def bundled_years(directory=CALENDAR_DATA):
    """{year: OfficialYear} from the YAML files in `directory` (`<year>.yaml`: year,
    holidays, workdays, source). A file that contradicts itself stops the start-up."""
    years = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        year = int(document["year"])
        holidays, workdays = ([date.fromisoformat(str(d)) for d in document.get(field) or []]
                              for field in ("holidays", "workdays"))
        problems = year_problems(year, holidays, workdays)
        if problems:
            raise ValueError(f"{path}: {problems}")
        years[year] = OfficialYear(year, frozenset(holidays), frozenset(workdays))
    return years


def holiday_book(repository):
    """Published years over bundled files (the library answers what neither has)."""
    return HolidayBook({**bundled_years(), **{r["year"]: official_year(r) for r in repository.years()}})


def year_source(repository, year):
    """(where the year's official list comes from, OfficialYear or None)."""
    stored = repository.year(year)
    if stored is not None:
        return "published", official_year(stored)
    if year in bundled_years():
        return "file", bundled_years()[year]
    known = library_year(year)
    return ("library", known) if known is not None else ("missing", None)


def incomplete_years(repository, years):
    """Which of `years` have no official list from any source."""
    book = holiday_book(repository)
    return frozenset(year for year in years if book.official_year(year) is None)


# -- the engine's entry point ----------------------------------------------------------

_CACHE = {}  # (collection, store id) -> (expires, organisation version, StoreCalendar)


def calendar_for(repository, org, store_id, default_hours=DEFAULTS[CALENDAR_DEFAULT_HOURS]):
    """The store's StoreCalendar in its time zone, kept CACHE_SECONDS (so its per-day
    cache stays warm across a deadline scan); a change made through this replica shows
    at once, one made through another within CACHE_SECONDS."""
    key = (repository.cache_key, store_id)
    cached = _CACHE.get(key)
    now = monotonic_clock.monotonic()
    if cached and cached[0] > now and cached[1] == org.version:
        return cached[2]
    store = org.store(store_id)
    if store is None:
        raise CalendarNotFound(store_id)
    calendar = StoreCalendar(store.timezone, store_hours(repository.store(store_id), default_hours),
                             brand_overrides(repository.brand(org.brand_of_store(store_id))),
                             holiday_book(repository))
    _CACHE[key] = (now + CACHE_SECONDS, org.version, calendar)
    return calendar


def _forget(repository):
    for key in [k for k in _CACHE if k[0] == repository.cache_key]:
        del _CACHE[key]


# -- scope -------------------------------------------------------------------------------

def _store_in_scope(org, scope, store_id):
    if org.store(store_id) is None or not scope.covers(store_id):
        raise CalendarNotFound(store_id)


def _brand_in_scope(org, principal, brand_id):
    if brand_id not in org.brands or (principal.role is not Role.ADMIN and principal.brand_id != brand_id):
        raise CalendarNotFound(brand_id)


# -- stores -------------------------------------------------------------------------------

def store_view(repository, org, scope, store_id, today, default_hours=DEFAULTS[CALENDAR_DEFAULT_HOURS]):
    _store_in_scope(org, scope, store_id)
    record = repository.store(store_id) or {}
    hours = store_hours(record, default_hours)
    calendar = calendar_for(repository, org, store_id, default_hours)
    return {
        "store_id": store_id, "timezone": org.store(store_id).timezone,
        "configured": "weekly" in record,
        "weekly": {day: _slot_records(slots) for day, slots in zip(WEEKDAYS, hours.weekly)},
        "workday": _slot_records(hours.workday), "observes_holidays": hours.observes_holidays,
        "closures": record.get("closures", []),
        "incomplete_years": sorted(calendar.check_years([today.year, today.year + 1])),
        "version": record.get("version", 0), "updated_at": record.get("updated_at"),
        "updated_by": record.get("updated_by")}


def save_store_hours(repository, org, scope, store_id, body, actor, now):
    """body: weekly {mon..sun: [Slot]}, workday [Slot], observes_holidays (validated)."""
    _store_in_scope(org, scope, store_id)
    repository.save_store(store_id, {
        "weekly": {day: _slot_records(body["weekly"].get(day, ())) for day in WEEKDAYS},
        "workday": _slot_records(body["workday"]), "observes_holidays": body["observes_holidays"]},
        actor, now)
    _forget(repository)


def add_closure(repository, org, scope, store_id, body, actor, now):
    _store_in_scope(org, scope, store_id)
    closure = {"closure_id": uuid.uuid4().hex[:12], "first_day": body["first_day"].isoformat(),
               "last_day": body["last_day"].isoformat(), "reason": body["reason"], "by": actor, "at": now}
    repository.add_closure(store_id, closure, now)
    _forget(repository)
    return closure


# -- brands and years -------------------------------------------------------------------------

def brand_view(repository, org, principal, brand_id):
    _brand_in_scope(org, principal, brand_id)
    record = repository.brand(brand_id) or {}
    return {"brand_id": brand_id, "overrides": record.get("overrides", []),
            "version": record.get("version", 0), "updated_at": record.get("updated_at"),
            "updated_by": record.get("updated_by")}


def save_brand_overrides(repository, org, principal, brand_id, overrides, now):
    """overrides: [{date, kind, slots, note}] (validated), replacing the brand's list."""
    _brand_in_scope(org, principal, brand_id)
    records = [{"date": o["date"].isoformat(), "kind": o["kind"], "note": o["note"],
                "slots": _slot_records(o["slots"])} for o in sorted(overrides, key=lambda o: o["date"])]
    repository.save_brand(brand_id, records, principal.actor, now)
    _forget(repository)


def year_view(repository, year):
    source, official = year_source(repository, year)
    return {"year": year, "source": source, "complete": official is not None,
            "holidays": sorted(d.isoformat() for d in official.holidays) if official else [],
            "workdays": sorted(d.isoformat() for d in official.workdays) if official else []}


def years_view(repository, today):
    """The years around today and every published one, each with its source."""
    years = sorted({today.year - 1, today.year, today.year + 1} | {r["year"] for r in repository.years()})
    views = [year_view(repository, year) for year in years]
    return {"years": views, "incomplete_years": [v["year"] for v in views if not v["complete"]]}


def save_year(repository, year, body, actor, now):
    """Publish a year's official list (validated); it wins over the file and the library."""
    repository.save_year(year, {"holidays": sorted(d.isoformat() for d in body["holidays"]),
                                "workdays": sorted(d.isoformat() for d in body["workdays"]),
                                "source": body["source"]}, actor, now)
    _forget(repository)
    return year_view(repository, year)



# -- announced to followup (store_calendar_changed) ----------------------------------------

# The coming months followup plans in (a half-yearly revisit, its retries, a reminder):
# dates past the horizon count on the weekly slots until the next announcement.
ANNOUNCE_HORIZON_DAYS = 400


def _minutes(slots):
    return [{"start": slot.start, "end": slot.end} for slot in sorted(slots)]


def announcement(calendar, store_id, timezone_name, today, as_of, horizon_days=ANNOUNCE_HORIZON_DAYS):
    """The payload of store_calendar_changed for one store's StoreCalendar: the weekly
    slots and, from yesterday to the horizon, each date whose slots differ from its
    weekday's (a closure, a holiday, a make-up workday, a brand override)."""
    first = today - timedelta(days=1)  # yesterday's slots may run into today
    weekly = calendar.hours.weekly
    exceptions = []
    for day in (first + timedelta(days=n) for n in range(horizon_days + 1)):
        slots = calendar.slots_on(day)
        if sorted(slots) != sorted(weekly[day.weekday()]):
            exceptions.append({"date": day, "slots": _minutes(slots)})
    return {"event_id": uuid.uuid4().hex, "store_id": store_id, "timezone": timezone_name,
            "weekly": [_minutes(slots) for slots in weekly], "exceptions": exceptions,
            "horizon_from": first, "horizon_to": first + timedelta(days=horizon_days), "as_of": as_of}


def announcements(repository, org, store_ids, now, default_hours=DEFAULTS[CALENDAR_DEFAULT_HOURS]):
    """store_calendar_changed payloads for `store_ids` (None: every store), read afresh
    from the collections (never from calendar_for's cache, so a later announcement never
    carries older hours than an earlier one)."""
    book, brands = holiday_book(repository), {}
    for store_id in sorted(org.stores if store_ids is None else store_ids):
        store = org.store(store_id)
        if store is None:
            continue
        brand_id = org.brand_of_store(store_id)
        if brand_id not in brands:
            brands[brand_id] = brand_overrides(repository.brand(brand_id))
        calendar = StoreCalendar(store.timezone, store_hours(repository.store(store_id), default_hours),
                                 brands[brand_id], book)
        today = now.astimezone(calendar.zone).date()
        yield announcement(calendar, store_id, store.timezone, today, now)


def stores_to_announce(before, after):
    """After an organisation change, the stores whose calendar followup must hear of at
    once rather than at the next periodic announcement: a store whose time zone changed
    (its open hours now fall at other instants, so waiting calls and reminders move) and
    a new store. Sorted store ids."""
    return sorted(store_id for store_id, store in after.stores.items()
                  if store_id not in before.stores or before.stores[store_id].timezone != store.timezone)
