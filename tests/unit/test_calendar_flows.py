"""services/routing/calendar_flows.py over an in-memory repository: where a year's list
comes from (published > file > library > missing), the defaults of a store never set
up, scope, and calendar_for's cache."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from closeloop_shared import org
from closeloop_shared.access import Principal, Scope
from services.routing import calendar_flows
from services.routing.calendar import Slot
from tests.fixtures import ROOT

ORG = org.load(ROOT / "deploy/seeds/org.yaml")
STORE = "SH-XH-001"
NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
SHANGHAI = ZoneInfo("Asia/Shanghai")


class MemoryCalendars:
    """CalendarRepository's interface over dicts."""

    def __init__(self, name):
        self.cache_key, self.documents = name, {}

    def store(self, store_id):
        return self.documents.get(f"store:{store_id}")

    def brand(self, brand_id):
        return self.documents.get(f"brand:{brand_id}")

    def year(self, year):
        return self.documents.get(f"year:{year}")

    def years(self):
        return sorted((d for d in self.documents.values() if d.get("kind") == "year"), key=lambda d: d["year"])

    def _write(self, key, changes, **extra):
        document = self.documents.setdefault(key, {"version": 0})
        document.update(changes, **extra)
        document["version"] += 1

    def save_store(self, store_id, settings, actor, now):
        self._write(f"store:{store_id}", settings, kind="store")

    def add_closure(self, store_id, closure, now):
        document = self.documents.setdefault(f"store:{store_id}", {"version": 0, "kind": "store"})
        document.setdefault("closures", []).append(closure)

    def save_brand(self, brand_id, overrides, actor, now):
        self._write(f"brand:{brand_id}", {"overrides": overrides}, kind="brand")

    def save_year(self, year, lists, actor, now):
        self._write(f"year:{year}", lists, kind="year", year=year)


@pytest.fixture
def calendars(request):
    return MemoryCalendars(request.node.name)


def principal(staff_id):
    person = ORG.staff[staff_id]
    return Principal.for_staff(person, ORG.brand_of(person))


def local(*args):
    return datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)


HOURS = {"weekly": {"mon": (Slot.parse("10:00", "21:00"),)}, "workday": (Slot.parse("09:00", "18:00"),),
         "observes_holidays": True}


def test_a_store_never_set_up_counts_the_default_hours_every_day(calendars):
    calendar = calendar_flows.calendar_for(calendars, ORG, STORE, default_hours="10:00-14:00,15:00-19:00")
    assert calendar.elapsed(local(2025, 10, 1), local(2025, 10, 2)) == timedelta(hours=8)  # holidays not observed
    assert not calendar.is_open(local(2025, 10, 1, 14, 30))
    view = calendar_flows.store_view(calendars, ORG, Scope(None), STORE, NOW.date())
    assert view["configured"] is False and view["incomplete_years"] == []


def test_saved_hours_reach_calendar_for_at_once(calendars):
    before = calendar_flows.calendar_for(calendars, ORG, STORE)
    calendar_flows.save_store_hours(calendars, ORG, Scope(None), STORE, HOURS, "sh-xh-mg", NOW)
    after = calendar_flows.calendar_for(calendars, ORG, STORE)
    assert after is not before
    assert not after.is_open(local(2025, 10, 7, 12))  # a Tuesday: no slots
    assert after.is_open(local(2025, 10, 11, 9, 30))   # make-up Saturday: workday hours
    assert calendar_flows.calendar_for(calendars, ORG, STORE) is after  # cached while nothing changes


def test_where_a_years_list_comes_from(calendars, tmp_path):
    assert calendar_flows.year_source(calendars, 2026)[0] == "library"
    assert calendar_flows.year_source(calendars, 2027) == ("missing", None)
    assert calendar_flows.incomplete_years(calendars, (2026, 2027)) == frozenset({2027})
    calendar_flows.save_year(calendars, 2027, {"holidays": [date(2027, 10, 1)], "workdays": [],
                                               "source": "通知"}, "gm-001", NOW)
    assert calendar_flows.year_view(calendars, 2027)["source"] == "published"
    assert calendar_flows.incomplete_years(calendars, (2026, 2027)) == frozenset()
    view = calendar_flows.years_view(calendars, NOW.date())
    assert [y["year"] for y in view["years"]] == [2025, 2026, 2027] and view["incomplete_years"] == []


def test_year_files_are_read_and_checked(tmp_path):
    (tmp_path / "2028.yaml").write_text(
        "year: 2028\nsource: 通知\nholidays: [2028-01-01, '2028-10-02']\nworkdays: [2028-09-30]\n", encoding="utf-8")
    years = calendar_flows.bundled_years(tmp_path)
    assert years[2028].holidays == {date(2028, 1, 1), date(2028, 10, 2)}
    assert years[2028].workdays == {date(2028, 9, 30)}
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "2029.yaml").write_text("year: 2029\nholidays: [2028-12-31]\nworkdays: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="outside 2029"):
        calendar_flows.bundled_years(wrong)
    assert calendar_flows.bundled_years() == {}  # the repository ships no year the library knows


def test_scope_hides_other_stores_and_brands(calendars):
    with pytest.raises(calendar_flows.CalendarNotFound):
        calendar_flows.store_view(calendars, ORG, Scope(frozenset({"HZ-XH-002"})), STORE, NOW.date())
    with pytest.raises(calendar_flows.CalendarNotFound):
        calendar_flows.brand_view(calendars, ORG, principal("gm-001"), "muyun")
    calendar_flows.save_brand_overrides(calendars, ORG, principal("gm-001"), "yueyan", [
        {"date": date(2025, 10, 1), "kind": "custom", "slots": (Slot.parse("12:00", "16:00"),), "note": ""}], NOW)
    assert calendar_flows.brand_view(calendars, ORG, principal("ops-admin"), "yueyan")["overrides"][0]["slots"] \
        == [{"start": "12:00", "end": "16:00"}]
    assert calendar_flows.calendar_for(calendars, ORG, STORE).elapsed(
        local(2025, 10, 1), local(2025, 10, 2)) == timedelta(hours=4)
