"""routing's Prometheus metrics: the SLA dashboard's main series."""
from prometheus_client import Counter, Histogram

SLA_BREACHES = Counter(
    "closeloop_sla_breaches_total", "SLA clocks that ran out before being met", ["clock"])
ESCALATIONS = Counter(
    "closeloop_escalations_total", "Cases moved one rung up the escalation ladder", ["reason"])
FIRST_RESPONSE_SECONDS = Histogram(
    "closeloop_time_to_first_response_seconds", "From submission to first response",
    buckets=(600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600,
             36 * 3600, 48 * 3600, 72 * 3600))
