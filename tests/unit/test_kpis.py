"""services/reporting/kpis.py: GET /v1/reports/summary's figures, from the pre-aggregated
buckets the cases' rows add up to (facts.contribution), as the service reads them."""
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared import events as ev
from services.reporting import read_model
from services.reporting.kpis import SATISFACTION_TARGET
from services.reporting.read_model import project
from tests.unit.report_buckets import summarize

T = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
NOW = T + timedelta(days=5)


def at(hours):
    return T + timedelta(hours=hours)


def breached(clock):
    return {"clock": clock, "rung": 1, "due_at": at(24 if clock == "first_response" else 48)}


def row(**fields):
    base = {"case_id": "c", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
            "channel": "wechat", "submitted_at": T, "status": "assigned", "category": "booking",
            "severity": "low", "first_response_due": at(24), "resolution_due": at(48)}
    base.update(fields)
    return base


def test_nothing_to_count():
    summary = summarize([])
    assert summary["cases"] == 0
    assert summary["open"] == 0
    assert summary["by_category"] == summary["by_status"] == summary["by_channel"] == {}
    assert summary["first_response"] == {"counted": 0, "on_time": 0, "late_or_overdue": 0,
                                         "rate": None}
    assert summary["resolution"]["rate"] is None
    assert summary["satisfaction"] == {"revisits": 0, "satisfied": 0, "rate": None,
                                       "target": SATISFACTION_TARGET}
    assert summary["reopened"] == {"cases": 0, "rate": None}


def test_cases_of_two_days_sum_across_their_buckets():
    assert summarize([row(), row(submitted_at=T + timedelta(days=1))])["cases"] == 2


def test_first_response_rate_counts_overdue_unanswered_cases_as_late():
    rows = [
        row(first_responded_at=at(2), first_response_on_time=True),
        row(first_responded_at=at(30), first_response_on_time=False),
        row(breaches=[breached("first_response")]),   # unanswered, its clock ran out: overdue
        row(first_response_due=NOW + timedelta(hours=1)),  # unanswered, not yet due: not counted
    ]
    assert summarize(rows)["first_response"] == {
        "counted": 3, "on_time": 1, "late_or_overdue": 2, "rate": 0.3333}


def test_an_unanswered_case_counts_once_its_clock_breached_not_before():
    # routing announces the breach within a second of the deadline (case_deadline_breached)
    assert summarize([row(first_response_due=at(1))])["first_response"]["counted"] == 0
    assert summarize([row(breaches=[breached("first_response")])])["first_response"] == {
        "counted": 1, "on_time": 0, "late_or_overdue": 1, "rate": 0.0}


def test_a_row_without_deadline_yet_is_not_counted():
    # case_routed not yet projected: nothing is known about its deadlines.
    assert summarize([row(first_response_due=None, resolution_due=None)])["first_response"]["counted"] == 0


def test_a_paused_clock_met_within_its_moved_deadline_counts_on_time():
    # routing moved the deadline while the case waited for the customer; the event says on time
    paused = row(first_response_due=at(40), first_responded_at=at(30), first_response_on_time=True)
    assert summarize([paused])["first_response"] == {"counted": 1, "on_time": 1, "late_or_overdue": 0, "rate": 1.0}


def test_resolution_rate():
    rows = [
        row(status="resolved", resolved_at=at(20), resolution_on_time=True),
        row(status="closed", resolved_at=at(40), resolution_on_time=True),
        row(status="resolved", resolved_at=at(60), resolution_on_time=False),
        row(status="investigating", breaches=[breached("resolution")]),  # overdue
        row(status="investigating"),                     # not yet due: not counted
    ]
    assert summarize(rows)["resolution"] == {
        "counted": 4, "on_time": 2, "late_or_overdue": 2, "rate": 0.5}


def test_satisfaction_rate_is_satisfied_over_revisits():
    rows = [
        row(status="closed", revisits=[{"revisit_id": "r1", "score": 5, "satisfied": True}]),
        row(status="closed", revisits=[{"revisit_id": "r2", "score": 4, "satisfied": True}]),
        row(status="resolved", revisits=[
            {"revisit_id": "r3", "score": 1, "satisfied": False},
            {"revisit_id": "r4", "score": 3, "satisfied": False}]),
        row(status="assigned"),
    ]
    assert summarize(rows)["satisfaction"] == {
        "revisits": 4, "satisfied": 2, "rate": 0.5, "target": 0.95}


def test_reopened_rate_is_over_cases_ever_resolved():
    rows = [
        row(status="reopened", resolved_at=at(20), reopened=True),
        row(status="closed", resolved_at=at(20)),
        row(status="resolved", resolved_at=at(20)),
        row(status="closed", resolved_at=at(20)),
        row(status="assigned"),                                     # never resolved
    ]
    assert summarize(rows)["reopened"] == {"cases": 1, "rate": 0.25}


def test_counts_by_category_status_and_channel():
    rows = [
        row(category="hygiene", status="assigned", channel="hotline"),
        row(category="hygiene", status="closed", channel="web"),
        row(category="price", status="resolved", channel="web"),
        row(category=None, status="reopened", channel="media"),
        {"case_id": "x", "submitted_at": T, "store_id": "SH-XH-001"},  # no status/category/channel yet
    ]
    summary = summarize(rows)
    assert summary["cases"] == 5
    assert summary["by_category"] == {"hygiene": 2, "price": 1, "unclassified": 2}
    assert summary["by_status"] == {"assigned": 1, "closed": 1, "resolved": 1, "reopened": 1,
                                    "new": 1}
    assert summary["by_channel"] == {"hotline": 1, "web": 2, "media": 1, "unknown": 1}
    assert summary["open"] == 3  # assigned, reopened, new


def test_root_causes_and_what_remedies_cost():
    rows = [row(status="closed", root_cause="poor_communication", resolved_at=at(9), remedy_type="compensation",
                remedy_amount_fen=30_000),
            row(status="closed", root_cause="poor_communication", resolved_at=at(9), remedy_type="apology",
                remedy_amount_fen=0),
            row(status="resolved", root_cause="expectation_gap", resolved_at=at(9), refund_option="full_stop",
                remedy_type="refund", remedy_amount_fen=98_000),
            row(status="assigned")]
    summary = summarize(rows)
    assert summary["by_root_cause"] == {"poor_communication": 2, "expectation_gap": 1}
    assert summary["remedies_fen"] == 128_000 and isinstance(summary["remedies_fen"], int)


def test_escalated_count():
    rows = [row(escalated=True, top_rung=3), row(escalated=True), row()]
    assert summarize(rows)["escalated"] == 2


@given(st.lists(st.fixed_dictionaries({
    "first_responded_at": st.none() | st.just(at(1)),
    "first_response_on_time": st.booleans(),
    "breaches": st.lists(st.just(breached("first_response")), max_size=1),
    "status": st.sampled_from(["new", "assigned", "investigating", "resolved", "reopened",
                               "closed"]),
    "revisits": st.lists(st.fixed_dictionaries({"revisit_id": st.just("r"), "satisfied": st.booleans()}),
                         max_size=3),
}), max_size=30))
def test_rates_are_consistent(rows):
    summary = summarize([row(**r) for r in rows])
    first = summary["first_response"]
    assert first["on_time"] + first["late_or_overdue"] == first["counted"] <= len(rows)
    assert (first["rate"] is None) == (first["counted"] == 0)
    if first["rate"] is not None:
        assert 0 <= first["rate"] <= 1
        assert abs(first["rate"] - first["on_time"] / first["counted"]) < 1e-4
    satisfaction = summary["satisfaction"]
    assert satisfaction["revisits"] == sum(len(r["revisits"]) for r in rows)
    assert (satisfaction["rate"] is None) == (satisfaction["revisits"] == 0)
    assert sum(summary["by_status"].values()) == summary["cases"] == len(rows)
    assert summary["open"] == sum(1 for r in rows if r["status"] not in ("resolved", "closed"))


# -- over projected events --------------------------------------------------------------

def _project_all(events):
    row = {}
    for event_type, data in events:
        row = read_model.apply(row, project(event_type, data))
    return row


def _event(event_type, data):
    if "case_number" in ev.SCHEMAS[event_type].fields:
        data.setdefault("case_number", "CL-20261123-000001")
    return event_type, ev.load(event_type, ev.dump(event_type, data))


STAFF = {"staff_id": "m", "name": "张丽", "role": "store_manager", "email": None}
CUSTOMER = {"name": "刘女士", "phone": None, "email": None, "member_id": None}
RESOLVED_ON_TIME_THEN_REOPENED = [
    _event(ev.CASE_SUBMITTED, {
        "case_id": "c1", "store_id": "S", "store_name": "店", "channel": "web",
        "customer": CUSTOMER, "content": "过敏", "occurred_at": T, "submitted_at": T}),
    _event(ev.CASE_ROUTED, {
        "case_id": "c1", "store_id": "S", "category": "product_efficacy", "severity": "high",
        "assignee": STAFF, "rung": 2, "routed_at": T,
        "deadlines": {"first_response_due": at(24), "resolution_due": at(48)}}),
    _event(ev.CASE_FIRST_RESPONDED, {
        "case_id": "c1", "store_id": "S", "responded_at": at(1), "on_time": True,
        "seconds_to_respond": 3600.0}),
    _event(ev.CASE_RESOLVED, {
        "case_id": "c1", "store_id": "S", "category": "product_efficacy",
        "remedy": {"type": "apology"}, "resolved_at": at(10), "on_time": True,
        "resolution_round": 1, "customer": CUSTOMER, "revisit_owner": STAFF}),
    _event(ev.REVISIT_RECORDED, {
        "revisit_id": "r1", "round": 1, "case_id": "c1", "store_id": "S", "score": 1, "satisfied": False,
        "reopens_case": True, "recorded_at": at(82)}),
    _event(ev.CASE_REOPENED, {
        "case_id": "c1", "store_id": "S", "reason": "revisit score 1", "source": "revisit",
        "reopened_at": at(82)}),
]


def test_a_reopened_case_is_open_and_counts_as_reopened():
    summary = summarize([_project_all(RESOLVED_ON_TIME_THEN_REOPENED)])
    assert summary["open"] == 1
    assert summary["by_status"] == {"reopened": 1}
    assert summary["reopened"] == {"cases": 1, "rate": 1.0}
    assert summary["satisfaction"]["rate"] == 0.0
    assert summary["first_response"]["rate"] == 1.0


def test_a_reopened_case_no_longer_counts_as_resolved_on_time():
    summary = summarize([_project_all(RESOLVED_ON_TIME_THEN_REOPENED)])
    assert summary["resolution"]["on_time"] == 0
