"""services/routing/lifecycle.py (the state machine) and services/routing/case_flows.py
over an in-memory repository: the transition table, every action's changes and audit
entry, pauses, remedies at resolution, root causes before closing, merges, the bounded
timeline, and random action sequences keeping the invariants. Cases are made by
routing itself (flows.route with tests/unit/fakes.rules: the built-in policies, the
store open 10:00-21:00 in Shanghai, the default acknowledgement timeouts)."""
import copy
import uuid
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.access import Principal, scope_of
from closeloop_shared.contract import (
    ACTIVE_CASE_STATUSES, REFERRAL_CHANNELS, CaseAction, CaseStatus, Channel, ClockBasis, ClockName,
    RemedyStatus)
from services.routing import case_flows, clocks, deadline_flows, flows, ladder, lifecycle, policy, sla
from services.routing.lifecycle import TRANSITIONS, ActionRefused, CaseView
from tests.unit.fakes import FakeCases, rules

# Monday 2026-11-23 17:00 in Shanghai: four open hours left that day
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
RULES = case_flows.RemedyRules()
# The store's other clerk (sh-xh-rv) is busier: new cases go to sh-xh-s1 (CLERK).
CASE_RULES = rules(open_counts={"sh-xh-rv": 1})
CALENDARS = CASE_RULES.calendar_of  # store_id -> the store's business calendar
CALENDAR = CALENDARS("SH-XH-001")


def at(hours):
    return T0 + timedelta(hours=hours)


def staff(staff_id):
    person = CHART.staff[staff_id]
    principal = Principal.for_staff(person, CHART.brand_of(person))
    return principal, scope_of(principal, CHART)


CLERK, MANAGER, REGIONAL, GM = (staff(s) for s in ("sh-xh-s1", "sh-xh-mg", "rm-east", "gm-001"))
IMPROVEMENT = [{"text": "前台改约必须短信通知顾客", "owner": "sh-xh-mg", "due": date(2026, 12, 31)}]


def submitted(channel="hotline", phone="+8613912345678", member_id=None, when=T0):
    return ev.load(ev.CASE_SUBMITTED, ev.dump(ev.CASE_SUBMITTED, {
        "case_id": uuid.uuid4().hex, "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "store_name": "上海徐汇店", "channel": channel,
        "customer": {"name": "陈女士", "phone": phone, "member_id": member_id},
        "content": "预约时间被改了也没人通知", "occurred_at": when, "submitted_at": when}))


def routed(cases, channel="hotline", case_rules=CASE_RULES, **customer):
    """A case as routing leaves it (a routine one with the store's clerk, a referral
    critical with the store manager and owing a report), stored in `cases`; its id."""
    case, _ = flows.route(cases, CHART, case_rules, submitted(channel, **customer), T0)
    return case["_id"]


@lru_cache(maxsize=None)
def _routed_doc(channel):
    cases = FakeCases()
    return cases.get(routed(cases, channel))


def doc(status, channel="hotline", **extra):
    """A case as routing leaves it, moved to `status` (for the pure functions)."""
    return {**copy.deepcopy(_routed_doc(channel)), "_id": "c1", "status": status, **extra}


# -- the transition table -------------------------------------------------------------

def perform(view, action, now=at(1)):
    """Each action with inputs that pass its own checks where the case allows it."""
    a = CaseAction
    calls = {
        a.ACKNOWLEDGE: lambda: lifecycle.acknowledge(view, "s", now),
        a.RESPOND: lambda: lifecycle.respond(view, "s", "已致电", now, CALENDAR),
        a.NOTE: lambda: lifecycle.note(view, "s", "查监控", [{"kind": "video", "ref": "cam-3"}], now),
        a.REPORT_TO_SUPERIOR: lambda: lifecycle.report_to_superior(view, "s", "需要支持", {"staff_id": "m"}, now),
        a.REQUEST_INFO: lambda: lifecycle.request_info(view, "s", "哪一天?", now),
        a.RESUME: lambda: lifecycle.resume(view, "s", "周二", now, CALENDAR),
        a.PROPOSE_REMEDY: lambda: lifecycle.propose_remedy(view, _apology(), now),
        a.APPROVE_REMEDY: lambda: lifecycle.next_status(view, a.APPROVE_REMEDY),
        a.REJECT_REMEDY: lambda: lifecycle.next_status(view, a.REJECT_REMEDY),
        a.ROOT_CAUSE: lambda: lifecycle.record_root_cause(view, "s", "misunderstanding", [], "", now),
        a.FILE_REPORT: lambda: lifecycle.file_report(view, "s", "书面报告", now),
        a.SIGN_OFF_REPORT: lambda: lifecycle.sign_off_report(view, "gm", now),
        a.RESOLVE: lambda: lifecycle.resolve(view, "s", None, "", now),
        a.CLOSE: lambda: lifecycle.close(view, "s", now),
        a.REOPEN: lambda: lifecycle.reopen(view, "s", "不满意", "staff", now, CALENDAR),
        a.LINK: lambda: lifecycle.link(view, "s", "c2", "staff", now),
        a.MERGE: lambda: lifecycle.merge(view, "s", "c2", now),
        a.ARCHIVE: lambda: lifecycle.archive(view, "s", now),
    }
    return calls[action]()


def _apology():
    from services.routing import remedies
    return remedies.propose("apology", None, 0, 1, "s", None, [], RULES.limits, None, at(1))


# What an allowed action may still refuse for reasons other than the status.
GUARDS = {"no_report_required", "no_report_to_sign_off", "root_cause_required"}


@pytest.mark.parametrize("status", list(CaseStatus))
@pytest.mark.parametrize("action", list(CaseAction))
def test_every_status_and_action_is_allowed_or_refused_naming_the_allowed_actions(status, action):
    view = CaseView.of(doc(status.value))
    if action in TRANSITIONS[status]:
        try:
            changes, *_ = perform(view, action) if action not in (
                CaseAction.APPROVE_REMEDY, CaseAction.REJECT_REMEDY) else ({"status": perform(view, action).value},)
        except ActionRefused as refused:
            assert refused.code in GUARDS, refused.code
            assert refused.allowed == lifecycle.allowed_actions(status)
            return
        assert changes.get("status", status.value) == TRANSITIONS[status][action].value
    else:
        with pytest.raises(ActionRefused) as refused:
            perform(view, action)
        assert refused.value.code == "invalid_transition"
        assert refused.value.allowed == [a.value for a in TRANSITIONS[status]]
        assert action.value not in refused.value.allowed


def test_the_table_covers_every_status_and_archived_is_the_end():
    assert set(TRANSITIONS) == set(CaseStatus)
    assert TRANSITIONS[CaseStatus.ARCHIVED] == {}
    # every status but archived can be left or acted on, and every status is reachable
    reachable = {CaseStatus.NEW, CaseStatus.ASSIGNED} | {t for row in TRANSITIONS.values() for t in row.values()}
    assert reachable == set(CaseStatus)


def test_active_statuses_are_the_shared_vocabulary():
    assert set(lifecycle.ACTIVE) == ACTIVE_CASE_STATUSES
    assert {s.value for s in CaseStatus} == {
        "new", "assigned", "acknowledged", "investigating", "pending_customer", "resolved", "closed",
        "reopened", "archived"}


def test_every_action_is_audited_with_who_when_and_the_values_before_and_after():
    changes, entry = lifecycle.acknowledge(CaseView.of(doc("assigned")), "sh-xh-s1", at(1))
    assert changes["status"] == "acknowledged"
    assert entry["actor"] == "sh-xh-s1" and entry["at"] == at(1) and entry["action"] == "acknowledged"
    assert entry["before"] == {"status": "assigned", "acknowledged_by": None, "acknowledged_at": None}
    assert entry["after"] == {"status": "acknowledged", "acknowledged_by": "sh-xh-s1", "acknowledged_at": at(1)}


# -- respond, pause and resume ----------------------------------------------------------

def test_the_first_answer_meets_the_first_response_clock_and_every_answer_restarts_the_update_clock():
    view = CaseView.of(doc("acknowledged"))
    changes, entry, on_time = lifecycle.respond(view, "s", "已致电致歉", at(2), CALENDAR)
    assert on_time is True and changes["status"] == "investigating" and changes["first_response_at"] == at(2)
    assert changes["clocks"]["first_response"]["met_at"] == at(2) and entry["first"] is True
    # 8 h of open time from Monday 19:00 in Shanghai: 2 h that evening, 6 h on Tuesday (16:00)
    assert changes["clocks"]["update"]["started_at"] == at(2) and changes["clocks"]["update"]["due_at"] == at(23)
    again = CaseView.of(doc("investigating", clocks=changes["clocks"]))
    changes, entry, on_time = lifecycle.respond(again, "s", "进展", at(30), CALENDAR)
    assert on_time is None and entry["first"] is False and "first_response_at" not in changes
    assert changes["clocks"]["first_response"]["met_at"] == at(2)  # met once, by the first answer
    # answered on Tuesday 23:00 (closed): the next update is owed 8 open hours later, Wednesday 18:00
    assert changes["clocks"]["update"]["started_at"] == at(30) and changes["clocks"]["update"]["due_at"] == at(49)


def test_request_info_pauses_the_customer_clocks_and_resume_moves_their_deadlines():
    view = CaseView.of(doc("investigating", channel="media"))
    paused, entry = lifecycle.request_info(view, "s", "请提供收据", at(2))
    assert paused["status"] == "pending_customer"
    assert paused["clocks"]["resolution"]["paused_at"] == at(2)
    assert paused["clocks"]["report"].get("paused_at") is None  # owed to the association, not the customer
    assert entry["paused"] == ["first_response", "resolution", "update"] and "deadlines" not in entry["after"]
    # a deadline check during the pause breaches only the report
    fired = clocks.due(clocks.from_doc(paused["clocks"]), at(100))
    assert fired.breaches == ("report",) and fired.warnings == ()
    waiting = CaseView.of(doc("pending_customer", channel="media", clocks=paused["clocks"]))
    resumed, entry = lifecycle.resume(waiting, "s", "收据已发", at(7), CALENDAR)
    assert resumed["status"] == "investigating"
    resolution = resumed["clocks"]["resolution"]
    assert resolution["due_at"] == at(48 + 5) and resolution["paused_at"] is None
    assert resumed["clocks"]["first_response"]["due_at"] == at(24 + 5)
    assert resumed["clocks"]["report"]["due_at"] == at(8)
    # the update clock counts open time: the pause (19:00 to midnight in Shanghai) covered 2 h of it
    assert resumed["clocks"]["update"]["due_at"] == at(21 + 2)
    assert entry["after"]["deadlines"]["resolution"] == at(53)


# -- resolve, close, reopen -----------------------------------------------------------

def test_resolve_without_an_approved_remedy_is_an_apology_and_meets_every_customer_clock():
    changes, entry, on_time = lifecycle.resolve(CaseView.of(doc("investigating")), "s", None, "致歉", at(3))
    assert changes["remedy"]["type"] == "apology" and changes["remedy"]["amount_fen"] == 0
    assert changes["status"] == "resolved" and on_time is True
    # the remedy is the (first) answer; no update nor resolution is owed any more
    assert changes["first_response_at"] == at(3)
    assert {name: c["met_at"] for name, c in changes["clocks"].items()} == {
        "first_response": at(3), "update": at(3), "resolution": at(3)}


def test_a_referral_resolves_only_after_the_general_manager_signed_its_report_off():
    view = CaseView.of(doc("acknowledged", channel="media"))
    with pytest.raises(ActionRefused) as refused:
        lifecycle.resolve(view, "m", None, "", at(3))
    assert refused.value.code == "report_required" and "resolve" in refused.value.allowed
    filed, _ = lifecycle.file_report(view, "sh-xh-mg", "书面报告", at(4))
    assert "clocks" not in filed  # filing alone does not meet the report clock
    view = CaseView.of(dict(doc("acknowledged", channel="media"), **filed))
    with pytest.raises(ActionRefused):
        lifecycle.resolve(view, "m", None, "", at(5))
    signed, entry, on_time = lifecycle.sign_off_report(view, "gm-001", at(6))
    assert on_time is True and signed["clocks"]["report"]["met_at"] == at(6)
    assert signed["report"]["signed_off_by"] == "gm-001" and entry["after"]["report"]["signed_off_at"] == at(6)
    view = CaseView.of(dict(doc("acknowledged", channel="media"), **signed))
    assert lifecycle.resolve(view, "m", None, "", at(7))[0]["status"] == "resolved"
    with pytest.raises(ActionRefused) as refused:
        lifecycle.file_report(view, "m", "again", at(8))
    assert refused.value.code == "report_signed_off"


def test_close_needs_the_root_cause():
    with pytest.raises(ActionRefused) as refused:
        lifecycle.close(CaseView.of(doc("resolved")), "s", at(1))
    assert refused.value.code == "root_cause_required" and "root-cause" in refused.value.allowed
    cause = {"cause": "misunderstanding"}
    changes, _ = lifecycle.close(CaseView.of(doc("resolved", root_cause=cause)), "s", at(1))
    assert changes["status"] == "closed"


def test_a_salon_side_root_cause_needs_an_improvement_action():
    with pytest.raises(ActionRefused) as refused:
        lifecycle.record_root_cause(CaseView.of(doc("resolved")), "s", "unkept_promise", [], "", at(1))
    assert (refused.value.code, refused.value.field) == ("validation_failed", "actions")
    changes, _ = lifecycle.record_root_cause(CaseView.of(doc("resolved")), "s", "habitual_venting", [], "", at(1))
    assert changes["root_cause"]["side"] == "customer"


def test_reopen_rearms_the_resolution_and_update_clocks_and_a_merged_case_never_reopens():
    met, _ = sla.meet(doc("closed")["clocks"], ["first_response", "update", "resolution"], at(10))
    changes, entry = lifecycle.reopen(CaseView.of(doc("closed", rung=3, clocks=met)),
                                      "m", "不满意", "staff", at(80), CALENDAR)
    assert changes["status"] == "reopened" and changes["reopen_count"] == 1
    assert "rung" not in changes  # nobody is demoted
    resolution, update = changes["clocks"]["resolution"], changes["clocks"]["update"]
    assert (resolution["started_at"], resolution["due_at"], resolution["met_at"]) == (at(80), at(128), None)
    # reopened at 01:00 on Friday in Shanghai (closed): 8 open hours from 10:00, Friday 18:00
    assert (update["started_at"], update["due_at"], update["met_at"]) == (at(80), at(97), None)
    assert changes["clocks"]["first_response"]["met_at"] == at(10)  # answered once and for all
    assert entry["source"] == "staff" and (entry["before"]["reopen_count"], entry["after"]["reopen_count"]) == (0, 1)
    with pytest.raises(ActionRefused) as refused:
        lifecycle.reopen(CaseView.of(doc("closed", merged_into="c9")), "m", "x", "staff", at(80), CALENDAR)
    assert refused.value.code == "merged"


def test_merge_closes_with_a_pointer_and_stops_every_clock():
    changes, entry = lifecycle.merge(CaseView.of(doc("pending_customer")), "sh-xh-sv", "c2", at(3))
    assert changes["status"] == "closed" and changes["merged_into"] == "c2"
    stopped = clocks.from_doc(changes["clocks"])
    assert clocks.next_at(stopped) is None and not any(c.running for c in stopped.values())
    assert all(c["stopped_at"] == at(3) and c["met_at"] is None for c in changes["clocks"].values())
    with pytest.raises(ActionRefused) as refused:
        lifecycle.merge(CaseView.of(doc("assigned")), "s", "c1", at(3))
    assert refused.value.field == "into"


# -- flows over the in-memory repository ------------------------------------------------

def test_remedy_above_the_store_manager_s_limit_waits_for_the_regional_manager():
    cases = FakeCases()
    case_id = routed(cases)
    case, events = case_flows.propose_remedy(cases, CHART, RULES, case_id, *MANAGER,
                                             {"type": "compensation", "amount_fen": 80_000}, at(1))
    proposal = events[0]["payload"]
    assert proposal["status"] == "pending_approval" and proposal["approver"]["staff_id"] == "rm-east"
    assert proposal["amount_fen"] == 80_000 and proposal["event_id"] == events[0]["id"]
    remedy_id = proposal["remedy_id"]
    with pytest.raises(ActionRefused) as refused:
        case_flows.resolve(cases, CHART, case_id, None, "", *MANAGER, at(2))
    assert refused.value.code == "remedy_pending"
    with pytest.raises(ActionRefused) as refused:
        case_flows.decide_remedy(cases, RULES, case_id, remedy_id, True, "", *MANAGER, at(2))
    assert refused.value.code == "above_approval_limit"
    case, events = case_flows.decide_remedy(cases, RULES, case_id, remedy_id, True, "同意", *REGIONAL, at(3))
    assert events[0]["payload"]["decision"] == "approved" and case["remedies"][0]["decided_by"] == "rm-east"
    case, events = case_flows.resolve(cases, CHART, case_id, None, "已补偿", *MANAGER, at(4))
    assert case["next_check_at"] is None  # nothing left to check on a resolved case
    resolved = ev.load(ev.CASE_RESOLVED, [e for e in events if e["type"] == ev.CASE_RESOLVED][0]["payload"])
    assert resolved["amount_fen"] == 80_000 and resolved["remedy"]["amount_fen"] == 80_000
    assert resolved["remedy"]["remedy_id"] == remedy_id


def test_a_satisfied_revisit_closes_only_once_the_root_cause_is_recorded():
    cases = FakeCases()
    case_id = routed(cases)
    case_flows.resolve(cases, CHART, case_id, None, "", *CLERK, at(1))
    revisit = {"case_id": case_id, "round": 1, "revisit_id": "r1", "score": 5, "reopens_case": False}
    case, events = case_flows.apply_revisit(cases, CASE_RULES, revisit, at(2))
    assert case["status"] == "resolved" and case["close_pending"]["revisit_id"] == "r1" and events == []
    again, _ = case_flows.apply_revisit(cases, CASE_RULES, revisit, at(3))  # redelivered: nothing more
    assert again["timeline_count"] == case["timeline_count"]
    case, events = case_flows.record_root_cause(cases, CHART, case_id, *MANAGER, "poor_communication",
                                                IMPROVEMENT, "", at(4))
    assert case["status"] == "closed" and [e["type"] for e in events] == [ev.CASE_CLOSED]
    assert events[0]["payload"]["root_cause"] == "poor_communication"
    assert [e["action"] for e in case["timeline"][-3:]] == ["close_awaits_root_cause", "root_cause_recorded", "closed"]
    assert case["root_cause"]["actions"] == [dict(IMPROVEMENT[0], due="2026-12-31")]


def test_an_improvement_action_is_owned_by_an_active_staff_member():
    cases = FakeCases()
    case_id = routed(cases)
    with pytest.raises(ActionRefused) as refused:
        case_flows.record_root_cause(cases, CHART, case_id, *MANAGER, "poor_communication",
                                     [dict(IMPROVEMENT[0], owner="nobody")], "", at(1))
    assert refused.value.field == "actions.0.owner"


def test_merge_points_to_the_surviving_case_on_both_timelines():
    cases = FakeCases()
    keep, duplicate = routed(cases), routed(cases)
    case, events, others = case_flows.merge(cases, duplicate, keep, *MANAGER, at(1))
    assert case["status"] == "closed" and case["merged_into"] == keep and case["next_check_at"] is None
    assert [e["type"] for e in events] == [ev.CASE_MERGED, ev.CASE_CLOSED]
    survivor = others[0][0]
    assert duplicate in survivor["related"] and survivor["timeline"][-1]["action"] == "merged_in"
    with pytest.raises(ActionRefused) as refused:
        case_flows.merge(cases, keep, "no-such-case", *MANAGER, at(2))
    assert refused.value.field == "into"


def test_a_case_reopened_hundreds_of_times_keeps_a_bounded_document_and_its_whole_timeline():
    cases = FakeCases(timeline_kept=100)
    case_id = routed(cases)
    routing = cases.get(case_id)["timeline_count"]  # submitted, routed, the ladder's rung notified
    now = at(1)
    for _ in range(120):  # 240 entries: well past the 100 kept
        case_flows.resolve(cases, CHART, case_id, None, "", *CLERK, now)
        now += timedelta(minutes=1)
        case_flows.reopen(cases, CASE_RULES, case_id, "sh-xh-mg", "不满意", "staff", now)
        now += timedelta(minutes=1)
    case = cases.get(case_id)
    assert case["reopen_count"] == 120 and case["timeline_count"] == routing + 240
    assert len(case["timeline"]) == 100 and case["timeline"][-1]["seq"] == routing + 240
    seen, before = [], None
    while True:
        page = case_flows.timeline(cases, case_id, CLERK[1], before, 200)
        seen += page["entries"]
        if page["next_before"] is None:
            break
        before = page["next_before"]
    assert [e["seq"] for e in seen] == list(range(routing + 240, 0, -1))
    assert seen[-1]["action"] == "submitted"


def _every_action(cases, case_id, principal, scope, now):
    """Each staff action on a case, as a thunk."""
    return {
        "acknowledge": lambda: case_flows.acknowledge(cases, CHART, case_id, principal, scope, now),
        "respond": lambda: case_flows.respond(cases, CALENDARS, case_id, principal, scope, "已回电", now),
        "note": lambda: case_flows.add_note(cases, case_id, principal, scope, "查监控", [], now),
        "report_to_superior": lambda: case_flows.report_to_superior(cases, CHART, case_id, principal,
                                                                    scope, "请支持", now),
        "request_info": lambda: case_flows.request_info(cases, case_id, principal, scope, "?", now),
        "propose_remedy": lambda: case_flows.propose_remedy(cases, CHART, RULES, case_id, principal, scope,
                                                            {"type": "apology"}, now),
        "root_cause": lambda: case_flows.record_root_cause(cases, CHART, case_id, principal, scope,
                                                           "misunderstanding", [], "", now),
        "file_report": lambda: case_flows.file_report(cases, case_id, principal, scope, "报告", now),
        "sign_off_report": lambda: case_flows.sign_off_report(cases, case_id, principal, scope, now),
        "resolve": lambda: case_flows.resolve(cases, CHART, case_id, None, "", principal, scope, now),
        "reopen": lambda: case_flows.reopen(cases, CASE_RULES, case_id, principal.actor, "不满意", "staff", now, scope),
        "link": lambda: case_flows.link(cases, case_id, "other", principal, scope, now),
        "merge": lambda: case_flows.merge(cases, case_id, "other", principal, scope, now),
        "archive": lambda: case_flows.archive(cases, case_id, principal, scope, now),
        "timeline": lambda: case_flows.timeline(cases, case_id, scope, None, 10),
    }


@pytest.mark.parametrize("action", sorted(_every_action(None, None, CLERK[0], None, T0)))
@pytest.mark.parametrize("staff_id", ["hz-xh-mg", "rm-south", "my-gm"])
def test_every_action_on_a_case_out_of_scope_is_case_not_found_and_changes_nothing(action, staff_id):
    cases = FakeCases()
    case_id = routed(cases, channel="media")
    before = cases.get(case_id)
    principal, scope = staff(staff_id)
    with pytest.raises(case_flows.CaseNotFound):
        _every_action(cases, case_id, principal, scope, at(1))[action]()
    with pytest.raises(case_flows.CaseNotFound):
        _every_action(cases, "no-such-case", principal, scope, at(1))[action]()
    assert cases.get(case_id) == before


def test_acknowledging_a_case_on_the_ladder_stops_its_climb_for_the_rung_or_above():
    cases = FakeCases()
    case_id = routed(cases, channel="media")  # critical: it starts on the store manager's rung
    assert cases.get(case_id)["next_check_at"] == T0 + ladder.DEFAULT_TIMEOUTS[ladder.STORE_MANAGER]
    with pytest.raises(ActionRefused) as refused:
        case_flows.acknowledge(cases, CHART, case_id, *CLERK, at(0.1))
    assert refused.value.code == "below_rung"
    case, events = case_flows.acknowledge(cases, CHART, case_id, *MANAGER, at(0.2))
    assert case["ladder"]["acknowledged_by"] == "sh-xh-mg" and case["status"] == "acknowledged"
    assert ladder.next_at(ladder.LadderState.from_doc(case["ladder"])) is None
    # no more waiting for the rung's acknowledgement: next is the report clock's warning (8 h, 2 h ahead)
    assert case["next_check_at"] == clocks.next_at(clocks.from_doc(case["clocks"])) == at(6)
    assert events[0]["type"] == ev.CASE_ACKNOWLEDGED and events[0]["payload"]["rung"] == ladder.STORE_MANAGER


def test_pause_resume_and_reopen_keep_the_clocks_module_s_format():
    armed = doc("investigating")["clocks"]
    paused, _ = lifecycle.request_info(CaseView.of(doc("investigating")), "s", "?", at(2))
    resumed, _ = lifecycle.resume(CaseView.of(doc("pending_customer", clocks=paused["clocks"])), "s", "!", at(5),
                                  CALENDAR)
    after = clocks.from_doc(resumed["clocks"])
    before = clocks.from_doc(armed)
    # wall clocks move by the 3 h paused, the business update clock by the 2 h of open time
    # that covered (19:00-21:00 in Shanghai; its deadline and warning fall in Tuesday's open hours)
    moved = {"first_response": timedelta(hours=3), "resolution": timedelta(hours=3),
             "update": timedelta(hours=2)}
    assert {name: clock.basis for name, clock in after.items()} == {
        "first_response": ClockBasis.WALL, "resolution": ClockBasis.WALL, "update": ClockBasis.BUSINESS}
    for name, clock in after.items():
        assert clock.due_at == before[name].due_at + moved[name] and clock.paused_at is None
        assert clock.paused_for == moved[name]
        assert clock.warn_at == before[name].warn_at + moved[name]
    met, _ = sla.meet(resumed["clocks"], ["first_response", "resolution"], at(6))
    reopened, _ = lifecycle.reopen(CaseView.of(doc("resolved", clocks=met)), "m", "不满意", "staff", at(10),
                                   CALENDAR)
    resolution = clocks.from_doc(reopened["clocks"])["resolution"]
    assert resolution.started_at == at(10) and resolution.met_at is None
    assert resolution.due_at == at(10) + before["resolution"].duration


def test_actions_retry_a_lost_race_and_give_up_after_max_attempts():
    cases = FakeCases()
    case_id = routed(cases)
    cases.lose_next_updates = 2
    responded, events = case_flows.respond(cases, CALENDARS, case_id, *CLERK, "已回电", at(1))
    assert responded["status"] == "investigating" and [e["type"] for e in events] == [ev.CASE_FIRST_RESPONDED]
    cases.lose_next_updates = flows.MAX_ATTEMPTS
    with pytest.raises(flows.ConcurrentUpdate):
        case_flows.resolve(cases, CHART, case_id, None, "", *CLERK, at(2))


@pytest.mark.parametrize("channel", ["consumer_association", "media"])
def test_a_referral_is_resolved_by_a_store_manager_or_above_after_the_gm_s_sign_off(channel):
    cases = FakeCases()
    case_id = routed(cases, channel=channel)
    supervisor = staff("sh-xh-sv")
    case_flows.respond(cases, CALENDARS, case_id, *supervisor, "已致电", at(0.5))  # anyone may answer
    case_flows.file_report(cases, case_id, *MANAGER, "书面报告", at(1))
    _, events = case_flows.sign_off_report(cases, case_id, *GM, at(2))
    assert events[0]["payload"]["on_time"] is True and events[0]["type"] == ev.REPORT_SIGNED_OFF
    for principal, scope in (supervisor, CLERK):
        with pytest.raises(case_flows.ActionForbidden, match="consumer-association or media"):
            case_flows.resolve(cases, CHART, case_id, None, "", principal, scope, at(3))
    resolved, events = case_flows.resolve(cases, CHART, case_id, None, "", *MANAGER, at(3))
    assert resolved["status"] == "resolved" and ev.CASE_RESOLVED in [e["type"] for e in events]


@pytest.mark.parametrize("score, status, event", [(2, "reopened", ev.CASE_REOPENED), (3, "closed", ev.CASE_CLOSED)])
def test_a_revisit_reopens_or_closes_only_a_resolved_case_of_its_round(score, status, event):
    cases = FakeCases()
    case_id = routed(cases)
    revisit = {"revisit_id": "r1", "round": 1, "case_id": case_id, "score": score, "reopens_case": score <= 2,
               "comment": "还是疼"}
    assert case_flows.apply_revisit(cases, CASE_RULES, revisit, at(1))[1] == []  # not resolved yet: untouched
    case_flows.record_root_cause(cases, CHART, case_id, *MANAGER, "misunderstanding", [], "", at(1))
    case_flows.resolve(cases, CHART, case_id, None, "", *CLERK, at(2))
    updated, events = case_flows.apply_revisit(cases, CASE_RULES, revisit, at(72))
    assert updated["status"] == status and [e["type"] for e in events] == [event]
    assert updated["timeline"][-1]["actor"] == "revisit:r1"
    assert case_flows.apply_revisit(cases, CASE_RULES, revisit, at(73))[1] == []  # redelivered
    late = dict(revisit, round=0, revisit_id="r0")
    assert case_flows.apply_revisit(cases, CASE_RULES, late, at(74))[1] == []


def test_the_timeline_names_the_principal():
    cases = FakeCases()
    case_id = routed(cases, channel="media")
    case_flows.respond(cases, CALENDARS, case_id, *staff("sh-xh-sv"), "已致电", at(1))
    case_flows.file_report(cases, case_id, *MANAGER, "报告", at(2))
    case_flows.sign_off_report(cases, case_id, *GM, at(3))
    case_flows.resolve(cases, CHART, case_id, None, "", *REGIONAL, at(4))
    case_flows.reopen(cases, CASE_RULES, case_id, MANAGER[0].actor, "顾客来电", "staff", at(5), MANAGER[1])
    actors = {e["action"]: e["actor"] for e in cases.get(case_id)["timeline"]}
    assert actors == {"submitted": "customer", "routed": "system", "ladder_notified": "system",
                      "referral_received": "system", "customer_recognised": "system", "responded": "sh-xh-sv",
                      "report_filed": "sh-xh-mg", "report_signed_off": "gm-001", "resolved": "rm-east",
                      "reopened": "sh-xh-mg"}


def test_new_cases_of_the_same_customer_at_the_store_are_linked_on_both_and_once():
    cases = FakeCases()
    first = routed(cases, member_id="VIP-7")
    assert case_flows.link_duplicates(cases, cases.get(first), at(0)) == []  # nobody to link back to
    elsewhere = routed(cases, phone="+8613800000000")
    event = submitted("hotline", phone="139 1234 5678")  # the same phone, written differently
    second, routed_events = flows.route(cases, CHART, CASE_RULES, event, T0)
    # the new case's side is in its first write, with its case_linked after case_routed
    assert [e["type"] for e in routed_events] == [ev.CASE_ROUTED, ev.CASE_LINKED]
    assert second["related"] == [first] and second["customer_keys"] == ["phone:+8613912345678"]
    assert [e["action"] for e in second["timeline"][-2:]] == ["customer_recognised", "linked"]
    written = case_flows.link_duplicates(cases, cases.get(second["_id"]), at(1))
    assert [(case["_id"], [e["type"] for e in events]) for case, events in written] == [(first, [ev.CASE_LINKED])]
    assert cases.get(second["_id"])["related"] == [first] and cases.get(first)["related"] == [second["_id"]]
    assert "related" not in cases.get(elsewhere)
    assert cases.get(first)["timeline"][-1]["after"] == {"related": [second["_id"]]}
    # redelivered: the insert loses to the stored case, nothing is written again
    assert flows.route(cases, CHART, CASE_RULES, event, at(2))[1] == []
    assert case_flows.link_duplicates(cases, cases.get(second["_id"]), at(2)) == []
    assert cases.get(first)["timeline_count"] == cases.timelines[first][-1]["seq"]
    assert [e["action"] for e in cases.timelines[first]].count("linked") == 1


def test_an_archived_case_of_the_same_customer_is_not_linked():
    cases = FakeCases()
    first = routed(cases, member_id="VIP-8")
    cases.docs[first]["status"] = "archived"
    second = cases.get(routed(cases, member_id="VIP-8"))
    assert "related" not in second and second["timeline"][-1]["duplicates"] == 0
    assert case_flows.link_duplicates(cases, second, at(1)) == []


def test_a_case_routed_before_customer_keys_were_recorded_is_recognised_and_linked_on_both():
    cases = FakeCases()
    first = routed(cases, member_id="VIP-9")
    second = routed(cases, member_id="VIP-9")
    for case_id in (first, second):  # as an earlier routing left them
        for key in ("customer_keys", "related"):
            cases.docs[case_id].pop(key, None)
    cases.docs[first]["customer_keys"] = ["member:VIP-9"]
    written = case_flows.link_duplicates(cases, cases.get(second), at(1))
    assert [e["type"] for _, events in written for e in events] == [ev.CASE_LINKED, ev.CASE_LINKED]
    assert cases.get(second)["customer_keys"] == ["member:VIP-9", "phone:+8613912345678"]
    assert cases.get(second)["related"] == [first] and cases.get(first)["related"] == [second]



def test_a_case_routed_before_customer_keys_were_recorded_links_no_archived_or_vanished_case():
    """The other side is linked first: an archived candidate is no candidate, and one
    gone by the time it is linked is skipped before the new case names it."""
    cases = FakeCases()
    archived, gone = routed(cases, member_id="VIP-10"), routed(cases, member_id="VIP-10")
    second = routed(cases, member_id="VIP-10")
    for case_id in (archived, gone, second):  # as an earlier routing left them
        for key in ("customer_keys", "related"):
            cases.docs[case_id].pop(key, None)
    cases.docs[archived].update(customer_keys=["member:VIP-10"], status="archived")
    cases.docs[gone]["customer_keys"] = ["member:VIP-10"]
    candidates = cases.of_customer(["member:VIP-10"], T0 - timedelta(days=1))
    del cases.docs[gone]
    cases.of_customer = lambda keys, since: candidates  # read before it went
    written = case_flows.link_duplicates(cases, cases.get(second), at(1))
    assert [events for _, events in written] == [[]]  # only the keys and the recognition
    assert "related" not in cases.get(second) and "related" not in cases.get(archived)
    assert cases.get(second)["timeline"][-1]["action"] == "customer_recognised"

# -- random sequences of actions ----------------------------------------------------------

seconds = st.integers(min_value=60, max_value=200_000)
proposals = st.sampled_from([
    {"type": "apology"}, {"type": "voucher", "amount_fen": 20_000},
    {"type": "compensation", "amount_fen": 80_000}, {"type": "refund", "refund_option": "none_continue"},
    {"type": "refund", "refund_option": "partial_continue", "amount_fen": 15_000},
    {"type": "refund", "refund_option": "full_stop", "amount_fen": 398_000}])
people = st.sampled_from([CLERK, MANAGER, REGIONAL, GM])


def _spec(name, seconds, basis):
    duration = timedelta(seconds=seconds)
    return policy.ClockSpec(name, duration, basis, duration / 4)


def drawn_policies(first_response, update, resolution):
    """Stored policies with drawn durations (warning at three quarters of each), for
    routine cases and for referrals (whose written report is owed in the first-response time)."""
    common = (_spec(ClockName.FIRST_RESPONSE, first_response, ClockBasis.WALL),
              _spec(ClockName.UPDATE, update, ClockBasis.BUSINESS),
              _spec(ClockName.RESOLUTION, resolution, ClockBasis.WALL))
    referral = policy.Conditions(channels=frozenset(Channel(c) for c in REFERRAL_CHANNELS))
    return (policy.validate(policy.SlaPolicy("drawn", 1, "Drawn", policy.Conditions(), common)),
            policy.validate(policy.SlaPolicy("drawn-referral", 1, "Drawn referral", referral,
                                             common + (_spec(ClockName.REPORT, first_response, ClockBasis.WALL),))))


class CaseMachine(RuleBasedStateMachine):
    """One case under random staff actions, revisits, deadline checks and passing time,
    through the flows and the in-memory repository (a timeline cap of 12), with drawn
    clock durations and acknowledgement timeouts."""

    @initialize(channel=st.sampled_from(("hotline", "media")), fr=seconds, update=seconds, res=seconds,
                ack=seconds)
    def route(self, channel, fr, update, res, ack):
        self.rules = rules(drawn_policies(fr, update, res), open_counts={"sh-xh-rv": 1},
                           timeouts={level: timedelta(seconds=ack) for level in ladder.ACK_TIMEOUT_KEYS})
        self.cases = FakeCases(timeline_kept=12)
        self.case_id = routed(self.cases, channel, self.rules)
        self.now = T0
        self.actions = self.case["timeline_count"]  # submitted, routed, the ladder's notes (a referral's)

    @property
    def case(self):
        return self.cases.get(self.case_id)

    def attempt(self, flow, *args):
        before = self.case
        try:
            flow(*args)
        except ActionRefused as refused:
            assert self.case == before  # a refusal changes nothing
            if refused.code == "invalid_transition":
                assert refused.allowed == lifecycle.allowed_actions(before["status"])
            return
        except case_flows.ActionForbidden:
            return
        self.actions += len(self.cases.timelines[self.case_id]) - before["timeline_count"]

    @rule(delta=seconds)
    def time_passes(self, delta):
        self.now += timedelta(seconds=delta)

    @rule(who=people)
    def acknowledge(self, who):
        self.attempt(case_flows.acknowledge, self.cases, CHART, self.case_id, *who, self.now)

    @rule(who=people)
    def respond(self, who):
        self.attempt(case_flows.respond, self.cases, self.rules.calendar_of, self.case_id, *who, "回复", self.now)

    @rule()
    def request_info(self):
        self.attempt(case_flows.request_info, self.cases, self.case_id, *CLERK, "请补充", self.now)

    @rule()
    def resume(self):
        self.attempt(case_flows.resume, self.cases, self.rules.calendar_of, self.case_id, *CLERK, "已补充", self.now)

    @rule(who=people, proposal=proposals)
    def propose(self, who, proposal):
        self.attempt(case_flows.propose_remedy, self.cases, CHART, RULES, self.case_id, *who, proposal, self.now)

    @rule(who=people, approve=st.booleans())
    def decide(self, who, approve):
        pending = [r for r in self.case.get("remedies") or () if r["status"] == "pending_approval"]
        remedy_id = pending[0]["remedy_id"] if pending else "none"
        self.attempt(case_flows.decide_remedy, self.cases, RULES, self.case_id, remedy_id, approve, "", *who,
                     self.now)

    @rule()
    def file_and_sign_off_report(self):
        self.attempt(case_flows.file_report, self.cases, self.case_id, *MANAGER, "书面报告", self.now)
        self.attempt(case_flows.sign_off_report, self.cases, self.case_id, *GM, self.now)

    @rule(who=people)
    def resolve(self, who):
        self.attempt(case_flows.resolve, self.cases, CHART, self.case_id, None, "", *who, self.now)

    @rule(cause=st.sampled_from(("misunderstanding", "service_not_in_place")))
    def root_cause(self, cause):
        self.attempt(case_flows.record_root_cause, self.cases, CHART, self.case_id, *MANAGER, cause,
                     IMPROVEMENT, "", self.now)

    @rule()
    def close(self):
        self.attempt(case_flows.close, self.cases, self.case_id, "sh-xh-mg", self.now)

    @rule(score=st.integers(1, 5))
    def revisit(self, score):
        case = self.case
        self.attempt(case_flows.apply_revisit, self.cases, self.rules, {
            "case_id": self.case_id, "round": case["resolution_round"], "revisit_id": uuid.uuid4().hex,
            "score": score, "reopens_case": score <= 2}, self.now)

    @rule()
    def reopen(self):
        self.attempt(case_flows.reopen, self.cases, self.rules, self.case_id, "sh-xh-mg", "不满意",
                     "staff", self.now)

    @rule()
    def archive(self):
        self.attempt(case_flows.archive, self.cases, self.case_id, *MANAGER, self.now)

    @precondition(lambda self: self.case["next_check_at"] is not None and self.case["next_check_at"] <= self.now)
    @rule()
    def deadline_check(self):
        before = self.case
        [(case, events)] = deadline_flows.check_case(self.cases, CHART, self.rules, self.case_id, self.now)
        # a paused clock breaches only if it was overdue before the pause began
        for event in events:
            if event["type"] == ev.CASE_DEADLINE_BREACHED:
                clock = before["clocks"][event["payload"]["clock"]]
                assert clock["paused_at"] is None or clock["due_at"] <= clock["paused_at"]
        assert case["rung"] >= before["rung"]  # the ladder is only ever climbed
        self.actions += case["timeline_count"] - before["timeline_count"]

    @invariant()
    def finished_cases_have_no_running_clocks(self):
        case = self.case
        if case["status"] in ("closed", "archived", "resolved"):
            assert not any(c.running for c in clocks.from_doc(case["clocks"]).values())
            assert case["next_check_at"] is None

    @invariant()
    def waiting_on_the_customer_pauses_exactly_the_customer_clocks(self):
        case = self.case
        paused = {n for n, c in case["clocks"].items() if c.get("paused_at")}
        if case["status"] == "pending_customer":
            assert paused == {n for n, c in case["clocks"].items() if c["met_at"] is None and n != "report"}
        else:
            assert not paused

    @invariant()
    def resolved_means_an_approved_remedy_or_an_apology(self):
        case = self.case
        if case["status"] in ("resolved", "closed", "archived") and not case.get("merged_into") and case.get("remedy"):
            remedy = case["remedy"]
            if remedy["remedy_id"] is None:
                assert remedy["type"] == "apology"
            else:
                ledger = {r["remedy_id"]: r for r in case["remedies"]}
                assert ledger[remedy["remedy_id"]]["status"] == RemedyStatus.APPROVED.value

    @invariant()
    def closed_cases_have_a_root_cause_unless_merged(self):
        case = self.case
        if case["status"] in ("closed", "archived"):
            assert case.get("root_cause") or case.get("merged_into")

    @invariant()
    def timeline_is_bounded_and_complete(self):
        case = self.case
        assert len(case["timeline"]) <= 12
        assert case["timeline_count"] == len(self.cases.timelines[self.case_id]) == self.actions
        assert case["timeline"] == self.cases.timelines[self.case_id][-12:]


CaseMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestCaseMachine = CaseMachine.TestCase
