"""reporting's Prometheus metrics beside the read-model gauges (repository.OpenCasesCollector):
resolution times, the revisit outcomes of the follow-up dashboard, and the backlog of
increments waiting to be folded into the report buckets."""
from datetime import timedelta

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import GaugeMetricFamily

from closeloop_shared.auth import Identity
from closeloop_shared.clock import CHINA, utcnow
from closeloop_shared.events import SEVERITIES
from closeloop_shared.mongo import Repository
from services.reporting import facts as pre
from services.reporting import kpis
from services.reporting.repository import FactsRepository

HOUR = 3600
# buckets at the SLA bounds (the 24 h promise, 48 h resolution) and around them
RESOLUTION_SECONDS = Histogram(
    "closeloop_time_to_resolution_seconds", "From submission to resolution, by severity", ["severity"],
    buckets=(HOUR, 4 * HOUR, 8 * HOUR, 12 * HOUR, 24 * HOUR, 36 * HOUR, 48 * HOUR, 72 * HOUR, 7 * 24 * HOUR))
for _severity in SEVERITIES:  # every series exists (at zero) before the first resolution
    RESOLUTION_SECONDS.labels(_severity)


def observe_resolution(row):
    """A case's resolution, once (the delivery that counted it): its time since submission."""
    if row.get("resolved_at") and row.get("submitted_at") and row.get("severity") in SEVERITIES:
        RESOLUTION_SECONDS.labels(row["severity"]).observe((row["resolved_at"] - row["submitted_at"]).total_seconds())


class RegisteredCollector(Repository):
    """Registers a read-model collector in the process-wide Prometheus registry for this
    container's lifetime: one per process, so a container started while another (not yet
    torn down) still holds it takes it over. Subclasses say which: `collector()`."""

    _registered = None  # per subclass: set on the subclass at its first start

    def __init__(self):
        super().__init__(FactsRepository)

    def collector(self):
        raise NotImplementedError

    def start(self):
        self.registered = self.collector()
        self._release(type(self)._registered)
        REGISTRY.register(self.registered)
        type(self)._registered = self.registered

    def stop(self):
        self._release(self.registered)
        super().stop()

    def kill(self):
        self._release(getattr(self, "registered", None))
        super().kill()

    @classmethod
    def _release(cls, collector):
        if collector is not None and collector is cls._registered:
            REGISTRY.unregister(collector)
            cls._registered = None


# -- the follow-up dashboard: revisit outcomes, read from the read model at scrape time -----

CASE_REVISIT_OUTCOMES = ("satisfied", "unsatisfied")  # the revisit after a case (revisit_recorded)
# the tiered programme's revisits (revisit_task_completed): ended completed or unreachable
# (never dropped from completion), and of the completed with a score, satisfied or not
PROGRAMME_OUTCOMES = ("completed", "unreachable", "satisfied", "unsatisfied")


class RevisitOutcomesCollector:
    """closeloop_revisit_outcomes_7d{source, outcome}: the last 7 China days' revisits by
    outcome, summed over every brand's buckets: source "case" (a case's satisfaction
    revisit) or "programme" (seed 002's relationship revisits). Completion and
    satisfaction rates divide these; every series is there (zero) from the start."""

    def __init__(self, repository, brands, now=utcnow):
        self.repository, self.brands, self.now = repository, brands, now

    def collect(self):
        gauge = GaugeMetricFamily("closeloop_revisit_outcomes_7d",
                                  "Revisits of the last 7 days by source (case, programme) and outcome",
                                  labels=["source", "outcome"])
        today = self.now().astimezone(CHINA).date()
        span = pre.Span(today - timedelta(days=6), today)
        summed = kpis.totals(self.repository.bucket_documents(
            {f"brand:{pre.safe_key(brand)}" for brand in self.brands()}, span.segments()))
        cases = summed.overall()
        for outcome in CASE_REVISIT_OUTCOMES:
            gauge.add_metric(["case", outcome], cases[f"revisit:{outcome}"])
        for outcome in PROGRAMME_OUTCOMES:
            gauge.add_metric(["programme", outcome], summed.programme[outcome])
        yield gauge


class RevisitOutcomesGauge(RegisteredCollector):
    """The revisit-outcomes collector, for this container's lifetime."""

    identity = Identity()  # the brands whose buckets are summed

    def collector(self):
        return RevisitOutcomesCollector(FactsRepository(self.database),
                                        brands=lambda: sorted(self.identity.organisation().brands))


# -- the folding backlog: events taken in whose increments are not yet in the buckets -----

class PendingIncrementsCollector:
    """closeloop_report_pending_increments: events taken in whose increments wait to be
    folded into the report buckets (read at scrape time, so it is there from the start;
    near zero in steady state: reports lag by that many events)."""

    def __init__(self, repository):
        self.repository = repository

    def collect(self):
        gauge = GaugeMetricFamily("closeloop_report_pending_increments",
                                  "Events taken in whose bucket increments wait to be folded into the reports")
        gauge.add_metric([], self.repository.backlog())
        yield gauge


class PendingIncrementsGauge(RegisteredCollector):
    """The folding backlog's collector, for this container's lifetime."""

    def collector(self):
        return PendingIncrementsCollector(FactsRepository(self.database))
