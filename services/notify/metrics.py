"""notify's Prometheus metrics. Labels stay low-cardinality: channel, kind (the
template, never its occurrence), outcome; never a case, store or person. Every series
exists at zero from the start, so rates and alerts work before the first failure."""
from prometheus_client import Counter, Histogram

from closeloop_shared.contract import NotifyChannel
from services.notify.kinds import TEMPLATES

OUTCOMES = ("sent", "delivered", "failed", "deferred", "abandoned", "suppressed")
CHANNELS = tuple(c.value for c in NotifyChannel) + ("none",)  # none: no channel reached anyone

NOTIFICATIONS = Counter(
    "closeloop_notifications_total", "Notification outcomes by channel and kind",
    ["channel", "kind", "outcome"])
LATENCY = Histogram(
    "closeloop_notification_latency_seconds",
    "From the event to the provider taking the message (quiet-hour deferrals included)",
    ["channel"], buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600))
PROVIDER_REQUESTS = Counter(
    "closeloop_notify_provider_requests_total",
    "Provider calls by result (ok, error, throttled): the error rate is error / all", ["channel", "result"])
WEBHOOKS_DISABLED = Counter(
    "closeloop_notify_webhooks_disabled_total", "Outbound webhook endpoints disabled after persistent failure")

for _channel in CHANNELS:
    for _kind in TEMPLATES:
        for _outcome in OUTCOMES:
            NOTIFICATIONS.labels(_channel, _kind, _outcome)
    if _channel != "none":
        LATENCY.labels(_channel)
        for _result in ("ok", "error", "throttled"):
            PROVIDER_REQUESTS.labels(_channel, _result)


def count(channel, template, outcome):
    NOTIFICATIONS.labels(channel or "none", template, outcome).inc()
