"""services/routing/duty.py: who is on duty (against a direct reading of the roster in
the store's local time), role-fit assignment, the ladder fallback and the shift-end
handover. Property tests over random rosters, plus named cases."""
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from closeloop_shared import org
from closeloop_shared.contract import Category, Role, Severity
from services.routing import duty
from tests.fixtures import ROOT

SEED = org.load(ROOT / "deploy/seeds/org.yaml")
STORE = "SH-XH-001"
MEMBERS = ("sh-xh-s1", "sh-xh-rv", "sh-xh-sv", "sh-xh-mg")
SHANGHAI = ZoneInfo("Asia/Shanghai")
PROPERTY = settings(max_examples=150, deadline=None)


def local(day, hour, minute=0):
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(timezone.utc)


clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
days = st.dates(date(2026, 9, 28), date(2026, 10, 12))
shifts = st.builds(
    lambda n, start, end, staff, weekdays, on_date: duty.Shift(
        f"shift-{n}", start, end, tuple(staff), frozenset(weekdays) if on_date is None else frozenset(), on_date),
    st.integers(0, 10**6), clock_times, clock_times,
    st.lists(st.sampled_from(MEMBERS + ("hz-xh-s1", "nobody")), min_size=1, max_size=3, unique=True),
    st.frozensets(st.integers(0, 6), min_size=1), st.one_of(st.none(), days))
rosters = st.lists(shifts, max_size=5, unique_by=lambda s: s.shift_id) \
    .filter(lambda s: all(x.start != x.end for x in s)).map(lambda s: duty.Roster(STORE, tuple(s)))
instants = st.builds(lambda day, minute: local(day, 0) + timedelta(minutes=minute), days, st.integers(0, 24 * 60 - 1))
cases = st.lists(st.builds(duty.OpenCase, st.uuids().map(str), st.sampled_from(MEMBERS),
                           st.sampled_from([c.value for c in Category]), st.sampled_from([s.value for s in Severity])),
                 max_size=8, unique_by=lambda c: c.case_id)


def runs_on(roster, shift, day):
    dated = any(s.on_date == day for s in roster.shifts)
    return shift.on_date == day if shift.on_date else (not dated and day.weekday() in shift.weekdays)


def on_duty_by_reading(roster, at):
    """The roster read directly: a shift covers a local time on its day, or (crossing
    midnight) the evening of its day and the morning after."""
    moment = at.astimezone(SHANGHAI)
    day, now = moment.date(), moment.time()
    found = set()
    for shift in roster.shifts:
        if shift.start < shift.end:
            covered = runs_on(roster, shift, day) and shift.start <= now < shift.end
        else:
            covered = (runs_on(roster, shift, day) and now >= shift.start) or \
                (runs_on(roster, shift, day - timedelta(days=1)) and now < shift.end)
        if covered:
            found.update(i for i in shift.staff_ids if i in MEMBERS)
    return sorted(found)


@PROPERTY
@given(rosters, instants)
def test_on_duty_is_the_roster_read_in_the_stores_local_time(roster, at):
    assert [p.staff_id for p in duty.on_duty(roster, SEED, STORE, at)] == on_duty_by_reading(roster, at)


@PROPERTY
@given(rosters, instants, st.sampled_from([c.value for c in Category]), st.sampled_from([s.value for s in Severity]),
       st.dictionaries(st.sampled_from(MEMBERS), st.integers(0, 5)))
def test_the_chosen_assignee_is_on_duty_fits_and_has_the_fewest_open_cases_of_the_first_tier(
        roster, at, category, severity, counts):
    candidates = duty.on_duty(roster, SEED, STORE, at)
    chosen = duty.choose_assignee(candidates, category, severity, counts)
    tiers = duty.role_fit(category, severity)
    if chosen is None:
        assert not any(duty.fits(p, category, severity) for p in candidates)
        return
    assert chosen in candidates and duty.fits(chosen, category, severity)
    tier = next(t for t in tiers if any(p.role in t for p in candidates))
    assert chosen.role in tier
    assert all((counts.get(chosen.staff_id, 0), chosen.staff_id) <= (counts.get(p.staff_id, 0), p.staff_id)
               for p in candidates if p.role in tier)
    assigned = duty.assign(roster, SEED, STORE, category, severity, counts, at)
    assert assigned.on_duty and assigned.person == chosen


@PROPERTY
@given(rosters, instants, cases)
def test_a_handover_moves_only_the_cases_of_people_leaving_to_fitting_people_of_the_next_shift(
        roster, since, open_cases):
    ends = duty.shift_ends(roster, SEED, STORE, since, since + timedelta(days=1))
    assume(ends)
    ended_at = ends[0]
    handovers = duty.shift_handover(roster, SEED, STORE, open_cases, ended_at, duty.open_counts(open_cases))
    still_on = {p.staff_id for p in duty.on_duty(roster, SEED, STORE, ended_at)}
    just_before = {p.staff_id for p in duty.on_duty(roster, SEED, STORE, ended_at - timedelta(seconds=1))}
    by_case = {c.case_id: c for c in open_cases}
    assert len({h.case_id for h in handovers}) == len(handovers)
    for handover in handovers:
        case = by_case[handover.case_id]
        assert handover.from_id == case.assignee_id
        assert handover.from_id in just_before and handover.from_id not in still_on
        assert duty.fits(handover.to, case.category, case.severity) and handover.to.store_id == STORE
        if still_on:  # the next shift is the one running on; else the next to start
            assert handover.to.staff_id in still_on


def test_a_night_shift_crosses_midnight_in_the_stores_time():
    roster = duty.Roster(STORE, (
        duty.Shift("day", time(9), time(18), ("sh-xh-s1", "sh-xh-sv"), frozenset(range(7))),
        duty.Shift("night", time(18), time(2), ("sh-xh-rv", "sh-xh-mg"), frozenset(range(7)))))
    day = date(2026, 11, 25)
    assert [p.staff_id for p in duty.on_duty(roster, SEED, STORE, local(day, 1, 30))] == ["sh-xh-mg", "sh-xh-rv"]
    assert duty.on_duty(roster, SEED, STORE, local(day, 2, 30)) == ()
    assert duty.shift_ends(roster, SEED, STORE, local(day, 0), local(day + timedelta(days=1), 0)) == [
        local(day, 2), local(day, 18)]


def test_a_dated_shift_replaces_the_weekday_shifts_of_that_date():
    national_day = date(2026, 10, 1)  # a Thursday
    roster = duty.Roster(STORE, (
        duty.Shift("weekday", time(9), time(18), ("sh-xh-s1",), frozenset({3})),
        duty.Shift("holiday", time(10), time(16), ("sh-xh-rv",), frozenset(), national_day)))
    assert [p.staff_id for p in duty.on_duty(roster, SEED, STORE, local(national_day, 11))] == ["sh-xh-rv"]
    assert [p.staff_id for p in duty.on_duty(roster, SEED, STORE, local(date(2026, 10, 8), 11))] == ["sh-xh-s1"]


def test_role_fit_severity_first_then_category_then_store_staff_first():
    on = [SEED.staff[i] for i in MEMBERS]
    assert duty.choose_assignee(on, "booking", "critical", {}).staff_id == "sh-xh-mg"
    assert duty.choose_assignee(on, "booking", "high", {"sh-xh-sv": 3}).staff_id == "sh-xh-mg"
    assert duty.choose_assignee(on, "hygiene", "low", {}).staff_id == "sh-xh-mg"  # tie: by staff id
    assert duty.choose_assignee(on, "hygiene", "low", {"sh-xh-mg": 1}).role is Role.SUPERVISOR
    assert duty.choose_assignee(on, "booking", "low", {"sh-xh-s1": 2}).staff_id == "sh-xh-rv"
    assert duty.choose_assignee(on[:2], "technician_skill", "medium", {}) is None


def test_without_a_roster_or_anyone_fitting_the_ladder_takes_the_case():
    at = local(date(2026, 11, 25), 12)
    assert duty.assign(None, SEED, STORE, "booking", "low", {"sh-xh-rv": 1}, at) == \
        duty.Assignment(SEED.staff["sh-xh-s1"], False)  # the store staff rung, fewest open cases
    # no supervisor at GZ-TH-003: a hygiene complaint goes one rung up, to the store manager
    assert duty.assign(None, SEED, "GZ-TH-003", "hygiene", "low", {}, at).person.staff_id == "gz-th-mg"
    only_staff = duty.Roster(STORE, (duty.Shift("d", time(0), time(23, 59), ("sh-xh-s1",), frozenset(range(7))),))
    assert duty.assign(only_staff, SEED, STORE, "booking", "critical", {}, at).person.staff_id == "sh-xh-mg"


def test_a_store_closed_overnight_hands_over_to_the_morning_shift():
    roster = duty.Roster(STORE, (
        duty.Shift("late", time(13), time(21), ("sh-xh-s1", "sh-xh-sv"), frozenset(range(7))),
        duty.Shift("early", time(9), time(13), ("sh-xh-rv", "sh-xh-mg"), frozenset(range(7)))))
    ended = local(date(2026, 11, 25), 21)
    held = [duty.OpenCase("c1", "sh-xh-s1", "booking", "low"), duty.OpenCase("c2", "sh-xh-s1", "price", "low"),
            duty.OpenCase("c3", "sh-xh-sv", "hygiene", "high")]
    moves = duty.shift_handover(roster, SEED, STORE, held, ended, {"sh-xh-rv": 1})
    assert [(m.case_id, m.from_id, m.to.staff_id, m.shift_id, m.next_shift_id) for m in moves] == [
        ("c1", "sh-xh-s1", "sh-xh-rv", "late", "early"), ("c2", "sh-xh-s1", "sh-xh-rv", "late", "early"),
        ("c3", "sh-xh-sv", "sh-xh-mg", "late", "early")]
    assert duty.Roster.from_doc(roster.to_doc()) == roster
