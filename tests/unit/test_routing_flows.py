"""services/routing/flows.py with an in-memory repository (no broker, no Mongo)."""
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from closeloop_shared import events as ev
from closeloop_shared import org
from services.routing import flows
from services.routing.sla import Policy
from tests.unit.fakes import FakeCases

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
POLICY = Policy(first_response=timedelta(hours=24), resolution=timedelta(hours=48),
                report=timedelta(hours=8), escalation_step=timedelta(hours=4))


def submitted(store="SH-XH-001", channel="hotline", content="预约时间被改了也没人通知"):
    return ev.load(ev.CASE_SUBMITTED, ev.dump(ev.CASE_SUBMITTED, {
        "case_id": uuid.uuid4().hex, "case_number": "CL-20261124-000001", "store_id": store,
        "store_name": "店", "channel": channel, "customer": {"name": "陈女士", "phone": "+8613912345678"},
        "content": content, "occurred_at": T0, "submitted_at": T0}))


def kinds(events):
    return [e["type"] for e in events]


def test_route_assigns_store_staff_and_is_idempotent():
    cases, event = FakeCases(), submitted()
    case, events = flows.route(cases, CHART, POLICY, event, T0)
    assert kinds(events) == [ev.CASE_ROUTED]
    assert case["assignee"]["staff_id"] == "sh-xh-s1" and case["next_check_at"] == T0 + timedelta(hours=24)
    again, events = flows.route(cases, CHART, POLICY, event, T0 + timedelta(seconds=5))
    assert events == [] and again["routed_at"] == T0


def test_referral_is_routed_to_the_manager_then_escalated_at_once():
    case, events = flows.route(FakeCases(), CHART, POLICY, submitted(channel="media"), T0)
    assert kinds(events) == [ev.CASE_ROUTED, ev.CASE_ESCALATED]
    assert events[0]["payload"]["assignee"]["role"] == "store_manager"
    assert case["assignee"]["role"] == "regional_manager" and "report" in case["clocks"]
    assert case["next_check_at"] == T0 + timedelta(hours=8)  # the report clock comes first


def test_deadline_check_escalates_once_per_breach_and_step():
    cases = FakeCases()
    case, _ = flows.route(cases, CHART, POLICY, submitted(), T0)
    assert flows.check_deadlines(cases, CHART, POLICY, T0 + timedelta(hours=23)) == []
    breach = T0 + timedelta(hours=24, minutes=1)
    [(updated, decision, events)] = flows.check_deadlines(cases, CHART, POLICY, breach)
    assert decision.newly_breached == ("first_response",) and kinds(events) == [ev.CASE_ESCALATED]
    assert updated["assignee"]["role"] == "supervisor"
    assert flows.check_deadlines(cases, CHART, POLICY, breach) == []  # nothing new at the same moment
    [(updated, _, _)] = flows.check_deadlines(cases, CHART, POLICY, breach + timedelta(hours=4))
    assert updated["rung"] == 2


def test_a_broken_case_does_not_stall_the_others():
    cases = FakeCases()
    broken, _ = flows.route(cases, CHART, POLICY, submitted(), T0)
    cases.docs[broken["_id"]]["store_id"] = "CLOSED-STORE"  # its store left the org chart
    healthy, _ = flows.route(cases, CHART, POLICY, submitted(), T0 + timedelta(minutes=1))
    won = flows.check_deadlines(cases, CHART, POLICY, T0 + timedelta(hours=30))
    assert [case["_id"] for case, _, _ in won] == [healthy["_id"]]


def test_actions_retry_a_lost_race_and_give_up_after_max_attempts():
    cases = FakeCases()
    case, _ = flows.route(cases, CHART, POLICY, submitted(), T0)
    cases.lose_next_updates = 2
    responded, events = flows.respond(cases, POLICY, case["_id"], "sh-xh-s1", "已回电", T0 + timedelta(hours=1))
    assert responded["status"] == "in_progress" and kinds(events) == [ev.CASE_FIRST_RESPONDED]
    cases.lose_next_updates = flows.MAX_ATTEMPTS
    with pytest.raises(flows.ConcurrentUpdate):
        flows.resolve(cases, CHART, POLICY, case["_id"], {"type": "apology"}, "x", "", T0)
    with pytest.raises(flows.CaseNotFound):
        flows.respond(cases, POLICY, "nope", "x", "y", T0)


def test_resolving_an_unanswered_case_also_records_its_first_response():
    cases = FakeCases()
    case, _ = flows.route(cases, CHART, POLICY, submitted(), T0)
    resolved, events = flows.resolve(cases, CHART, POLICY, case["_id"], {"type": "apology"}, "sh-xh-s1",
                                     "当面致歉", T0 + timedelta(hours=2))
    assert kinds(events) == [ev.CASE_FIRST_RESPONDED, ev.CASE_RESOLVED]
    assert events[1]["payload"]["revisit_owner"]["staff_id"] == "sh-xh-rv"
    assert resolved["next_check_at"] is None


@pytest.mark.parametrize("score, status, event", [(2, "reopened", ev.CASE_REOPENED), (3, "closed", ev.CASE_CLOSED)])
def test_a_revisit_reopens_or_closes_only_a_resolved_case(score, status, event):
    cases = FakeCases()
    case, _ = flows.route(cases, CHART, POLICY, submitted(), T0)
    revisit = {"revisit_id": "r1", "round": 1, "case_id": case["_id"], "score": score, "reopens_case": score <= 2,
               "comment": "还是疼"}
    assert flows.apply_revisit(cases, POLICY, revisit, T0)[1] == []  # not resolved yet: untouched
    flows.resolve(cases, CHART, POLICY, case["_id"], {"type": "apology"}, "a", "", T0 + timedelta(hours=1))
    updated, events = flows.apply_revisit(cases, POLICY, revisit, T0 + timedelta(days=3))
    assert updated["status"] == status and kinds(events) == [event]
    assert flows.apply_revisit(cases, POLICY, revisit, T0 + timedelta(days=3))[1] == []  # redelivered


def test_a_late_revisit_of_an_earlier_round_changes_nothing():
    cases = FakeCases()
    case, _ = flows.route(cases, CHART, POLICY, submitted(), T0)
    flows.resolve(cases, CHART, POLICY, case["_id"], {"type": "apology"}, "a", "", T0 + timedelta(hours=1))
    flows.reopen(cases, POLICY, case["_id"], "sh-xh-mg", "顾客来电", "staff", T0 + timedelta(hours=2))
    flows.resolve(cases, CHART, POLICY, case["_id"], {"type": "apology"}, "a", "", T0 + timedelta(hours=3))
    round_one = {"revisit_id": "r1", "round": 1, "case_id": case["_id"], "score": 1, "reopens_case": True}
    assert flows.apply_revisit(cases, POLICY, round_one, T0 + timedelta(days=3))[1] == []
    assert cases.get(case["_id"])["status"] == "resolved"
