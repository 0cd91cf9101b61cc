"""Endpoints every service exposes for operators: /metrics (Prometheus) and /health."""
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http

from closeloop_shared import org
from closeloop_shared.config import ORG_SEED_PATH, setting
from closeloop_shared.http import json_response
from closeloop_shared.metrics import metrics_response
from closeloop_shared.mongo import MongoHealth


class OpsEndpoints:
    """Mixed into each service class; nameko picks up inherited entrypoints."""

    mongo_ping = MongoHealth()

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
