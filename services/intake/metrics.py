"""intake's Prometheus metrics."""
from prometheus_client import Counter

from closeloop_shared.contract import Channel

# how it came in: the HTTP API, the inbound bus (integrations), or voiced in a revisit
VIA = ("http", "bus", "revisit")
FEEDBACK_RECEIVED = Counter(
    "closeloop_feedback_received_total", "Feedback accepted by intake", ["channel", "via"])
for _channel in Channel:  # every series exists (at zero) from the start
    for _via in VIA:
        FEEDBACK_RECEIVED.labels(_channel.value, _via)
