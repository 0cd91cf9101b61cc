"""What every service has besides its own work: /metrics (Prometheus), /health,
/openapi.json, the bus's queues declared at start, and the org chart provider."""
from nameko.extensions import DependencyProvider

from closeloop_shared import org
from closeloop_shared.bus import DeclareQueues
from closeloop_shared.config import ORG_SEED_PATH, setting
from closeloop_shared.http import http, json_response
from closeloop_shared.metrics import metrics_response
from closeloop_shared.mongo import MongoHealth


class OpsEndpoints:
    """Mixed into each service class; nameko picks up inherited entrypoints."""

    mongo_ping = MongoHealth()
    bus_queues = DeclareQueues()
    openapi_spec = None  # a service with an HTTP API sets its OpenAPI document here

    @http("GET", "/openapi.json")
    def openapi(self, request):
        if self.openapi_spec is None:
            return json_response(404, {"error": {"code": "not_found", "message": "this service has no HTTP API"}})
        return json_response(200, self.openapi_spec)

    @http("GET", "/metrics")
    def metrics(self, request):
        return metrics_response(request)

    @http("GET", "/health")
    def health(self, request):
        try:
            self.mongo_ping()
        except Exception as exc:  # any failure means "not ready", and says why
            return json_response(503, {"status": "unavailable", "mongo": str(exc)[:200]})
        return json_response(200, {"status": "ok", "service": self.name})


class OrgChart(DependencyProvider):
    """The org chart from ORG_SEED_PATH, loaded once per container."""

    def setup(self):
        self.chart = org.load(setting(self.container.config, ORG_SEED_PATH))

    def get_dependency(self, worker_ctx):
        return self.chart
