"""services/routing/sla.py: clocks, the ladder and the escalation decision."""
import copy
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closeloop_shared.org import LADDER
from services.routing import sla
from services.routing.sla import Policy

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)
POLICY = Policy()


def at(hours):
    return T0 + timedelta(hours=hours)


def outcome(decision):
    """The decision's verdict (Decision may grow more fields, e.g. the updated clocks)."""
    return (decision.newly_breached, decision.escalate, decision.reason, decision.next_check_at)


# -- policy, clocks, rungs -----------------------------------------------------------

def test_default_policy_is_the_store_procedure():
    assert POLICY.first_response == timedelta(hours=24)
    assert POLICY.resolution == timedelta(hours=48)
    assert POLICY.report == timedelta(hours=8)
    assert POLICY.escalation_step == timedelta(hours=4)


def test_policy_from_seconds_in_field_order():
    policy = Policy.from_seconds(60, 120, 30, 15)
    assert policy == Policy(timedelta(seconds=60), timedelta(seconds=120),
                            timedelta(seconds=30), timedelta(seconds=15))


def test_policy_from_seconds_accepts_config_strings_and_floats():
    # Values coming from environment-substituted YAML may be strings.
    assert Policy.from_seconds("86400", "172800", "28800", "14400") == POLICY
    assert Policy.from_seconds(1.5, 2, 3, 4).first_response == timedelta(seconds=1.5)


def test_ladder_constants():
    assert sla.TOP_RUNG == 4 == LADDER.index("general_manager")
    assert sla.STORE_MANAGER_RUNG == 2


@pytest.mark.parametrize("severity", ["low", "medium", "high"])
def test_non_critical_cases_have_no_report_clock(severity):
    clocks = sla.arm_clocks(POLICY, T0, severity)
    assert clocks == {
        "first_response": {"due_at": at(24), "met_at": None, "breached_at": None},
        "resolution": {"due_at": at(48), "met_at": None, "breached_at": None},
    }


def test_critical_cases_also_get_a_report_clock():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    assert set(clocks) == {"first_response", "resolution", "report"}
    assert clocks["report"] == {"due_at": at(8), "met_at": None, "breached_at": None}


def test_clocks_follow_the_policy():
    policy = Policy.from_seconds(10, 20, 5, 1)
    clocks = sla.arm_clocks(policy, T0, "critical")
    assert {n: c["due_at"] for n, c in clocks.items()} == {
        "first_response": T0 + timedelta(seconds=10),
        "resolution": T0 + timedelta(seconds=20),
        "report": T0 + timedelta(seconds=5),
    }


def test_armed_clocks_are_independent_dicts():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    clocks["first_response"]["met_at"] = T0
    assert all(c["met_at"] is None for n, c in clocks.items() if n != "first_response")


@pytest.mark.parametrize("severity, rung", [
    ("low", 0), ("medium", 0), ("high", 2), ("critical", 2)])
def test_initial_rung(severity, rung):
    assert sla.initial_rung(severity) == rung
    assert LADDER[sla.initial_rung(severity)] == ("store_manager" if rung else "store_staff")


@pytest.mark.parametrize("severity, expected", [
    ("low", False), ("medium", False), ("high", False), ("critical", True)])
def test_only_critical_escalates_immediately(severity, expected):
    assert sla.escalates_immediately(severity) is expected


def test_deadlines_name_each_clock():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    assert sla.deadlines(clocks) == {
        "first_response_due": at(24), "resolution_due": at(48), "report_due": at(8)}


def test_unmet_leaves_out_met_clocks():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    clocks, _ = sla.meet(clocks, ["first_response"], at(1))
    assert set(sla.unmet(clocks)) == {"resolution"}


# -- evaluate -----------------------------------------------------------------------

def test_nothing_happens_before_the_first_deadline():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    decision = sla.evaluate(clocks, 0, None, at(23.99), POLICY)
    assert outcome(decision) == ((), False, None, at(24))


def test_a_clock_breaches_and_escalates_when_due_exactly():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    decision = sla.evaluate(clocks, 0, None, at(24), POLICY)
    assert decision.newly_breached == ("first_response",)
    assert decision.escalate is True
    assert decision.reason == "first_response"
    # Next: one escalation step later (the resolution clock is further away).
    assert decision.next_check_at == at(28)


def test_evaluate_does_not_mutate_the_clocks():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    before = copy.deepcopy(clocks)
    sla.evaluate(clocks, 0, None, at(30), POLICY)
    assert clocks == before


def _after(clocks, decision, now):
    return {n: dict(c, breached_at=now) if n in decision.newly_breached else c
            for n, c in clocks.items()}


def test_an_unmet_clock_climbs_one_rung_per_step_until_the_top():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    rung, last, now = 0, None, at(24)
    history = []
    for _ in range(10):
        decision = sla.evaluate(clocks, rung, last, now, POLICY)
        history.append((now, decision.escalate, decision.newly_breached))
        clocks = _after(clocks, decision, now)
        if decision.escalate:
            rung, last = rung + 1, now
        if decision.next_check_at is None:
            break
        now = decision.next_check_at
    escalations = [moment for moment, escalated, _ in history if escalated]
    assert escalations == [at(24), at(28), at(32), at(36)]
    assert rung == sla.TOP_RUNG
    # The resolution clock still breaches at 48 h even at the top rung ...
    assert (at(48), False, ("resolution",)) in history
    # ... and then nothing can happen any more.
    assert decision.next_check_at is None


def test_no_second_escalation_within_the_step():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    clocks["first_response"]["breached_at"] = at(24)
    decision = sla.evaluate(clocks, 1, at(24), at(27.5), POLICY)
    assert decision.newly_breached == ()
    assert decision.escalate is False
    assert decision.reason is None
    assert decision.next_check_at == at(28)


def test_escalation_after_the_step_has_passed():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    clocks["first_response"]["breached_at"] = at(24)
    decision = sla.evaluate(clocks, 1, at(24), at(28), POLICY)
    assert decision.escalate is True
    assert decision.newly_breached == ()  # it breached once already
    assert decision.reason == "first_response"


def test_no_escalation_beyond_the_top_rung():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    decision = sla.evaluate(clocks, sla.TOP_RUNG, None, at(30), POLICY)
    assert decision.newly_breached == ("first_response",)
    assert decision.escalate is False
    assert decision.next_check_at == at(48)  # the resolution clock can still breach


def test_the_reason_is_the_earliest_overdue_clock():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    decision = sla.evaluate(clocks, 2, None, at(50), POLICY)
    assert decision.newly_breached == ("report", "first_response", "resolution")
    assert decision.reason == "report"


def test_met_clocks_never_breach_or_escalate():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    clocks, _ = sla.meet(clocks, ["first_response"], at(2))
    decision = sla.evaluate(clocks, 0, None, at(30), POLICY)
    assert outcome(decision) == ((), False, None, at(48))


def test_all_clocks_met_means_nothing_left_to_check():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    clocks, _ = sla.meet(clocks, list(clocks), at(1))
    assert outcome(sla.evaluate(clocks, 0, None, at(100), POLICY)) == ((), False, None, None)
    assert sla.next_check_at(clocks, 0, None, POLICY) is None


def test_next_check_waits_for_the_step_after_an_escalation():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    # Critical referral escalated at once at T0; report due at 8 h is the next event.
    assert sla.next_check_at(clocks, 3, T0, POLICY) == at(8)
    # With a long step, the breach of report comes first, the escalation later.
    slow = Policy(escalation_step=timedelta(hours=10))
    clocks["report"]["breached_at"] = at(8)
    assert sla.next_check_at(clocks, 3, T0, slow) == at(10)


def test_next_check_at_top_rung_only_counts_breaches():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    assert sla.next_check_at(clocks, sla.TOP_RUNG, None, POLICY) == at(24)
    clocks["first_response"]["breached_at"] = at(24)
    clocks["resolution"]["breached_at"] = at(48)
    assert sla.next_check_at(clocks, sla.TOP_RUNG, None, POLICY) is None
    # Below the top, an overdue breached clock still means "escalate when allowed".
    assert sla.next_check_at(clocks, 3, at(50), POLICY) == at(54)


# -- meet, rearm --------------------------------------------------------------------

def test_meet_on_time_and_late():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    updated, on_time = sla.meet(clocks, ["first_response", "resolution"], at(30))
    assert on_time == {"first_response": False, "resolution": True}
    assert updated["first_response"]["met_at"] == at(30)
    assert updated["resolution"]["met_at"] == at(30)
    assert clocks["first_response"]["met_at"] is None  # input untouched


def test_meet_exactly_at_the_deadline_is_on_time():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    _, on_time = sla.meet(clocks, ["first_response"], at(24))
    assert on_time == {"first_response": True}


def test_meet_ignores_met_and_unknown_clocks():
    clocks = sla.arm_clocks(POLICY, T0, "low")
    clocks, _ = sla.meet(clocks, ["first_response"], at(1))
    updated, on_time = sla.meet(clocks, ["first_response", "report"], at(5))
    assert on_time == {}
    assert updated == clocks
    assert updated["first_response"]["met_at"] == at(1)
    assert "report" not in updated


def test_rearm_resolution_gives_a_fresh_clock():
    clocks = sla.arm_clocks(POLICY, T0, "critical")
    clocks, _ = sla.meet(clocks, list(clocks), at(60))
    clocks["resolution"]["breached_at"] = at(48)
    rearmed = sla.rearm_resolution(clocks, at(100), POLICY)
    assert rearmed["resolution"] == {"due_at": at(148), "met_at": None, "breached_at": None}
    assert rearmed["first_response"] == clocks["first_response"]
    assert rearmed["report"] == clocks["report"]
    assert clocks["resolution"]["met_at"] == at(60)  # input untouched


# -- property: a simulated case ------------------------------------------------------

seconds = st.integers(min_value=1, max_value=100_000)
policies = st.builds(Policy.from_seconds, seconds, seconds, seconds, seconds)
steps = st.lists(
    st.tuples(st.integers(min_value=1, max_value=200_000),
              st.sets(st.sampled_from(("first_response", "resolution", "report")), max_size=3)
              | st.just(frozenset())),
    min_size=1, max_size=40)


def _quiet_until(clocks, rung, last, now, next_at, policy):
    """Nothing can happen strictly between `now` and `next_at`."""
    end = next_at if next_at is not None else now + timedelta(days=400)
    for moment in (now + (end - now) / 2, end - timedelta(microseconds=1)):
        if moment <= now:
            continue
        decision = sla.evaluate(clocks, rung, last, moment, policy)
        assert decision.newly_breached == ()
        assert decision.escalate is False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, severity=st.sampled_from(("low", "medium", "high", "critical")),
       steps=steps, meet_some=st.booleans())
def test_simulated_case_keeps_the_sla_invariants(policy, severity, steps, meet_some):
    clocks = sla.arm_clocks(policy, T0, severity)
    rung, last = sla.initial_rung(severity), None
    if sla.escalates_immediately(severity):
        rung, last = rung + 1, T0
    breaches = {}
    now = T0
    for delta, to_meet in steps:
        now = now + timedelta(seconds=delta)
        if meet_some and to_meet:
            clocks, _ = sla.meet(clocks, sorted(to_meet), now)
        waiting = {n: c for n, c in clocks.items() if c["met_at"] is None}
        overdue = {n for n, c in waiting.items() if c["due_at"] <= now}

        decision = sla.evaluate(clocks, rung, last, now, policy)

        # Each clock breaches once, unmet, never before it is due; and always when due.
        for name in decision.newly_breached:
            assert name not in breaches
            assert clocks[name]["met_at"] is None
            assert clocks[name]["due_at"] <= now
        assert set(decision.newly_breached) == {
            n for n in overdue if clocks[n]["breached_at"] is None}
        # Escalation exactly when something is overdue, below the top, a step apart.
        step_passed = last is None or now - last >= policy.escalation_step
        assert decision.escalate == (bool(overdue) and rung < sla.TOP_RUNG and step_passed)
        if decision.escalate:
            assert decision.reason in overdue
            assert clocks[decision.reason]["due_at"] == min(clocks[n]["due_at"] for n in overdue)
        else:
            assert decision.reason is None
        if not waiting:
            assert decision.escalate is False
            assert decision.next_check_at is None
        assert decision.next_check_at is None or decision.next_check_at > now

        # Feed the decision back, as flows.check_deadlines does.
        for name in decision.newly_breached:
            breaches[name] = now
            clocks = dict(clocks, **{name: dict(clocks[name], breached_at=now)})
        if hasattr(decision, "clocks"):  # newer Decision carries the updated clocks too
            assert decision.clocks == clocks
        previous_rung = rung
        if decision.escalate:
            rung, last = rung + 1, now
        assert previous_rung <= rung <= sla.TOP_RUNG
        assert decision.next_check_at == sla.next_check_at(clocks, rung, last, policy)
        _quiet_until(clocks, rung, last, now, decision.next_check_at, policy)

    for name, moment in breaches.items():
        assert moment >= clocks[name]["due_at"]
        assert clocks[name]["breached_at"] == moment


@settings(max_examples=200, deadline=None)
@given(policy=policies, severity=st.sampled_from(("low", "medium", "high", "critical")),
       checks=st.lists(st.integers(min_value=1, max_value=200_000), min_size=1, max_size=60))
def test_escalations_are_a_step_apart_and_rungs_only_climb(policy, severity, checks):
    clocks = sla.arm_clocks(policy, T0, severity)
    rung, last = sla.initial_rung(severity), None
    if sla.escalates_immediately(severity):
        rung, last = rung + 1, T0
    escalated_at = [last] if last else []
    now = T0
    for delta in sorted(checks):
        now = T0 + timedelta(seconds=delta)
        if now <= (escalated_at[-1] if escalated_at else T0):
            continue
        decision = sla.evaluate(clocks, rung, last, now, policy)
        for name in decision.newly_breached:
            clocks = dict(clocks, **{name: dict(clocks[name], breached_at=now)})
        if decision.escalate:
            assert rung < sla.TOP_RUNG
            rung, last = rung + 1, now
            escalated_at.append(now)
    assert rung <= sla.TOP_RUNG
    for earlier, later in zip(escalated_at, escalated_at[1:]):
        assert later - earlier >= policy.escalation_step
    first_due = min(c["due_at"] for c in clocks.values())
    assert all(moment >= first_due for moment in escalated_at if moment != T0)
