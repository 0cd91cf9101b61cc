"""routing's Prometheus metrics: the SLA dashboard's main series."""
from prometheus_client import Counter, Gauge, Histogram

from closeloop_shared.contract import ClockName

SLA_BREACHES = Counter(
    "closeloop_sla_breaches_total", "SLA clocks that ran out before being met", ["clock"])
ESCALATIONS = Counter(
    "closeloop_escalations_total", "Cases moved one rung up the escalation ladder", ["reason"])
# case_escalated's reasons: the clock that ran out, an unacknowledged rung, or a
# consumer-association / media referral escalated at once (services/routing/deadline_flows.py)
ESCALATION_REASONS = tuple(c.value for c in ClockName) + ("unacknowledged", "critical_referral")
for _clock in ClockName:  # every series exists (at zero) before the first breach after a restart
    SLA_BREACHES.labels(_clock.value)
for _reason in ESCALATION_REASONS:
    ESCALATIONS.labels(_reason)
FIRST_RESPONSE_SECONDS = Histogram(
    "closeloop_time_to_first_response_seconds", "From submission to first response",
    buckets=(600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600,
             36 * 3600, 48 * 3600, 72 * 3600))

# How late the escalation of a breach leaves routing: from the deadline that caused it
# (case_escalated.due_at) to its publication, by what noticed it (the precise timer of
# closeloop_shared.due, or the periodic scan, the safety net). Target: p99 <= 1 s.
DETECTORS = ("timer", "scan")
BREACH_DETECTION_LAG = Histogram(
    "closeloop_breach_detection_lag_seconds", "From a deadline to its escalation published",
    ["detected_by"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300))
for _detector in DETECTORS:  # every series exists (at zero) before the first breach
    BREACH_DETECTION_LAG.labels(_detector)
CALENDAR_INCOMPLETE_YEARS = Gauge(
    "closeloop_routing_calendar_incomplete_years",
    "Of this year and the next, how many have no official holiday list (business calendars "
    "fall back to weekly hours for them: publish the list with PUT /v1/calendars/years/<year>)")
