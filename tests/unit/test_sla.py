"""services/routing/sla.py: the clock side of case actions over stored clock documents
(arming, warnings and breaches are tested in test_clocks.py, the ladder in
test_ladder.py, the whole engine in test_case_engine.py)."""
from datetime import datetime, timedelta, timezone

from closeloop_shared.config import CALENDAR_DEFAULT_HOURS, DEFAULTS
from services.routing import calendar_flows, clocks, policy, sla
from services.routing.calendar import StoreCalendar

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # Tuesday 10:00 in Shanghai
HOUR = timedelta(hours=1)
STORE = StoreCalendar("Asia/Shanghai", calendar_flows.store_hours(None, DEFAULTS[CALENDAR_DEFAULT_HOURS]))
REFERRAL = policy.DEFAULT_BUILTINS[1]


def armed():
    return clocks.to_doc(clocks.arm(REFERRAL, T0, STORE))


def test_waiting_on_the_customer_pauses_all_but_the_referral_report():
    paused = sla.pause(armed(), T0 + HOUR)
    assert {name for name, c in paused.items() if c["paused_at"]} == {"first_response", "update", "resolution"}
    assert paused["report"]["paused_at"] is None and sla.is_paused(paused)


def test_resuming_moves_wall_clocks_by_wall_time_and_business_clocks_by_open_time():
    before = armed()
    # paused 20:00 -> 11:00 next day: 15 h of wall time, 2 h of the store's 10:00-21:00
    paused = sla.pause(before, T0 + 10 * HOUR)
    resumed = sla.resume(paused, T0 + 25 * HOUR, STORE)
    assert resumed["resolution"]["due_at"] - before["resolution"]["due_at"] == 15 * HOUR
    assert before["update"]["due_at"] == T0 + 8 * HOUR  # 18:00, before the pause began
    # the update clock was due before the pause began: it stays due then
    assert resumed["update"]["due_at"] == before["update"]["due_at"]
    assert not sla.is_paused(resumed)


def test_a_business_clock_due_after_the_pause_moves_by_the_open_time_it_covered():
    before = armed()
    paused = sla.pause(before, T0 + 2 * HOUR)                  # 12:00, update due 18:00
    resumed = sla.resume(paused, T0 + 26 * HOUR, STORE)        # 12:00 next day: 11 h open time
    assert resumed["update"]["due_at"] == STORE.add(before["update"]["due_at"], 11 * HOUR)


def test_meeting_reports_on_time_once():
    met, on_time = sla.meet(armed(), ["first_response"], T0 + HOUR)
    assert on_time == {"first_response": True} and met["first_response"]["met_at"] == T0 + HOUR
    again, on_time = sla.meet(met, ["first_response"], T0 + 30 * HOUR)
    assert on_time == {} and again["first_response"]["met_at"] == T0 + HOUR


def test_a_merged_case_stops_its_clocks_for_good():
    stopped = sla.stop(armed(), T0 + HOUR)
    assert all(c["stopped_at"] == T0 + HOUR for c in stopped.values())
    assert clocks.next_at(clocks.from_doc(stopped)) is None
    assert sla.meet(stopped, ["resolution"], T0 + 2 * HOUR)[1] == {}


def test_rearming_starts_the_named_clocks_afresh_with_their_policy():
    met, _ = sla.meet(armed(), ["resolution"], T0 + HOUR)
    rearmed = sla.rearm(met, ["resolution", "update"], T0 + 3 * HOUR, STORE)
    assert rearmed["resolution"]["met_at"] is None
    assert rearmed["resolution"]["due_at"] == T0 + 3 * HOUR + timedelta(hours=48)
    assert rearmed["update"]["due_at"] == STORE.add(T0 + 3 * HOUR, timedelta(hours=8))
    assert rearmed["resolution"]["policy_id"] == REFERRAL.policy_id
    assert rearmed["report"] == met["report"]


def test_deadlines_name_each_clock():
    assert set(sla.deadlines(armed())) == {"first_response_due", "update_due", "resolution_due", "report_due"}
