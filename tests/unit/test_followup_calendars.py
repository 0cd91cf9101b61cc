"""Store calendars in followup: routing's announcement of a store's calendar
(store_calendar_changed, services/routing/calendar_flows.announcement) read back as
followup's OpeningHours, revisit calls and day-before reminders inside open hours
(closures, holidays, opening hours) across store time zones, and which days a change
touches."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared import events as ev
from closeloop_shared.quiet_hours import QuietHours
from services.followup import appointments, programme, revisits
from services.followup.opening import OpeningHours, call_time, changed_spans, reminder_time
from services.followup.profiles import ContactHours
from services.routing import calendar_flows
from services.routing.calendar import Closure, DateOverride, HolidayBook, OfficialYear, OverrideKind, Slot
from services.routing.calendar import StoreCalendar, StoreHours

NOW = datetime(2027, 3, 10, 1, 0, tzinfo=timezone.utc)  # Wednesday 09:00 in Shanghai
TODAY = date(2027, 3, 10)
QUIET = QuietHours.parse("21:00-09:00")
AFTERNOONS = (Slot.parse("14:00", "21:00"),)
ZONES = st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "Europe/London", "America/New_York"])


def store(tz="Asia/Shanghai", weekly=None, closures=(), overrides=None, years=None):
    """A StoreCalendar as routing builds it: open 14:00-21:00, closed on Mondays."""
    weekly = weekly or ((),) + (AFTERNOONS,) * 6
    hours = StoreHours(weekly=weekly, workday=AFTERNOONS, observes_holidays=True, closures=tuple(closures))
    return StoreCalendar(tz, hours, overrides or {}, HolidayBook(years or {}))


def copy_of(calendar, tz="Asia/Shanghai", today=TODAY):
    """followup's copy: routing's payload through the event contract."""
    payload = ev.load(ev.STORE_CALENDAR_CHANGED, ev.dump(
        ev.STORE_CALENDAR_CHANGED, calendar_flows.announcement(calendar, "SH-XH-001", tz, today, NOW)))
    return OpeningHours.from_announcement(payload), payload


def test_the_announcement_is_compact_and_followup_reads_the_same_open_hours():
    year = OfficialYear(2027, frozenset({date(2027, 5, 1), date(2027, 5, 3)}), frozenset({date(2027, 4, 26)}))
    calendar = store(closures=[Closure(date(2027, 3, 17), date(2027, 3, 18), "装修")],
                     overrides={date(2027, 6, 1): DateOverride(date(2027, 6, 1), OverrideKind.CUSTOM,
                                                                (Slot.parse("20:00", "02:00"),))},
                     years={2027: year})
    opening, payload = copy_of(calendar)
    # only the dates that differ from their weekday: the closure, the holidays, the
    # make-up workday (a Monday: closed weekly), the override; not the ordinary days (a
    # holiday on a Monday, closed anyway, is no exception)
    assert [e["date"] for e in payload["exceptions"]] == [
        date(2027, 3, 17), date(2027, 3, 18), date(2027, 4, 26), date(2027, 5, 1), date(2027, 6, 1)]
    assert payload["horizon_from"] == TODAY - timedelta(days=1)
    for day in (TODAY + timedelta(days=n) for n in range(400)):
        assert opening.slots_on(day) == tuple((s.start, s.end) for s in sorted(calendar.slots_on(day)))
    # a slot past midnight belongs to the day it starts on, and is open into the next
    assert opening.windows_on(date(2027, 6, 2)) == [(0, 120), (840, 1260)]
    assert opening.is_open(datetime(2027, 6, 1, 17, 30, tzinfo=timezone.utc))  # 01:30 on 2 June


def test_a_call_planned_on_a_closed_day_moves_to_the_next_open_day_inside_both_hours():
    opening, _ = copy_of(store(closures=[Closure(date(2027, 3, 17), date(2027, 3, 18), "装修")]))
    hours = ContactHours(10, 20)
    at = programme.slot(date(2027, 3, 17), hours, 0, "Asia/Shanghai", opening).astimezone(ZoneInfo("Asia/Shanghai"))
    assert at == datetime(2027, 3, 19, 14, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # the store opens at 14:00
    monday = programme.slot(date(2027, 3, 15), hours, 0, "Asia/Shanghai", opening)
    assert monday.astimezone(ZoneInfo("Asia/Shanghai")).date() == date(2027, 3, 16)  # closed on Mondays
    retries = {programme.slot(date(2027, 3, 16), hours, n, "Asia/Shanghai", opening)
               .astimezone(ZoneInfo("Asia/Shanghai")).hour for n in range(3)}
    assert retries == {14, 17, 19}  # other hours of 14:00-20:00


def test_without_an_announcement_the_customers_hours_alone_decide_as_before():
    opening = OpeningHours.always_open("Asia/Shanghai")
    at = call_time(date(2027, 3, 15), ContactHours(10, 20), 0, opening)
    assert at == datetime(2027, 3, 15, 2, 0, tzinfo=timezone.utc)


@given(day=st.dates(date(2027, 1, 1), date(2027, 12, 31)), attempt=st.integers(0, 5),
       start=st.integers(0, 20), length=st.integers(1, 4), tz=ZONES)
def test_every_call_falls_inside_the_stores_open_hours_and_the_customers_contact_hours(
        day, attempt, start, length, tz):
    calendar = store(tz, closures=[Closure(date(2027, 7, 1), date(2027, 7, 20), "装修")])
    opening, _ = copy_of(calendar, tz, date(2027, 1, 1))
    hours = ContactHours(start, min(start + length, 24))
    at = call_time(day, hours, attempt, opening)
    local = at.astimezone(ZoneInfo(tz))
    assert local.date() >= day
    if hours.start_hour < 21 and hours.end_hour > 14:  # their hours meet the store's
        assert calendar.is_open(at) and hours.start_hour <= local.hour < hours.end_hour


def test_a_reminder_is_moved_into_open_hours_and_off_a_closed_day_before():
    opening, _ = copy_of(store(closures=[Closure(date(2027, 3, 18), date(2027, 3, 18), "消防检查")]))
    shanghai = ZoneInfo("Asia/Shanghai")
    friday_3pm = datetime(2027, 3, 12, 15, tzinfo=shanghai)
    # the store opens at 14:00 the day before: reminded then, not at 10:00
    assert reminder_time(friday_3pm, 10, QUIET, opening, NOW) == datetime(2027, 3, 11, 14, tzinfo=shanghai)
    # the day before is closed (an inspection): the last open day before it
    friday_19th = datetime(2027, 3, 19, 15, tzinfo=shanghai)
    assert reminder_time(friday_19th, 10, QUIET, opening, NOW) == datetime(2027, 3, 17, 14, tzinfo=shanghai)
    policy = appointments.ReminderPolicy(10, QUIET)
    assert appointments.reminder_at(friday_3pm, "Asia/Shanghai", policy, NOW, opening) == \
        datetime(2027, 3, 11, 14, tzinfo=shanghai)
    assert appointments.reminder_at(friday_3pm, "Asia/Shanghai", policy, datetime(
        2027, 3, 11, 7, tzinfo=timezone.utc), opening) is None  # booked at 15:00 the day before


@given(starts=st.datetimes(datetime(2027, 1, 1), datetime(2027, 12, 31), timezones=st.just(timezone.utc)),
       hour=st.integers(0, 23), tz=ZONES)
def test_a_reminder_is_inside_open_hours_outside_quiet_hours_and_before_the_appointment(starts, hour, tz):
    calendar = store(tz)
    opening, _ = copy_of(calendar, tz, date(2027, 1, 1))
    at = reminder_time(starts, hour, QUIET, opening, datetime(2026, 12, 1, tzinfo=timezone.utc))
    if at is not None:
        assert calendar.is_open(at) and not QUIET.contains(at.astimezone(ZoneInfo(tz))) and at < starts
        days_before = (starts.astimezone(ZoneInfo(tz)).date() - at.astimezone(ZoneInfo(tz)).date()).days
        assert 1 <= days_before <= 3


def test_a_change_touches_only_the_days_whose_hours_changed():
    before, _ = copy_of(store())
    closed, _ = copy_of(store(closures=[Closure(date(2027, 3, 17), date(2027, 3, 18), "装修")]))
    assert changed_spans(before, closed, TODAY) == [(date(2027, 3, 17), date(2027, 3, 18))]
    assert changed_spans(closed, closed, TODAY) == []  # a re-announcement: nothing moves
    later, _ = copy_of(store(weekly=((),) + ((Slot.parse("10:00", "21:00"),),) * 6))
    assert changed_spans(before, later, TODAY) == [(TODAY, None)]  # weekly hours: every day after
    assert changed_spans(None, before, TODAY) == [(TODAY, None)]  # the first copy


def test_a_store_open_late_reminds_before_midnight_inside_its_slot():
    late = store(weekly=((Slot.parse("18:00", "02:00"),),) * 7)
    opening, _ = copy_of(late)
    starts = datetime(2027, 3, 12, 20, tzinfo=ZoneInfo("Asia/Shanghai"))
    at = reminder_time(starts, 10, QuietHours.parse("23:00-09:00"), opening, NOW)
    assert at == datetime(2027, 3, 11, 18, tzinfo=ZoneInfo("Asia/Shanghai"))


@given(moment=st.datetimes(datetime(2027, 1, 1), datetime(2027, 12, 20), timezones=st.just(timezone.utc)), tz=ZONES)
def test_a_satisfaction_revisit_falls_due_at_the_first_open_moment_from_when_it_is_meant(moment, tz):
    calendar = store(tz, closures=[Closure(date(2027, 7, 1), date(2027, 7, 20), "装修")])
    opening, _ = copy_of(calendar, tz, date(2027, 1, 1))
    resolved = {"case_id": "c1", "case_number": "CL-1", "resolution_round": 1, "store_id": "SH-XH-001",
                "customer": {}, "locale": "zh-CN", "remedy": {}, "resolved_at": moment - timedelta(days=3)}
    revisit = revisits.schedule(resolved, {"staff_id": "sh-xh-rv"}, 3 * 24 * 3600, opening, NOW)
    due = revisit["due_at"]
    assert revisit["due_from"] == moment and due >= moment and calendar.is_open(due)
    step = moment
    while step + timedelta(minutes=10) <= due:  # closed all the way there
        assert not calendar.is_open(step)
        step += timedelta(minutes=10)


def test_a_revisit_meant_while_the_store_is_open_is_due_then():
    opening, _ = copy_of(store())
    wednesday_3pm = datetime(2027, 3, 10, 7, 0, tzinfo=timezone.utc)
    assert opening.first_open(wednesday_3pm) == wednesday_3pm
    monday_3pm = datetime(2027, 3, 15, 7, 0, tzinfo=timezone.utc)  # closed on Mondays: Tuesday 14:00
    assert opening.first_open(monday_3pm) == datetime(2027, 3, 16, 6, 0, tzinfo=timezone.utc)
    assert OpeningHours.always_open("Asia/Shanghai").first_open(monday_3pm) == monday_3pm
