"""The services' own Prometheus series: every labelled series exists from the start (the
first breach, escalation or feedback after a restart counts in increase() and in alerts),
and the follow-up dashboard's revisit outcomes are read from reporting's buckets."""
from datetime import datetime, timezone

from prometheus_client import REGISTRY, CollectorRegistry

from closeloop_shared.contract import Channel, ClockName
from services.intake import metrics as intake_metrics
from services.reporting.metrics import RevisitOutcomesCollector
from services.routing import metrics as routing_metrics


def test_breach_escalation_and_feedback_series_exist_at_zero_before_the_first_event():
    assert intake_metrics and routing_metrics  # importing them creates the series
    for clock in ClockName:
        assert REGISTRY.get_sample_value("closeloop_sla_breaches_total", {"clock": clock.value}) is not None
    for reason in ("first_response", "resolution", "report", "unacknowledged"):
        assert REGISTRY.get_sample_value("closeloop_escalations_total", {"reason": reason}) is not None
    for channel in Channel:
        for via in ("http", "bus", "revisit"):
            assert REGISTRY.get_sample_value("closeloop_feedback_received_total",
                                             {"channel": channel.value, "via": via}) is not None


class Buckets:
    """FactsRepository.bucket_documents over fixed documents; remembers what it was asked."""

    def __init__(self, documents):
        self.documents, self.asked = documents, []

    def bucket_documents(self, scopes, segments):
        self.asked.append((set(scopes), list(segments)))
        return iter(self.documents)


def scrape(collector):
    registry = CollectorRegistry()
    registry.register(collector)
    return {(s.labels["source"], s.labels["outcome"]): s.value
            for family in registry.collect() for s in family.samples}


NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)


def test_revisit_outcomes_sum_every_brands_buckets_by_source():
    documents = [
        {"c": {"service": {"revisit:satisfied": 3, "revisit:unsatisfied": 1, "cases": 9}},
         "p": {"completed": 5, "unreachable": 2, "satisfied": 4, "unsatisfied": 1}},
        {"c": {"product": {"revisit:satisfied": 2}}, "p": {"completed": 1, "unreachable": 1}},
    ]
    buckets = Buckets(documents)
    found = scrape(RevisitOutcomesCollector(buckets, brands=lambda: ["B1", "B2"], now=lambda: NOW))
    assert found == {("case", "satisfied"): 5, ("case", "unsatisfied"): 1,
                     ("programme", "completed"): 6, ("programme", "unreachable"): 3,
                     ("programme", "satisfied"): 4, ("programme", "unsatisfied"): 1}
    ((scopes, segments),) = buckets.asked
    assert scopes == {"brand:B1", "brand:B2"} and segments  # brands only: each revisit counted once


def test_revisit_outcomes_are_all_there_at_zero_with_no_revisits_or_no_brands():
    found = scrape(RevisitOutcomesCollector(Buckets([]), brands=list, now=lambda: NOW))
    assert found == {("case", "satisfied"): 0, ("case", "unsatisfied"): 0, ("programme", "completed"): 0,
                     ("programme", "unreachable"): 0, ("programme", "satisfied"): 0,
                     ("programme", "unsatisfied"): 0}
