"""How often staff corrected each category, per model version (issue 8): routing's
case_reclassified into reporting's read model (services/reporting/read_model.py) and
the summary's `corrections` section (services/reporting/kpis.py)."""
import itertools
from datetime import datetime, timedelta, timezone

from closeloop_shared import events as ev
from services.reporting import facts, read_model
from tests.unit.report_buckets import summarize

T = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
STAFF = {"staff_id": "sh-xh-sv", "name": "李娜", "role": "supervisor", "email": None}
V1, V2 = "triage-aaaaaaaaaaaa", "triage-bbbbbbbbbbbb"


def routed(case_id, category, version=V1, classified_by="model"):
    return ev.CASE_ROUTED, ev.load(ev.CASE_ROUTED, ev.dump(ev.CASE_ROUTED, {
        "case_id": case_id, "case_number": "CL-1", "store_id": "SH-XH-001", "category": category,
        "severity": "low", "assignee": STAFF, "rung": 1, "routed_at": T,
        "deadlines": {"first_response_due": T + timedelta(hours=24)},
        "model_version": version, "classified_by": classified_by, "confidence": 0.38}))


def reclassified(case_id, previous, category, version=V1, case_version=3, hours=1):
    return ev.CASE_RECLASSIFIED, ev.load(ev.CASE_RECLASSIFIED, ev.dump(ev.CASE_RECLASSIFIED, {
        "event_id": f"e-{case_id}-{case_version}", "correction_id": f"{case_id}:{case_version}",
        "case_id": case_id, "case_number": "CL-1", "store_id": "SH-XH-001",
        "previous_category": previous, "category": category, "model_category": previous,
        "model_version": version, "model_confidence": 0.38, "by_role": "supervisor",
        "reclassified_at": T + timedelta(hours=hours)}))


def row_of(events):
    row = {}
    for event_type, data in events:
        row = read_model.apply(row, read_model.project(event_type, data))
    return row


def settled(row):
    """The row with its corrections in a fixed order (a set arrives in any order)."""
    return dict(row, corrections=sorted(row["corrections"], key=lambda c: c["correction_id"]))


def test_the_event_carries_no_personal_data():
    assert set(ev.SCHEMAS[ev.CASE_RECLASSIFIED].fields) == {
        "event_id", "correction_id", "case_id", "case_number", "store_id", "previous_category", "category",
        "model_category", "model_version", "model_confidence", "by_role", "reclassified_at"}


def test_a_correction_is_kept_once_whatever_the_order_and_repeats():
    history = [routed("c1", "equipment"), reclassified("c1", "equipment", "booking", hours=1),
               reclassified("c1", "booking", "service_quality", case_version=5, hours=2)]
    rows = [settled(row_of(order)) for order in itertools.permutations(history + history[1:])]
    assert all(row == rows[0] for row in rows)
    row = rows[0]
    assert [c["correction_id"] for c in row["corrections"]] == ["c1:3", "c1:5"]
    assert row["corrected_category"] == "service_quality"  # the latest correction wins
    assert (row["model_version"], row["model_category"]) == (V1, "equipment")


def test_a_category_the_submitter_chose_is_not_counted_as_the_models():
    row = row_of([routed("c1", "price", classified_by="submitter")])
    assert "model_version" not in row and "model_category" not in row


def test_corrections_by_category_and_model_version_with_rates():
    rows = [row_of(events) for events in (
        [routed("a", "equipment"), reclassified("a", "equipment", "booking")],
        [routed("b", "equipment")],
        [routed("c", "equipment"), reclassified("c", "equipment", "hygiene"),
         reclassified("c", "equipment", "hygiene")],  # redelivered
        [routed("d", "price")],
        [routed("e", "price", version=V2), reclassified("e", "price", "booking", version=V2)],
    )]
    summary = summarize([dict(row, submitted_at=T) for row in rows])
    first, second = summary["corrections"]
    assert first == {
        "model_version": V1, "classified": 4, "corrected": 2, "rate": 0.5,
        "by_category": {
            "equipment": {"classified": 3, "corrected": 2, "rate": 0.6667,
                          "corrected_to": {"booking": 1, "hygiene": 1}},
            "price": {"classified": 1, "corrected": 0, "rate": 0.0, "corrected_to": {}}}}
    assert (second["model_version"], second["rate"]) == (V2, 1.0)
    assert second["by_category"]["price"]["corrected_to"] == {"booking": 1}
    # the summary counts a corrected case under its corrected category
    assert summary["by_category"] == {"booking": 2, "equipment": 1, "hygiene": 1, "price": 1}


def test_no_cases_no_corrections():
    assert summarize([])["corrections"] == []


def test_a_version_with_dots_reads_back_as_it_was_and_a_correction_without_a_model_counts_apart():
    rows = [dict(row_of([routed("a", "price", version="triage-1.2.0"),
                         reclassified("a", "price", "booking", version="triage-1.2.0")]), submitted_at=T),
            dict(row_of([routed("b", "price", classified_by="submitter"),
                         reclassified("b", "price", "hygiene", version=None)]), submitted_at=T)]
    assert facts.version_key("triage-1.2.0") == "triage-1%2E2%2E0"
    without, dotted = summarize(rows)["corrections"]
    assert (without["model_version"], without["classified"], without["corrected"]) == (None, 0, 1)
    assert (dotted["model_version"], dotted["rate"]) == ("triage-1.2.0", 1.0)
