"""services/routing/clocks.py: pauses, warnings and breaches, on wall time and on a
store's business calendar (services/routing/calendar.StoreCalendar, itself checked
against a brute-force reference in test_calendar_properties.py).

The reference here walks time in quarter hours (the calendars' slots and every moment
drawn are on quarter hours) and counts the quarters a clock counts: open for a
business clock (calendar.is_open), any for a wall clock, and never one inside a pause.
A clock is due at the end of the quarter in which its count reaches its duration."""
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closeloop_shared.contract import ClockBasis, ClockName
from services.routing import clocks
from services.routing.calendar import Slot, StoreCalendar, StoreHours, WallCalendar
from services.routing.policy import DEFAULT_BUILTINS, ClockSpec, Conditions, SlaPolicy

QUARTER = timedelta(minutes=15)
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Around the 2025 National Day holiday (Oct 1-8 closed, Sat Oct 11 a make-up workday).
FIRST_DAY = date(2025, 9, 26)
HORIZON = 40 * 24 * 4  # quarters the reference walks before giving up
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DAY_SHAPES = {
    "salon": (Slot.parse("10:00", "20:00"),),
    "split": (Slot.parse("09:00", "12:00"), Slot.parse("14:00", "21:30")),
    "late": (Slot.parse("18:00", "02:00"),),  # runs past midnight
    "closed": (),
}


def store_calendar(shapes):
    weekly = tuple(DAY_SHAPES[shape] for shape in shapes)
    return StoreCalendar("Asia/Shanghai", StoreHours(weekly=weekly, workday=DAY_SHAPES["salon"]))


weeks = st.lists(st.sampled_from(sorted(DAY_SHAPES)), min_size=7, max_size=7).filter(
    lambda shapes: any(shape != "closed" for shape in shapes))


def local(day_offset, quarters):
    return (datetime.combine(FIRST_DAY, time(), SHANGHAI).astimezone(timezone.utc)
            + timedelta(days=day_offset) + quarters * QUARTER)


def reference_due(start, quarters, counts, pauses):
    """The end of the quarter in which `quarters` counted quarters are reached."""
    if quarters == 0:
        return start
    moment = start
    for _ in range(HORIZON):
        if counts(moment) and not any(paused <= moment < resumed for paused, resumed in pauses):
            quarters -= 1
            if quarters == 0:
                return moment + QUARTER
        moment += QUARTER
    raise AssertionError("the reference found no time to count")


@st.composite
def runs(draw):
    """A clock spec, a calendar, a start and a sequence of pauses (in quarters)."""
    basis = draw(st.sampled_from(list(ClockBasis)))
    calendar = store_calendar(draw(weeks))
    duration = draw(st.integers(2, 6 * 4 * 10))  # up to 60 hours
    lead = draw(st.none() | st.integers(1, duration - 1))
    spec = ClockSpec(ClockName.RESOLUTION, duration * QUARTER, basis,
                     None if lead is None else lead * QUARTER)
    start = local(draw(st.integers(0, 6)), draw(st.integers(0, 95)))
    pauses, moment = [], start
    for gap, length in draw(st.lists(st.tuples(st.integers(0, 4 * 30), st.integers(1, 4 * 60)),
                                     max_size=4)):
        paused = moment + gap * QUARTER
        moment = paused + length * QUARTER
        pauses.append((paused, moment))
    return spec, calendar, start, pauses


def counting(spec, calendar):
    return (lambda moment: True) if spec.basis is ClockBasis.WALL else calendar.is_open


def run(spec, calendar, start, pauses):
    armed = clocks.start(spec, "p1", 3, start, calendar)
    state = {"c": armed}
    for paused, resumed in pauses:
        state = clocks.resume(clocks.pause(state, paused), resumed, calendar)
    return armed, state["c"]


@PROPERTY
@given(runs())
def test_due_and_warning_after_pauses_equal_arming_with_the_unpaused_time(case):
    spec, calendar, start, pauses = case
    _, clock = run(spec, calendar, start, pauses)
    counts = counting(spec, calendar)
    quarters = spec.duration // QUARTER
    assert clock.due_at == reference_due(start, quarters, counts, pauses)
    if spec.warning_lead is None:
        assert clock.warn_at is None
    else:
        assert clock.warn_at == reference_due(start, quarters - spec.warning_lead // QUARTER, counts, pauses)
    assert clock.paused_at is None and clock.started_at == start
    assert (clock.policy_id, clock.policy_version, clock.spec) == ("p1", 3, spec)


@PROPERTY
@given(runs())
def test_a_pause_never_makes_a_clock_due_earlier(case):
    spec, calendar, start, pauses = case
    armed, clock = run(spec, calendar, start, pauses)
    assert clock.due_at >= armed.due_at
    if armed.warn_at is not None:
        assert clock.warn_at >= armed.warn_at
    paused_before_due = [p for p in pauses if p[0] < armed.due_at]
    if not paused_before_due:
        assert clock.due_at == armed.due_at


@st.composite
def checks(draw):
    """Two clocks from one policy, and increasing check times with pauses between some."""
    calendar = store_calendar(draw(weeks))
    start = local(draw(st.integers(0, 6)), draw(st.integers(0, 95)))
    steps = draw(st.lists(st.tuples(st.integers(0, 4 * 12), st.booleans()), min_size=1, max_size=25))
    return calendar, start, steps


TWO_CLOCKS = SlaPolicy("p1", 2, "two", Conditions(), (
    ClockSpec(ClockName.FIRST_RESPONSE, timedelta(hours=6), ClockBasis.WALL, timedelta(hours=2)),
    ClockSpec(ClockName.RESOLUTION, timedelta(hours=12), ClockBasis.BUSINESS, timedelta(hours=3))))


@PROPERTY
@given(checks())
def test_each_warning_and_breach_is_reported_exactly_once(case):
    calendar, start, steps = case
    state = clocks.arm(TWO_CLOCKS, start, calendar)
    reported = {name: {"warning": 0, "breach": 0} for name in state}
    warned_in_time = set()
    now = start
    for gap, toggle_pause in steps:
        now += gap * QUARTER
        if toggle_pause:
            state = (clocks.resume(state, now, calendar) if clocks.is_paused(state)
                     else clocks.pause(state, now))
        before, found = state, clocks.due(state, now)
        for name in found.warnings:
            reported[name]["warning"] += 1
        for name in found.breaches:
            reported[name]["breach"] += 1
        for name, clock in before.items():
            pending = {kind: moment for kind, moment in clock.pending().items() if moment <= now}
            assert ("breach" in pending) == (name in found.breaches)  # nothing due is held back
            if "warning" in pending and "breach" not in pending:
                warned_in_time.add(name)
        state = found.clocks
        assert clocks.next_at(state) is None or clocks.next_at(state) > now
    for name, clock in state.items():
        assert reported[name]["breach"] == (1 if clock.breached_at else 0)
        assert reported[name]["warning"] == (1 if name in warned_in_time else 0)


datetimes = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1),
                         timezones=st.just(timezone.utc))
clock_values = st.builds(
    clocks.Clock, name=st.sampled_from(list(ClockName)), basis=st.sampled_from(list(ClockBasis)),
    duration=st.integers(1, 10**6).map(lambda s: timedelta(seconds=s)),
    warning_lead=st.none() | st.integers(1, 10**5).map(lambda s: timedelta(seconds=s)),
    policy_id=st.text(min_size=1, max_size=20), policy_version=st.integers(0, 1000),
    started_at=datetimes, due_at=datetimes, warn_at=st.none() | datetimes, met_at=st.none() | datetimes,
    warned_at=st.none() | datetimes, breached_at=st.none() | datetimes, paused_at=st.none() | datetimes,
    paused_for=st.integers(0, 10**6).map(lambda s: timedelta(seconds=s)))


@given(st.dictionaries(st.sampled_from([n.value for n in ClockName]), clock_values))
def test_clocks_survive_storage(state):
    assert clocks.from_doc(clocks.to_doc(state)) == state


# -- examples -----------------------------------------------------------------------

WALL = WallCalendar()
SALON = store_calendar(["salon"] * 7)


def at(month, day, hour, minute=0):
    """A Shanghai time in 2025, as UTC."""
    return datetime(2025, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(timezone.utc)


def test_a_case_runs_wall_and_business_clocks_side_by_side_across_national_day():
    """Submitted on the eve of the holiday at 18:00: the 24 h promise falls on Oct 1, the
    8 h keep-in-loop update (store time) on the first working day after it."""
    state = clocks.arm(DEFAULT_BUILTINS[0], at(9, 30, 18), SALON)
    assert state["first_response"].due_at == at(10, 1, 18)
    assert state["first_response"].warn_at == at(10, 1, 16)
    assert state["update"].due_at == at(10, 9, 16)        # 2 h on Sep 30, 6 h on Oct 9
    assert state["update"].warn_at == at(10, 9, 14)
    assert state["resolution"].due_at == at(10, 2, 18)
    assert {c.policy_id for c in state.values()} == {"default"}
    assert clocks.next_at(state) == at(10, 1, 16)


def test_resume_moves_business_clocks_by_open_time_and_wall_clocks_by_wall_time():
    state = clocks.arm(DEFAULT_BUILTINS[0], at(9, 29, 10), SALON)
    state = clocks.resume(clocks.pause(state, at(9, 29, 12)), at(9, 29, 22), SALON)
    assert state["first_response"].due_at == at(9, 30, 20)   # +10 h of wall time
    assert state["update"].due_at == at(9, 30, 16)           # +8 h of open time (12:00-20:00)
    assert state["update"].paused_for == timedelta(hours=8)
    assert state["first_response"].paused_for == timedelta(hours=10)


def test_a_clock_overdue_before_the_pause_stays_overdue():
    state = clocks.arm(TWO_CLOCKS, at(9, 29, 10), SALON)  # first response due 16:00, wall
    state = clocks.pause(state, at(9, 29, 17))
    assert clocks.due(state, at(9, 29, 17, 30)).breaches == ("first_response",)
    resumed = clocks.resume(state, at(9, 29, 19), SALON)
    assert resumed["first_response"].due_at == at(9, 29, 16)
    assert resumed["resolution"].due_at == at(9, 30, 14)  # 7 h before, 5 h after the pause


def test_paused_clocks_fire_nothing_new_and_next_at_waits_for_the_resume():
    state = clocks.pause(clocks.arm(TWO_CLOCKS, at(9, 29, 10), SALON), at(9, 29, 11))
    assert clocks.next_at(state) is None
    found = clocks.due(state, at(9, 30, 23))
    assert (found.warnings, found.breaches) == ((), ())
    assert clocks.pause(state, at(9, 29, 15)) == state  # a second pause keeps the first start


def test_meeting_a_clock_on_time_late_and_during_a_pause():
    state = clocks.arm(TWO_CLOCKS, at(9, 29, 10), SALON)
    met, on_time = clocks.meet(state, [ClockName.FIRST_RESPONSE], at(9, 29, 15))
    assert on_time == {"first_response": True} and met["first_response"].met_at == at(9, 29, 15)
    assert clocks.due(met, at(9, 30, 23)).breaches == ("resolution",)  # met clocks never fire
    _, on_time = clocks.meet(state, ["first_response", "report"], at(9, 29, 17))
    assert on_time == {"first_response": False}  # the case has no report clock
    paused = clocks.pause(state, at(9, 29, 15))
    _, on_time = clocks.meet(paused, ["first_response"], at(9, 30, 12))
    assert on_time == {"first_response": True}  # it stopped counting before it fell due
    _, again = clocks.meet(met, ["first_response"], at(9, 29, 16))
    assert again == {}


def test_rearm_restarts_a_clock_with_the_case_policy_and_joins_a_pause():
    state = clocks.arm(DEFAULT_BUILTINS[0], at(9, 29, 10), SALON)
    state, _ = clocks.meet(state, ["update"], at(9, 29, 12))
    rearmed = clocks.rearm(state, ClockName.UPDATE, at(9, 29, 13), None, SALON)
    assert rearmed["update"].met_at is None and rearmed["update"].due_at == at(9, 30, 11)
    assert (rearmed["update"].policy_id, rearmed["update"].policy_version) == ("default", 0)
    paused = clocks.pause(state, at(9, 29, 13))
    during = clocks.rearm(paused, "update", at(9, 29, 14), None, SALON)
    assert during["update"].paused_at == at(9, 29, 14)
    resumed = clocks.resume(during, at(9, 29, 16), SALON)
    assert resumed["update"].due_at == at(9, 30, 14)  # counted from 16:00
    longer = ClockSpec(ClockName.UPDATE, timedelta(hours=9), ClockBasis.BUSINESS, None)
    assert clocks.rearm(state, "update", at(9, 29, 10), longer, SALON)["update"].due_at == at(9, 29, 19)
    with pytest.raises(ValueError):
        clocks.rearm(state, "report", at(9, 29, 13), None, SALON)
    with pytest.raises(ValueError):
        clocks.rearm(state, "resolution", at(9, 29, 13), longer, SALON)


def test_a_breach_swallows_a_warning_not_yet_reported():
    state = clocks.arm(TWO_CLOCKS, at(9, 29, 10), WALL)
    found = clocks.due(state, at(9, 29, 17))
    assert (found.warnings, found.breaches) == ((), ("first_response",))
    assert found.clocks["first_response"].breached_at == at(9, 29, 17)
    assert found.clocks["first_response"].warned_at is None
    assert clocks.due(found.clocks, at(9, 29, 18)).breaches == ()
