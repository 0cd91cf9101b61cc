"""reporting's Prometheus metrics beside the read-model gauges (repository.OpenCasesCollector)."""
from prometheus_client import Histogram

from closeloop_shared.events import SEVERITIES

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
