"""The /metrics response, and the metric every service shares. Each service defines
its own metrics beside its entrypoints (services/<name>/metrics.py).

Labels stay low-cardinality everywhere: clock kind, severity, channel, outcome; never a
store, customer or case."""
from prometheus_client import REGISTRY, Counter
from prometheus_client.exposition import choose_encoder
from werkzeug.wrappers import Response

DEAD_LETTERS = Counter(
    "closeloop_dead_letters_total", "Messages dead-lettered as never processable", ["service"])


def metrics_response(request, registry=REGISTRY):
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(registry), status=200, headers={"Content-Type": content_type})
