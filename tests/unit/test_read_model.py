"""services/reporting/read_model.py: how each event changes a case's row.

read_model.apply does to a dict what FactsRepository.apply does to the Mongo document
(tests/integration check the Mongo side): $set the fields, $max the maxima, $addToSet
the revisit, and move guarded fields (status, resolution round) only forward."""
import itertools
from datetime import datetime, timedelta, timezone

import pytest

from closeloop_shared import events as ev
from closeloop_shared.contract import CaseStatus
from services.reporting import read_model
from services.reporting.read_model import project

T = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
STAFF = {"staff_id": "sh-xh-mg", "name": "张丽", "role": "store_manager", "email": None}
CUSTOMER = {"name": "刘女士", "phone": "+8613812345678", "email": None, "member_id": None}


def at(hours):
    return T + timedelta(hours=hours)


def loaded(event_type, data):
    if "case_number" in ev.SCHEMAS[event_type].fields:
        data.setdefault("case_number", "CL-20261123-000001")
    return ev.load(event_type, ev.dump(event_type, data))


def submitted(when=T):
    return loaded(ev.CASE_SUBMITTED, {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "store_name": "上海徐汇店", "channel": "wechat", "customer": CUSTOMER,
        "content": "等了一个小时", "occurred_at": when, "submitted_at": when})


def routed(when=T, severity="high", report_due=None):
    return loaded(ev.CASE_ROUTED, {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "category": "booking", "severity": severity, "assignee": STAFF, "rung": 2,
        "deadlines": {"first_response_due": when + timedelta(hours=24),
                      "resolution_due": when + timedelta(hours=48), "report_due": report_due},
        "routed_at": when})


def escalated(rung, when):
    return loaded(ev.CASE_ESCALATED, {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "severity": "high", "reason": "first_response", "rung": rung,
        "previous_assignee": STAFF, "assignee": STAFF, "escalated_at": when})


def responded(when, on_time=True):
    return loaded(ev.CASE_FIRST_RESPONDED, {
        "case_id": "c1", "store_id": "SH-XH-001", "responded_at": when, "on_time": on_time,
        "seconds_to_respond": (when - T).total_seconds()})


def resolved(when, on_time=True, round_=1, remedy=None):
    return loaded(ev.CASE_RESOLVED, {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "category": "booking",
        "remedy": remedy or {"type": "refund", "refund_option": "full_stop", "amount_fen": 39_800},
        "resolved_at": when, "on_time": on_time, "resolution_round": round_,
        "customer": CUSTOMER, "revisit_owner": STAFF})


def reopened(when):
    return loaded(ev.CASE_REOPENED, {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "reason": "revisit score 1", "source": "revisit", "reopened_at": when,
        "resolution_due": when + timedelta(hours=48)})


def closed(when):
    return loaded(ev.CASE_CLOSED, {"case_id": "c1", "store_id": "SH-XH-001", "closed_at": when})


def revisit(revisit_id, score, when):
    return loaded(ev.REVISIT_RECORDED, {
        "revisit_id": revisit_id, "round": 1, "case_id": "c1", "store_id": "SH-XH-001", "score": score,
        "satisfied": score >= 4, "reopens_case": score <= 2, "recorded_at": when})


def apply(row, event_type, data):
    return read_model.apply(row, project(event_type, data))


def replay(events):
    row = {}
    for event_type, data in events:
        row = apply(row, event_type, data)
    return row


# -- one event at a time ---------------------------------------------------------------

def one(event_type, data):
    row = apply({}, event_type, data)
    row.pop("status_order", None)  # the ordering key is checked by the tie tests below
    return row


@pytest.mark.parametrize("first", [0, 1])
def test_same_moment_events_settle_by_lifecycle_order(first):
    """Resolving an unanswered case stamps case_first_responded and case_resolved
    with one moment; whichever arrives last, the case is resolved."""
    pair = [(ev.CASE_FIRST_RESPONDED, responded(at(5))), (ev.CASE_RESOLVED, resolved(at(5)))]
    row = replay([pair[first], pair[1 - first]])
    assert row["status"] == "resolved"


def test_case_submitted():
    assert one(ev.CASE_SUBMITTED, submitted()) == {
        "case_number": "CL-20261123-000001", "store_id": "SH-XH-001", "channel": "wechat",
        "submitted_at": T, "status": "new", "status_at": T,
        # who the customer is, as a digest only (repeat problems), never the phone itself
        "customer_key": read_model.customer_key(CUSTOMER)}
    assert CUSTOMER["phone"] not in str(one(ev.CASE_SUBMITTED, submitted()))


def test_case_routed():
    assert one(ev.CASE_ROUTED, routed(at(0.01))) == {
        "category": "booking", "severity": "high", "store_id": "SH-XH-001",
        "first_response_due": at(24.01), "resolution_due": at(48.01), "report_due": None,
        "resolution_due_set_at": at(0.01), "status": "assigned", "status_at": at(0.01),
        "handler_id": "sh-xh-mg", "handler_at": at(0.01)}


def test_case_first_responded():
    assert one(ev.CASE_FIRST_RESPONDED, responded(at(3), on_time=False)) == {
        "first_responded_at": at(3), "first_response_on_time": False,
        "status": "investigating", "status_at": at(3)}


def test_case_resolved():
    assert one(ev.CASE_RESOLVED, resolved(at(20))) == {
        "resolved_at": at(20), "resolution_on_time": True, "remedy_type": "refund",
        "refund_option": "full_stop", "category": "booking", "resolution_round": 1,
        "remedy_amount_fen": 39_800, "status": "resolved", "status_at": at(20),
        "handler_id": "sh-xh-mg", "handler_at": at(20)}


def test_case_resolved_with_an_apology_has_no_refund_option():
    row = one(ev.CASE_RESOLVED, resolved(at(20), remedy={"type": "apology"}))
    assert (row["remedy_type"], row["refund_option"]) == ("apology", None)


def test_case_reopened():
    assert one(ev.CASE_REOPENED, reopened(at(90))) == {
        "reopened": True, "last_reopened_at": at(90), "status": "reopened", "status_at": at(90),
        "resolution_due": at(138), "resolution_due_set_at": at(90)}


def test_case_closed():
    assert one(ev.CASE_CLOSED, closed(at(100))) == {"status": "closed", "status_at": at(100)}


def test_case_escalated():
    assert one(ev.CASE_ESCALATED, escalated(3, at(28))) == {
        "escalated": True, "top_rung": 3, "handler_id": "sh-xh-mg", "handler_at": at(28)}


def breached(clock, due, rung=2):
    return loaded(ev.CASE_DEADLINE_BREACHED, {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "severity": "high", "category": "booking", "clock": clock, "basis": "wall",
        "policy_id": "default", "policy_version": 1, "due_at": due, "breached_at": due,
        "rung": rung, "assignee": STAFF})


def signed_off(on_time):
    return loaded(ev.REPORT_SIGNED_OFF, {
        "event_id": "e9", "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "actor": "gm", "at": at(7), "on_time": on_time})


def test_case_deadline_breached_counts_once_per_clock_and_deadline():
    row = replay([(ev.CASE_DEADLINE_BREACHED, breached("first_response", at(24))),
                  (ev.CASE_DEADLINE_BREACHED, breached("first_response", at(24))),
                  (ev.CASE_DEADLINE_BREACHED, breached("resolution", at(48), rung=3))])
    assert row == {"breaches": [{"clock": "first_response", "rung": 2, "due_at": at(24)},
                                {"clock": "resolution", "rung": 3, "due_at": at(48)}]}


def test_report_signed_off():
    assert one(ev.REPORT_SIGNED_OFF, signed_off(False)) == {"report_on_time": False}


def test_the_handler_is_the_latest_assignee_whatever_the_order():
    other = dict(STAFF, staff_id="sh-rm")
    late_escalation = loaded(ev.CASE_ESCALATED, {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "severity": "high", "reason": "first_response", "rung": 3, "assignee": other, "escalated_at": at(30)})
    events = [(ev.CASE_ESCALATED, late_escalation), (ev.CASE_ROUTED, routed(at(0.01)))]
    assert replay(events)["handler_id"] == replay(events[::-1])["handler_id"] == "sh-rm"


def test_revisit_recorded():
    assert one(ev.REVISIT_RECORDED, revisit("r1", 5, at(100))) == {
        "revisits": [{"revisit_id": "r1", "score": 5, "satisfied": True}]}


def test_a_reopening_re_arms_the_resolution_due_even_if_routed_arrives_late():
    row = replay([(ev.CASE_REOPENED, reopened(at(90))), (ev.CASE_ROUTED, routed(at(0.01)))])
    assert row["resolution_due"] == at(138)


IDENTITY_EVENTS = {ev.ORG_CHANGED, ev.INTEGRATION_CHANGED}


def reporting_subscribes_to():
    return {event_type for event_type, consumers in ev.SUBSCRIPTIONS.items()
            if any(service == "reporting" for service, _ in consumers)}


def test_every_case_event_reporting_receives_is_projected():
    samples = {ev.CASE_SUBMITTED: submitted(), ev.CASE_ROUTED: routed(),
               ev.CASE_ESCALATED: escalated(3, T), ev.CASE_FIRST_RESPONDED: responded(T),
               ev.CASE_RESOLVED: resolved(T), ev.CASE_REOPENED: reopened(T),
               ev.CASE_CLOSED: closed(T), ev.REVISIT_RECORDED: revisit("r1", 3, T),
               ev.CASE_DEADLINE_BREACHED: breached("first_response", T),
               ev.REPORT_SIGNED_OFF: signed_off(True),
               ev.CASE_RECLASSIFIED: loaded(ev.CASE_RECLASSIFIED, {
                   "event_id": "e1", "correction_id": "c1:3", "case_id": "c1", "store_id": "SH-XH-001",
                   "previous_category": "equipment", "category": "booking", "by_role": "supervisor",
                   "reclassified_at": T})}
    # The case facts: every event reporting subscribes to, but org_changed and
    # integration_changed, which keep its copies of the organisation and the
    # integrations (for scopes and credentials) and are no facts about a case.
    # The programme's revisits are no case: they go straight into the buckets
    # (facts.programme_contribution, tests/unit/test_report_facts.py).
    assert set(samples) == reporting_subscribes_to() - IDENTITY_EVENTS - {ev.REVISIT_TASK_COMPLETED}
    for event_type, data in samples.items():
        row = one(event_type, data)
        assert row, event_type
        assert row.get("status", "closed") in {s.value for s in CaseStatus}


@pytest.mark.parametrize("event_type", [ev.FOLLOWUP_DUE, ev.CASE_REASSIGNED, ev.ORG_CHANGED,
                                        ev.INTEGRATION_CHANGED])
def test_events_that_are_no_case_facts_are_not_projected(event_type):
    """A handover changes who works on a case, not a KPI; followup_due is notify's; the
    organisation and the integrations are no case facts."""
    assert event_type in ev.SCHEMAS
    assert (event_type in reporting_subscribes_to()) == (event_type in IDENTITY_EVENTS)
    with pytest.raises(KeyError):
        project(event_type, {})


def test_unknown_event_type_raises():
    with pytest.raises(KeyError):
        project("case_archived", {})


# -- a case's history ------------------------------------------------------------------

HISTORY = [
    (ev.CASE_SUBMITTED, submitted()),
    (ev.CASE_ROUTED, routed(at(0.01))),
    (ev.CASE_FIRST_RESPONDED, responded(at(2))),
    (ev.CASE_RESOLVED, resolved(at(20))),
    (ev.REVISIT_RECORDED, revisit("r1", 5, at(92))),
    (ev.CASE_CLOSED, closed(at(92))),
]


def test_a_full_history_in_order():
    row = replay(HISTORY)
    assert row["status"] == "closed"
    assert row["status_at"] == at(92)
    assert row["first_response_on_time"] is True
    assert row["resolution_on_time"] is True
    assert row["revisits"] == [{"revisit_id": "r1", "score": 5, "satisfied": True}]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(HISTORY))))[::37])
def test_a_one_round_history_in_any_order_gives_the_same_row(order):
    assert replay([HISTORY[i] for i in order]) == replay(HISTORY)


def test_redelivered_events_change_nothing():
    assert replay(HISTORY + HISTORY[::-1]) == replay(HISTORY)


def test_status_never_moves_back_in_time():
    row = replay(HISTORY + [(ev.CASE_RESOLVED, resolved(at(20)))])
    assert row["status"] == "closed"


def test_a_late_escalation_does_not_lower_the_top_rung():
    row = replay([(ev.CASE_ESCALATED, escalated(3, at(28))),
                  (ev.CASE_ESCALATED, escalated(2, at(24)))])
    assert row["top_rung"] == 3


def test_a_late_first_resolution_does_not_replace_the_second():
    row = replay([(ev.CASE_RESOLVED, resolved(at(60), on_time=True, round_=2)),
                  (ev.CASE_REOPENED, reopened(at(50))),
                  (ev.CASE_RESOLVED, resolved(at(20), on_time=False, round_=1))])
    assert row["status"] == "resolved"
    assert row["resolved_at"] == at(60)
    assert row["resolution_on_time"] is True


def test_revisits_accumulate_once_each():
    row = replay([(ev.REVISIT_RECORDED, revisit("r1", 1, at(80))),
                  (ev.REVISIT_RECORDED, revisit("r2", 5, at(150))),
                  (ev.REVISIT_RECORDED, revisit("r1", 1, at(80)))])
    assert [v["revisit_id"] for v in row["revisits"]] == ["r1", "r2"]


def test_the_handler_is_whoever_resolved_the_case_not_the_revisit_owner():
    data = dict(resolved(at(20)), resolved_by="sh-xh-staff")
    assert one(ev.CASE_RESOLVED, data)["handler_id"] == "sh-xh-staff"
