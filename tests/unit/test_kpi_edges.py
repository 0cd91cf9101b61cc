"""The KPIs at their edges (issue 11): empty periods, reopened cases, unreachable
customers and paused clocks, from the case's row through its bucket contribution to the
report and its CSV line."""
from collections import Counter
from datetime import date, datetime, timedelta, timezone

from services.reporting import facts, kpis, reports
from services.reporting.facts import Span
from tests.unit.report_buckets import bucket_documents

T = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)  # 10:00 in China


def at(hours):
    return T + timedelta(hours=hours)


def case(**fields):
    return {"_id": "c1", "submitted_at": T, "store_id": "S1", "region_id": "east", "brand_id": "meili",
            "category": "hygiene", "status": "assigned", "channel": "web", "handler_id": "m",
            "first_response_due": at(24), "resolution_due": at(48), **fields}


class Buckets:
    """A repository holding some bucket documents, as reports.report reads them."""

    def __init__(self, documents=()):
        self.documents = list(documents)

    def bucket_documents(self, scopes, segments):
        return iter(self.documents)


def report(rows=(), group_by=reports.GroupBy.NONE):
    the_plan = reports.Plan("store", {"all": ["S1"]})
    return reports.report(Buckets(bucket_documents(rows)), group_by, the_plan, Span(date(2026, 11, 23),
                                                                                     date(2026, 11, 29)))


# -- empty periods ----------------------------------------------------------------------

def test_an_empty_period_reports_zero_cases_and_no_rate_never_zero_or_nan():
    body = report()
    whole = body["groups"]["all"]
    assert whole["cases"] == 0 and whole["revisit_programme"]["completion_rate"] is None
    assert {clock: kpi["rate"] for clock, kpi in whole["on_time"].items()} == {
        "first_response": None, "resolution": None, "report": None}
    assert whole["repeat"]["90"]["change"] is None and whole["satisfaction"]["rate"] is None
    assert body["previous"] == {"from": "2026-11-16", "to": "2026-11-22"}
    line = reports.csv_text(body).splitlines()[1]
    assert line == "all,0,0,,,,0,0,,0,,,,0,"  # blanks where there is no rate, not 0 or nan


def test_no_staff_and_no_categories_in_an_empty_period():
    assert report(group_by=reports.GroupBy.STAFF)["groups"] == {}
    assert report(group_by=reports.GroupBy.CATEGORY)["groups"] == {}


def test_a_repeat_change_needs_a_previous_rate_above_zero():
    now = Counter(cases=10, **{"repeat:30": 1})
    assert kpis.repeat(now, Counter(cases=10))["30"]["change"] is None      # 0 before: no -30% of zero
    assert kpis.repeat(now, Counter())["30"]["change"] is None              # nothing before
    assert kpis.repeat(Counter(), Counter(cases=4, **{"repeat:30": 2}))["30"] == {
        "cases": 0, "rate": None, "previous_rate": 0.5, "change": None, "target_change": -0.3}
    assert kpis.repeat(now, Counter(cases=5, **{"repeat:30": 1}))["30"]["change"] == -0.5  # 20% -> 10%


# -- reopened cases ---------------------------------------------------------------------

def test_a_reopened_case_leaves_its_handlers_resolutions_until_resolved_again():
    resolved = case(status="resolved", resolved_at=at(10), resolution_on_time=True, resolution_round=1)
    reopened = dict(resolved, status="reopened", reopened=True, resolution_due=at(120))
    again = dict(reopened, status="resolved", resolved_at=at(130), resolution_on_time=False, resolution_round=2)
    staff = [facts.staff_metrics(row) for row in (resolved, reopened, again)]
    assert [(m["resolved"], m["resolved_on_time"]) for m in staff] == [(1, 1), (0, 0), (1, 0)]
    whole = report([again])["groups"]["all"]
    assert whole["on_time"]["resolution"] == {"counted": 1, "on_time": 0, "late": 1, "overdue": 0, "rate": 0.0,
                                              "target": 0.95}
    assert (whole["resolved"], whole["reopened"]) == (1, 1)  # one case, counted once whatever its rounds


def test_a_reopened_case_whose_re_armed_clock_ran_out_counts_overdue():
    breached = case(status="reopened", reopened=True, resolved_at=at(10), resolution_on_time=True,
                    breaches=[{"clock": "resolution", "rung": 1, "due_at": at(120)}])
    kpi = report([breached])["groups"]["all"]["on_time"]["resolution"]
    assert (kpi["on_time"], kpi["overdue"]) == (0, 1)


# -- unreachable customers --------------------------------------------------------------

def test_only_unreachable_customers_is_a_completion_of_zero_not_no_rate():
    result = kpis.programme(Counter(unreachable=3))
    assert (result["ended"], result["completion_rate"], result["satisfaction_rate"]) == (3, 0.0, None)


def test_an_unreachable_customer_counts_in_the_store_buckets_of_the_day_the_revisit_ended():
    ended = {"status": "unreachable", "store_id": "S1", "completed_at": at(0), "score": None}
    totals = kpis.totals([paths_as_document(paths) for bucket, paths in
                          facts.programme_contribution(ended, "east", "meili").items() if bucket.startswith("store:")
                          and ":day:" in bucket])
    assert kpis.programme(totals.programme)["unreachable"] == 1


def paths_as_document(paths):
    document = {}
    for path, n in paths.items():
        section, name = path.split(".", 1)
        document.setdefault(section, {})[name] = n
    return document


# -- paused clocks ----------------------------------------------------------------------

def test_a_paused_case_past_its_first_deadline_is_not_overdue_until_its_moved_clock_breaches():
    # the case waited for the customer: routing moved the deadline and announced no breach
    waiting = case(status="pending_customer", resolution_due=at(72))
    assert report([waiting])["groups"]["all"]["on_time"]["resolution"]["counted"] == 0
    risk = kpis.sla_risk([dict(waiting, severity="low")], at(60), timedelta(hours=4))
    assert risk[("breached_open", "resolution", "low")] == 0


def test_a_paused_resolution_met_after_the_first_deadline_within_the_moved_one_counts_on_time():
    met = case(status="resolved", resolved_at=at(60), resolution_on_time=True, resolution_due=at(72))
    assert report([met])["groups"]["all"]["on_time"]["resolution"]["rate"] == 1.0
