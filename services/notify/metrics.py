"""notify's Prometheus metrics."""
from prometheus_client import Counter

NOTIFICATIONS = Counter(
    "closeloop_notifications_total", "Notification attempts", ["kind", "outcome"])
