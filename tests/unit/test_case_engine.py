"""The case engine's use cases (services/routing/flows.route and deadline_flows) with
in-memory repositories: policy choice, clocks on the store's calendar, assignment, the
ladder climbing on unacknowledged rungs and on breaches, referrals, exactly-once."""
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.contract import ClockName
from services.routing import case_flows, deadline_flows, flows, ladder, policy, sla
from tests.unit.fakes import FakeCases, rules

CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
# Tuesday 2026-11-24 10:00 in Shanghai
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def submitted(channel="hotline", content="预约时间被改了也没人通知", referral=None, at=T0, category=None):
    return ev.load(ev.CASE_SUBMITTED, ev.dump(ev.CASE_SUBMITTED, {
        "case_id": uuid.uuid4().hex, "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "store_name": "店", "channel": channel, "customer": {"name": "陈女士", "phone": "+8613912345678"},
        "content": content, "occurred_at": at, "submitted_at": at, "referral": referral,
        "category": category}))


def kinds(events):
    return [e["type"] for e in events]


def payloads(events, kind):
    """The events of `kind` as their consumers load them."""
    return [ev.load(kind, e["payload"]) for e in events if e["type"] == kind]


def wall_policy(policy_id, version, conditions, first_response, resolution):
    """A stored policy of two wall-time clocks, chosen by `conditions`."""
    return policy.validate(policy.SlaPolicy(policy_id, version, policy_id, conditions, (
        policy.ClockSpec(ClockName.FIRST_RESPONSE, first_response, policy.ClockBasis.WALL, None),
        policy.ClockSpec(ClockName.RESOLUTION, resolution, policy.ClockBasis.WALL, None))))


def route(cases, event=None, case_rules=None):
    return flows.route(cases, CHART, case_rules or rules(), event or submitted(), T0)


def check(cases, case, at, case_rules=None):
    return deadline_flows.check_case(cases, CHART, case_rules or rules(), case["_id"], at)


def test_a_routine_case_gets_the_default_policy_clocks_and_the_bottom_rung():
    cases = FakeCases()
    case, events = route(cases)
    assert kinds(events) == [ev.CASE_ROUTED]
    assert case["policy"]["policy_id"] == policy.DEFAULT_POLICY_ID
    assert set(case["clocks"]) == {"first_response", "update", "resolution"}
    assert case["clocks"]["first_response"]["due_at"] == T0 + timedelta(hours=24)   # wall: the promise
    # the keep-in-loop update counts 8 h of the store's 10:00-21:00 hours: 10:00 + 8 h the same day
    assert case["clocks"]["update"]["due_at"] == T0 + timedelta(hours=8)
    assert case["ladder"]["role"] == "store_staff" and case["assignee"]["role"] == "store_staff"
    # the first thing that can happen: the store staff's 30 minutes to acknowledge
    assert case["next_check_at"] == T0 + timedelta(minutes=30)
    routed = payloads(events, ev.CASE_ROUTED)[0]
    assert routed["ack_due_at"] == case["next_check_at"]
    assert routed["deadlines"]["resolution_due"] == T0 + timedelta(hours=48)


def test_business_time_runs_over_closed_hours():
    """An update clock started at 20:00 has one hour left that day and the rest the next morning."""
    cases = FakeCases()
    late = T0 + timedelta(hours=10)  # 20:00 Shanghai
    case, _ = route(cases, submitted(at=late))
    assert case["clocks"]["update"]["due_at"] == datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)  # 17:00 next day


def test_an_unacknowledged_rung_climbs_and_an_acknowledged_one_stops():
    cases = FakeCases()
    case, _ = route(cases)
    assert check(cases, case, T0 + timedelta(minutes=29)) == []
    [(case, events)] = check(cases, case, T0 + timedelta(minutes=30))
    [escalated] = payloads(events, ev.CASE_ESCALATED)
    assert (escalated["reason"], escalated["role"], escalated["rung"]) == ("unacknowledged", "supervisor", 1)
    assert escalated["due_at"] == T0 + timedelta(minutes=30)
    assert [p["staff_id"] for p in escalated["notified"]] == ["sh-xh-sv"]
    assert escalated["ack_due_at"] == T0 + timedelta(minutes=90)
    assert check(cases, case, T0 + timedelta(minutes=30)) == []  # once: nothing new at the same moment
    # the supervisor acknowledges: the climb stops
    state = ladder.acknowledge(ladder.LadderState.from_doc(case["ladder"]), CHART.staff["sh-xh-sv"],
                               T0 + timedelta(minutes=40))
    case = cases.update(case, {"ladder": state.to_doc(),
                               "next_check_at": deadline_flows.schedule(
                                   deadline_flows.clocks.from_doc(case["clocks"]), state)}, [], [], T0)
    later = case["next_check_at"]
    assert later > T0 + timedelta(hours=2)  # the next thing is a clock's warning, not a climb
    [(case, events)] = check(cases, case, later)
    assert kinds(events) == [ev.CASE_DEADLINE_APPROACHED] and case["rung"] == 1


def test_a_breach_climbs_even_an_acknowledged_rung_and_warns_before():
    cases = FakeCases()
    case, _ = route(cases)
    state = ladder.acknowledge(ladder.LadderState.from_doc(case["ladder"]), CHART.staff["sh-xh-s1"], T0)
    case = cases.update(case, {"ladder": state.to_doc(), "next_check_at": T0 + timedelta(hours=6)}, [], [], T0)
    [(case, events)] = check(cases, case, T0 + timedelta(hours=6))  # 2 h before the update clock
    assert [p["clock"] for p in payloads(events, ev.CASE_DEADLINE_APPROACHED)] == ["update"]
    assert case["next_check_at"] == T0 + timedelta(hours=8)
    [(case, events)] = check(cases, case, T0 + timedelta(hours=8))
    assert kinds(events) == [ev.CASE_DEADLINE_BREACHED, ev.CASE_ESCALATED]
    [escalated] = payloads(events, ev.CASE_ESCALATED)
    assert (escalated["reason"], escalated["role"]) == ("update", "supervisor")
    assert case["ladder"]["acknowledged_at"] is None  # the new rung must acknowledge the new alarm


def test_a_referral_goes_to_the_store_manager_and_customer_service_with_a_report_clock():
    cases = FakeCases()
    referral = {"authority": "上海市消保委", "reference_number": "12315-2026-0001", "body": "请核实"}
    case, events = route(cases, submitted(channel="consumer_association", content="消协转来投诉:办卡多收费",
                                          referral=referral))
    assert case["severity"] == "critical" and case["assignee"]["role"] == "store_manager"
    assert case["policy"]["policy_id"] == policy.REFERRAL_POLICY_ID
    assert case["clocks"]["report"]["due_at"] == T0 + timedelta(hours=8)
    routed = payloads(events, ev.CASE_ROUTED)[0]
    assert {p["role"] for p in routed["informed"]} == {"customer_service"}
    assert routed["referral"]["reference_number"] == "12315-2026-0001"
    assert any(e["action"] == "referral_received" for e in case["timeline"])


def test_a_stored_policy_that_fits_better_is_chosen_and_kept_by_the_case():
    cases = FakeCases()
    fast = wall_policy("booking-fast", 3, policy.Conditions(categories=frozenset({policy.Category.BOOKING})),
                       timedelta(hours=2), timedelta(hours=12))
    case, _ = route(cases, submitted(category="booking"), rules((fast,)))
    assert case["policy"] == {"policy_id": "booking-fast", "version": 3, "name": "booking-fast"}
    assert case["clocks"]["first_response"]["policy_version"] == 3
    assert case["clocks"]["first_response"]["due_at"] == T0 + timedelta(hours=2)
    other, _ = route(cases, submitted(category="hygiene"), rules((fast,)))
    assert other["policy"]["policy_id"] == policy.DEFAULT_POLICY_ID


def test_racing_replicas_escalate_once():
    cases = FakeCases()
    case, _ = route(cases)
    at = T0 + timedelta(minutes=30)
    first = check(cases, case, at)
    stale = deadline_flows._check(cases, CHART, rules(), case, at)  # a replica that read before the first wrote
    assert len(first) == 1 and stale == []


def test_a_store_without_a_supervisor_skips_that_rung_with_a_note():
    chart = replace(CHART, staff={k: replace(v, active=False) if k == "sh-xh-sv" else v
                                  for k, v in CHART.staff.items()})
    cases = FakeCases()
    case_rules = rules(chart=chart)
    case, _ = flows.route(cases, chart, case_rules, submitted(), T0)
    [(case, events)] = deadline_flows.check_case(cases, chart, case_rules, case["_id"], T0 + timedelta(minutes=30))
    [escalated] = payloads(events, ev.CASE_ESCALATED)
    assert escalated["role"] == "store_manager"
    assert any(e["action"] == "ladder_skipped" and e["role"] == "supervisor" for e in case["timeline"])


def test_a_notification_nobody_could_receive_becomes_one_task_on_the_case():
    cases = FakeCases()
    case, _ = route(cases)
    failed = {"event_id": "e1", "case_id": case["_id"], "case_number": case["case_number"], "store_id": "SH-XH-001",
              "kind": "acknowledgement", "audience": "customer", "recipient": "customer:abc",
              "reason": "sms: isv.MOBILE_NUMBER_ILLEGAL", "channels_tried": ["sms"], "action": "phone_call",
              "failed_at": T0}
    updated, _ = case_flows.add_task_for_failed_notification(cases, failed, T0 + MINUTE)
    again, _ = case_flows.add_task_for_failed_notification(cases, dict(failed, event_id="e2"), T0 + 2 * MINUTE)
    assert [t["action"] for t in again["tasks"]] == ["phone_call"] and again["version"] == updated["version"]
    assert [e["action"] for e in again["timeline"]].count("task_added") == 1
    assert case_flows.add_task_for_failed_notification(cases, dict(failed, case_id="nope"), T0) == (None, [])


def test_a_customer_tier_given_at_intake_chooses_a_policy_for_that_tier():
    cases = FakeCases()
    vip = wall_policy("key-customers", 1, policy.Conditions(tiers=frozenset({policy.CustomerTier.KEY})),
                      timedelta(hours=4), timedelta(hours=24))
    key = submitted()
    key["customer"]["tier"] = "key"
    case, _ = route(cases, key, rules((vip,)))
    assert case["policy"]["policy_id"] == "key-customers"
    assert case["clocks"]["first_response"]["due_at"] == T0 + timedelta(hours=4)
    assert route(cases, submitted(), rules((vip,)))[0]["policy"]["policy_id"] == policy.DEFAULT_POLICY_ID


def test_a_reopened_case_needs_its_rung_to_acknowledge_again():
    cases = FakeCases()
    case, _ = route(cases)
    state = ladder.acknowledge(ladder.LadderState.from_doc(case["ladder"]), CHART.staff[case["assignee"]["staff_id"]], T0)
    resolved, _ = sla.meet(case["clocks"], ["first_response", "update", "resolution"], T0 + MINUTE)
    case = cases.update(case, {"ladder": state.to_doc(), "clocks": resolved, "status": "resolved",
                               "resolution_round": 1, "next_check_at": None}, [], [], T0)
    reopened, _ = case_flows.reopen(cases, rules(), case["_id"], "sh-xh-mg", "顾客仍不满意", "staff", T0 + 3 * DAY)
    assert reopened["ladder"]["acknowledged_at"] is None
    assert reopened["ladder"]["ack_due_at"] == T0 + 3 * DAY + timedelta(minutes=30)
    assert reopened["next_check_at"] == reopened["ladder"]["ack_due_at"]
    [(climbed, events)] = check(cases, reopened, T0 + 3 * DAY + timedelta(minutes=30))
    [escalated] = payloads(events, ev.CASE_ESCALATED)
    assert escalated["reason"] == "unacknowledged" and escalated["due_at"] == reopened["ladder"]["ack_due_at"]


def test_the_safety_net_scan_leaves_a_fresh_deadline_to_the_precise_timers():
    cases = FakeCases()
    case, _ = route(cases)
    due = case["next_check_at"]
    assert deadline_flows.check_due(cases, CHART, rules(), due + timedelta(seconds=5)) == []
    [(scanned, _)] = deadline_flows.check_due(cases, CHART, rules(), due + deadline_flows.SAFETY_NET_GRACE)
    assert scanned["rung"] == 1


def test_a_climb_is_in_the_timeline_even_when_the_ladder_keeps_no_more_notes():
    cases = FakeCases()
    case, _ = route(cases)
    full = dict(case["ladder"], notes=(case["ladder"]["notes"] * ladder.NOTES_KEPT)[-ladder.NOTES_KEPT:])
    case = cases.update(case, {"ladder": full}, [], [], T0)
    [(climbed, _)] = check(cases, case, T0 + timedelta(minutes=30))
    assert len(climbed["ladder"]["notes"]) == ladder.NOTES_KEPT
    assert any(e["action"] == "ladder_notified" and e["role"] == "supervisor" for e in climbed["timeline"])
