"""intake's Prometheus metrics."""
from prometheus_client import Counter

FEEDBACK_RECEIVED = Counter(
    "closeloop_feedback_received_total", "Feedback accepted by intake", ["channel", "via"])
