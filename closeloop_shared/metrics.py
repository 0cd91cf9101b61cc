"""Prometheus metrics that cross services, and the /metrics response.

Labels stay low-cardinality: clock kind, severity, channel, outcome; never a store,
customer or case."""
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from werkzeug.wrappers import Response

SLA_BREACHES = Counter(
    "closeloop_sla_breaches_total", "SLA clocks that ran out before being met", ["clock"])
ESCALATIONS = Counter(
    "closeloop_escalations_total", "Cases moved one rung up the escalation ladder", ["reason"])
FIRST_RESPONSE_SECONDS = Histogram(
    "closeloop_time_to_first_response_seconds", "From submission to first response",
    buckets=(600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600,
             36 * 3600, 48 * 3600, 72 * 3600))
FEEDBACK_RECEIVED = Counter(
    "closeloop_feedback_received_total", "Feedback accepted by intake", ["channel", "via"])
DEAD_LETTERS = Counter(
    "closeloop_dead_letters_total", "Messages dead-lettered as never processable", ["service"])
NOTIFICATIONS = Counter(
    "closeloop_notifications_total", "Notification attempts", ["kind", "outcome"])


def metrics_response(request, registry=REGISTRY):
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(registry), status=200, headers={"Content-Type": content_type})
