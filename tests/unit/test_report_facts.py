"""services/reporting/facts.py: what a case adds to the pre-aggregated buckets, and
services/reporting/kpis.py's arithmetic over summed buckets (edge cases included)."""
from collections import Counter
from datetime import date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared import events as ev
from services.reporting import facts, kpis
from services.reporting.facts import Span, contribution, difference, event_key

T = datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc)  # 01:00 on the 24th in China


def at(hours):
    return T + timedelta(hours=hours)


def case(**fields):
    return {"_id": "c1", "submitted_at": T, "store_id": "SH-XH-001", "region_id": "east",
            "brand_id": "meili", "category": "hygiene", "status": "assigned", **fields}


def metrics(**fields):
    return facts.case_metrics(case(**fields))


# -- where a case counts ----------------------------------------------------------------

def test_a_case_counts_on_its_china_day_at_store_region_and_brand_by_day_and_month():
    buckets = contribution(case())
    assert set(buckets) == {
        "store:SH-XH-001:day:2026-11-24", "store:SH-XH-001:month:2026-11",
        "region:east:day:2026-11-24", "region:east:month:2026-11",
        "brand:meili:day:2026-11-24", "brand:meili:month:2026-11"}
    assert all(paths == {"c.hygiene.cases": 1, "c.hygiene.status:assigned": 1, "c.hygiene.channel:unknown": 1}
               for paths in buckets.values())


def test_a_case_not_yet_submitted_counts_nowhere():
    assert contribution({"_id": "c1", "category": "hygiene"}) == {}


def test_a_corrected_category_wins_and_the_case_moves_between_categories():
    before = contribution(case())
    after = contribution(case(corrected_category="equipment"))
    delta = difference(after, before)["store:SH-XH-001:day:2026-11-24"]
    assert delta == {"c.hygiene.cases": -1, "c.equipment.cases": 1,
                     "c.hygiene.status:assigned": -1, "c.equipment.status:assigned": 1,
                     "c.hygiene.channel:unknown": -1, "c.equipment.channel:unknown": 1}


def test_a_status_change_moves_the_case_between_status_counters():
    delta = difference(contribution(case(status="resolved")), contribution(case()))
    assert delta["store:SH-XH-001:day:2026-11-24"] == {"c.hygiene.status:assigned": -1,
                                                      "c.hygiene.status:resolved": 1}


def test_the_model_that_classified_a_case_and_each_correction_count_per_version():
    row = case(model_version="triage-1.2", model_category="equipment", corrected_category="booking",
               corrections=[{"correction_id": "c1:3", "model_version": "triage-1.2",
                             "previous_category": "equipment", "category": "booking"}] * 2)  # redelivered
    paths = contribution(row)["brand:meili:month:2026-11"]
    assert {p: n for p, n in paths.items() if p.startswith("m.")} == {
        "m.triage-1%2E2.classified:equipment": 1, "m.triage-1%2E2.corrected:equipment:booking": 1}


def test_an_unchanged_case_adds_nothing():
    row = case(first_responded_at=at(1), first_response_on_time=True)
    assert difference(contribution(row), contribution(row)) == {}


def test_the_handler_counts_under_staff():
    buckets = contribution(case(handler_id="sh.xh-mg", resolved_at=at(5), resolution_on_time=True,
                                status="resolved"))
    paths = buckets["store:SH-XH-001:month:2026-11"]
    assert paths["s.sh_xh-mg.assigned"] == paths["s.sh_xh-mg.resolved"] == paths["s.sh_xh-mg.resolved_on_time"] == 1
    assert not any(path.startswith("s.") for path in buckets["brand:meili:month:2026-11"])


# -- the clocks ---------------------------------------------------------------------------

def test_an_unanswered_case_counts_only_once_its_clock_breached():
    assert "first_response:overdue" not in metrics()
    breached = [{"clock": "first_response", "rung": 2, "due_at": at(24)}]
    assert metrics(breaches=breached)["first_response:overdue"] == 1
    assert metrics(breaches=breached)["breach:first_response:2"] == 1


def test_an_answer_after_the_breach_counts_late_not_overdue():
    m = metrics(breaches=[{"clock": "first_response", "rung": 2, "due_at": at(24)}],
                first_responded_at=at(30), first_response_on_time=False)
    assert (m["first_response:late"], m["first_response:overdue"]) == (1, 0)


def test_a_reopened_case_is_unresolved_again():
    m = metrics(resolved_at=at(10), resolution_on_time=True, status="reopened", reopened=True)
    assert "resolution:on_time" not in m and m["reopened"] == 1
    assert m["resolved"] == 1  # its remedy was given all the same


def test_a_paused_clock_met_within_its_moved_deadline_counts_on_time():
    """routing moves the deadlines by the pause and decides on_time: the facts take its word."""
    m = metrics(resolved_at=at(70), resolution_on_time=True, status="resolved")
    assert m["resolution:on_time"] == 1


def test_the_written_report_clock():
    assert metrics(report_on_time=True)["report:on_time"] == 1
    assert metrics(report_on_time=False)["report:late"] == 1
    assert metrics(breaches=[{"clock": "report", "rung": 4, "due_at": at(8)}])["report:overdue"] == 1


def test_remedies_by_option_letter_and_other_types():
    m = metrics(resolved_at=at(5), status="resolved", refund_option="partial_continue",
                remedy_type="refund", remedy_amount_fen=19_900)
    assert (m["remedy:B:count"], m["remedy:B:fen"]) == (1, 19_900)
    m = metrics(resolved_at=at(5), status="resolved", remedy_type="apology", refund_option=None)
    assert (m["remedy:apology:count"], m["remedy:apology:fen"]) == (1, 0)


def test_repeat_windows():
    assert metrics(repeat_gap_days=12)["repeat:30"] == metrics(repeat_gap_days=12)["repeat:90"] == 1
    m = metrics(repeat_gap_days=45)
    assert ("repeat:30" in m, m["repeat:90"]) == (False, 1)
    assert not any(name.startswith("repeat") for name in metrics(repeat_gap_days=None))


def test_event_keys_are_stable_and_distinct():
    base = {"case_id": "c1"}
    assert event_key(ev.CASE_SUBMITTED, base) == event_key(ev.CASE_SUBMITTED, dict(base)) == "case_submitted:c1"
    first = event_key(ev.CASE_RESOLVED, dict(base, resolution_round=1))
    assert first != event_key(ev.CASE_RESOLVED, dict(base, resolution_round=2))
    assert event_key(ev.REPORT_SIGNED_OFF, dict(base, event_id="e1")) == "report_signed_off:e1"
    breach = dict(base, clock="resolution", due_at=at(48))
    assert event_key(ev.CASE_DEADLINE_BREACHED, breach) != event_key(
        ev.CASE_DEADLINE_BREACHED, dict(breach, due_at=at(96)))


def test_customer_key_is_a_digest_and_absent_without_an_identity():
    key = facts.customer_key({"phone": "+8613812345678"})
    assert key and "13812345678" not in key
    assert key == facts.customer_key({"phone": "+8613812345678", "name": "other"})
    assert facts.customer_key({"name": "刘女士"}) is None


# -- the period's buckets ------------------------------------------------------------------

def test_whole_months_are_read_as_month_buckets_and_the_edges_as_days():
    periods = Span(date(2026, 1, 30), date(2026, 4, 2)).periods()
    assert periods == [("day", date(2026, 1, 30)), ("day", date(2026, 1, 31)), ("month", date(2026, 2, 1)),
                       ("month", date(2026, 3, 1)), ("day", date(2026, 4, 1)), ("day", date(2026, 4, 2))]


def test_a_year_is_twelve_documents_per_unit():
    assert len(Span(date(2026, 1, 1), date(2026, 12, 31)).bucket_ids("store", "S")) == 12


def test_segments_are_runs_of_one_grain_with_days_within_one_month():
    assert Span(date(2026, 1, 30), date(2026, 4, 2)).segments() == [
        ("day", "2026-01-30", "2026-01-31"), ("month", "2026-02", "2026-03"), ("day", "2026-04-01", "2026-04-02")]
    assert Span(date(2026, 1, 20), date(2026, 2, 10)).segments() == [
        ("day", "2026-01-20", "2026-01-31"), ("day", "2026-02-01", "2026-02-10")]


def test_a_bucket_is_found_by_its_shard_and_period():
    assert facts.bucket_fields("store:S:day:2026-03-05") == {"shard": "store:S:day:2026-03", "period": "2026-03-05"}
    assert facts.bucket_fields("region:east:month:2026-03") == {"shard": "region:east:month", "period": "2026-03"}


@given(st.dates(date(2020, 1, 1), date(2030, 1, 1)), st.integers(0, 400))
def test_a_span_covers_each_day_exactly_once(first, length):
    last = first + timedelta(days=length)
    covered = []
    for grain, start in Span(first, last).periods():
        if grain == "day":
            covered.append(start)
        else:
            day = start
            while day.month == start.month:
                covered.append(day)
                day += timedelta(days=1)
    assert covered == [first + timedelta(days=i) for i in range(length + 1)]
    assert len(Span(first, last).periods()) <= 62 + 14


# -- the KPIs' arithmetic ------------------------------------------------------------------

def test_an_empty_period_has_no_rates():
    result = kpis.indicators(Counter())
    assert result["cases"] == 0
    assert all(clock["rate"] is None and clock["counted"] == 0 for clock in result["on_time"].values())
    assert result["satisfaction"]["rate"] is None
    assert result["repeat"]["30"] == {"cases": 0, "rate": None, "previous_rate": None, "change": None,
                                      "target_change": -0.3}
    assert result["root_causes"] == [] and result["remedies"] == {} and result["breaches"] == {}


def test_on_time_rate_counts_overdue_cases_late():
    counters = Counter({"first_response:on_time": 7, "first_response:late": 1, "first_response:overdue": 2})
    assert kpis.clock_kpi(counters, "first_response") == {
        "counted": 10, "on_time": 7, "late": 1, "overdue": 2, "rate": 0.7, "target": 0.95}


def test_breaches_by_clock_and_rung():
    counters = Counter({"breach:first_response:1": 3, "breach:first_response:2": 1, "breach:resolution:4": 2})
    assert kpis.breaches(counters) == {"first_response": {"total": 4, "by_rung": {"1": 3, "2": 1}},
                                       "resolution": {"total": 2, "by_rung": {"4": 2}}}


def test_satisfaction_is_over_revisits_reached():
    counters = Counter({"revisit:satisfied": 9, "revisit:unsatisfied": 3})
    assert kpis.satisfaction(counters) == {"revisits": 12, "satisfied": 9, "unsatisfied": 3, "rate": 0.75,
                                           "target": 0.9}


def test_repeat_rate_and_its_change_against_the_previous_period():
    now = Counter({"cases": 100, "repeat:30": 7, "repeat:90": 14})
    before = Counter({"cases": 50, "repeat:30": 5, "repeat:90": 10})
    result = kpis.repeat(now, before)
    assert result["30"] == {"cases": 7, "rate": 0.07, "previous_rate": 0.1, "change": -0.3, "target_change": -0.3}
    assert result["90"]["change"] == -0.3
    assert kpis.repeat(now, Counter())["30"]["change"] is None  # nothing before: no change to speak of


def test_remedies_sum_fen_exactly():
    counters = Counter({"remedy:A:count": 2, "remedy:A:fen": 0, "remedy:D:count": 1, "remedy:D:fen": 98_000})
    assert kpis.remedies(counters) == {"A": {"count": 2, "fen": 0}, "D": {"count": 1, "fen": 98_000}}


def test_pareto_sorts_causes_and_accumulates_shares():
    counters = Counter({"root:poor_communication": 6, "root:expectation_gap": 3, "root:unkept_promise": 1})
    assert kpis.pareto(counters) == [
        {"root_cause": "poor_communication", "cases": 6, "share": 0.6, "cumulative": 0.6},
        {"root_cause": "expectation_gap", "cases": 3, "share": 0.3, "cumulative": 0.9},
        {"root_cause": "unkept_promise", "cases": 1, "share": 0.1, "cumulative": 1.0}]


def test_staff_handling():
    counters = Counter({"assigned": 5, "resolved": 4, "resolved_on_time": 3, "revisit:satisfied": 2})
    result = kpis.staff_indicators(counters)
    assert (result["assigned"], result["resolved"], result["on_time_rate"]) == (5, 4, 0.75)
    assert result["satisfaction"]["rate"] == 1.0


def test_totals_sum_bucket_documents():
    documents = [{"c": {"hygiene": {"cases": 2}}, "s": {"m": {"assigned": 1}}},
                 {"c": {"hygiene": {"cases": 1}, "price": {"cases": 4}}}]
    summed = kpis.totals(documents)
    assert summed.overall()["cases"] == 7
    assert summed.categories["hygiene"]["cases"] == 3 and summed.staff["m"]["assigned"] == 1


@given(st.lists(st.fixed_dictionaries({
    "first_responded_at": st.none() | st.just(at(1)),
    "first_response_on_time": st.booleans(),
    "breached": st.booleans(),
    "category": st.sampled_from(["hygiene", "price"]),
    "satisfied": st.lists(st.booleans(), max_size=2),
}), max_size=20))
def test_summed_contributions_agree_with_the_cases(cases):
    """Summing every case's day-bucket contribution gives the KPIs of the cases."""
    documents = []
    for i, spec in enumerate(cases):
        row = case(_id=f"c{i}", category=spec["category"], first_responded_at=spec["first_responded_at"],
                   first_response_on_time=spec["first_response_on_time"],
                   breaches=[{"clock": "first_response", "rung": 1, "due_at": at(24)}] if spec["breached"] else [],
                   revisits=[{"revisit_id": f"r{j}", "satisfied": s} for j, s in enumerate(spec["satisfied"])])
        paths = contribution(row)["store:SH-XH-001:day:2026-11-24"]
        document = {}
        for path, n in paths.items():
            _, category, metric = path.split(".", 2)
            document.setdefault("c", {}).setdefault(category, {})[metric] = n
        documents.append(document)
    result = kpis.indicators(kpis.totals(documents).overall())
    assert result["cases"] == len(cases)
    expected_counted = sum(1 for c in cases if c["first_responded_at"] or c["breached"])
    assert result["on_time"]["first_response"]["counted"] == expected_counted
    assert result["satisfaction"]["revisits"] == sum(len(c["satisfied"]) for c in cases)


# -- the live risk gauges ------------------------------------------------------------------

LEAD = timedelta(hours=4)


def test_every_risk_series_exists_even_with_no_open_case():
    risk = kpis.sla_risk([], T, LEAD)
    assert len(risk) == 2 * 2 * len(ev.SEVERITIES) and not any(risk.values())


def test_breached_and_open_versus_at_risk():
    rows = [
        # unanswered, breached: breached_open; its resolution is due in 3 h: at risk
        {"severity": "high", "status": "assigned", "breaches": [{"clock": "first_response", "rung": 1, "due_at": at(-1)}],
         "first_response_due": at(-1), "resolution_due": at(3)},
        # answered after the breach: no longer breached-and-open; resolution in 10 h: not at risk yet
        {"severity": "low", "status": "investigating", "first_responded_at": at(-0.5),
         "breaches": [{"clock": "first_response", "rung": 1, "due_at": at(-1)}],
         "first_response_due": at(-1), "resolution_due": at(10)},
        # reopened: the resolution clock runs again and breached
        {"severity": "low", "status": "reopened", "first_responded_at": at(-50), "resolved_at": at(-40),
         "breaches": [{"clock": "resolution", "rung": 2, "due_at": at(-2)}], "resolution_due": at(-2)},
    ]
    risk = kpis.sla_risk(rows, T, LEAD)
    assert {key: n for key, n in risk.items() if n} == {
        ("breached_open", "first_response", "high"): 1, ("at_risk", "resolution", "high"): 1,
        ("breached_open", "resolution", "low"): 1}


def test_the_collector_exports_every_series():
    from services.reporting.repository import OpenCasesCollector

    class Facts:
        def open_by_severity(self):
            return {severity: 0 for severity in ev.SEVERITIES}

        def open_rows(self):
            return [{"severity": "medium", "status": "assigned", "first_response_due": at(1)}]

        def bucket_documents(self, scopes, segments):
            self.read = (scopes, segments)
            return [{"c": {"hygiene": {"first_response:on_time": 3, "first_response:overdue": 1}}}]

    facts_read = Facts()
    collector = OpenCasesCollector(facts_read, LEAD, brands=lambda: ["meili"], now=lambda: T)
    families = {family.name: family for family in collector.collect()}
    assert set(families) == {"closeloop_open_cases", "closeloop_cases_breached_open", "closeloop_cases_at_risk",
                             "closeloop_clock_outcomes_7d"}
    outcomes = {tuple(s.labels.values()): s.value for s in families["closeloop_clock_outcomes_7d"].samples}
    assert len(outcomes) == 9 and outcomes[("first_response", "on_time")] == 3
    assert outcomes[("first_response", "overdue")] == 1 and outcomes[("resolution", "late")] == 0
    # the brand's day buckets of the 7 China days up to the 24th (T is 01:00 on the 24th there)
    assert facts_read.read == ({"brand:meili"}, [("day", "2026-11-18", "2026-11-24")])
    at_risk = {tuple(sample.labels.values()): sample.value for sample in families["closeloop_cases_at_risk"].samples}
    assert len(at_risk) == 2 * len(ev.SEVERITIES) and at_risk[("first_response", "medium")] == 1


def test_the_bench_seeds_the_same_buckets_as_case_by_case_contributions():
    """bench/reports.py rolls the coarser buckets up from store days: the same sums."""
    import random

    from bench import reports as bench

    class Db(dict):
        def __missing__(self, name):
            self[name] = Collection()
            return self[name]

    class Collection(list):
        def insert_many(self, documents, ordered):
            self.extend(documents)

    org, db = bench.organisation(), Db()
    bench.seed(db, 300, org, random.Random(5))
    expected = {}
    rng, stores = random.Random(5), sorted(org.stores)
    for _ in range(300):
        for bucket, paths in contribution(bench.synthetic_row(rng, org, stores)).items():
            expected.setdefault(bucket, Counter()).update(paths)
    seeded = {document["_id"]: document for document in db["report_buckets"]}
    assert set(seeded) == set(expected)
    for bucket, paths in expected.items():
        assert bench.nested(paths) == {k: v for k, v in seeded[bucket].items() if k not in ("_id", "shard", "period")}


# -- the revisit programme -------------------------------------------------------------------

def programme_event(status, score=None):
    return {"event_id": "e1", "task_id": "t1", "store_id": "SH-XH-001", "status": status, "score": score,
            "completed_at": T}


def test_a_programme_revisit_counts_completed_or_unreachable_and_satisfaction_when_scored():
    buckets = facts.programme_contribution(programme_event("completed", 5), "east", "meili")
    assert buckets["region:east:month:2026-11"] == {"p.completed": 1, "p.satisfied": 1}
    assert set(buckets) == set(contribution(case()))  # the same buckets a case of that day uses
    unreachable = facts.programme_contribution(programme_event("unreachable"), None, None)
    assert unreachable == {"store:SH-XH-001:day:2026-11-24": {"p.unreachable": 1},
                           "store:SH-XH-001:month:2026-11": {"p.unreachable": 1}}
    assert facts.programme_contribution(programme_event("completed", 3), None, None)[
        "store:SH-XH-001:day:2026-11-24"] == {"p.completed": 1, "p.unsatisfied": 1}


def test_programme_completion_keeps_unreachable_customers_in_the_denominator():
    result = kpis.programme(Counter({"completed": 8, "unreachable": 2, "satisfied": 6, "unsatisfied": 1}))
    assert result == {"ended": 10, "completed": 8, "unreachable": 2, "completion_rate": 0.8, "scored": 7,
                      "satisfied": 6, "satisfaction_rate": 0.8571, "target": 0.9}
    assert kpis.programme(Counter())["completion_rate"] is None


def test_resolution_time_is_observed_by_severity_with_buckets_at_the_sla_bounds():
    from services.reporting import metrics
    assert {24 * 3600, 48 * 3600} <= set(metrics.RESOLUTION_SECONDS._upper_bounds)
    before = metrics.RESOLUTION_SECONDS.labels("high")._sum.get()
    metrics.observe_resolution(case(severity="high", resolved_at=at(30)))
    metrics.observe_resolution(case(severity="high"))  # not resolved: nothing
    metrics.observe_resolution({"severity": "high", "resolved_at": at(30)})  # submission not known yet: nothing
    assert metrics.RESOLUTION_SECONDS.labels("high")._sum.get() - before == 30 * 3600
