"""What every service has besides its own work: /metrics (Prometheus) with RED metrics
per entrypoint (closeloop_shared.red), /health,
/openapi.json, the bus's queues declared at start; and the mixins for following the
organisation and auditing personal-data reads."""
from kombu import Connection
from nameko.extensions import DependencyProvider

from closeloop_shared import events as ev
from closeloop_shared.audit import PersonalDataReads
from closeloop_shared.auth import Identity
from closeloop_shared.bus import DeclareQueues, event_handler
from closeloop_shared.config import AMQP_URI, MONGO_URI, setting
from closeloop_shared.contract import Permission
from closeloop_shared.due import DueTimer
from closeloop_shared.http import PUBLIC, http, int_arg, json_response, requires
from closeloop_shared.metrics import metrics_response
from closeloop_shared.mongo import MongoHealth, Repository, connect
from closeloop_shared.red import EntrypointMetrics


class Readiness(DependencyProvider):
    """A callable returning {check: why it failed} (empty: ready) for /health/ready."""

    def setup(self):
        self.client = connect(setting(self.container.config, MONGO_URI))
        self.amqp_uri = setting(self.container.config, AMQP_URI)

    def stop(self):
        self.client.close()

    def kill(self):
        self.client.close()

    def get_dependency(self, worker_ctx):
        return self.problems

    def problems(self):
        found = {}
        try:
            self.client.admin.command("ping")
        except Exception as exc:  # any failure means "not ready", and says why
            found["mongo"] = str(exc)[:200]
        try:
            with Connection(self.amqp_uri, connect_timeout=3) as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        except Exception as exc:
            found["rabbitmq"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        for timer in self.container.entrypoints:
            if isinstance(timer, DueTimer):
                age = timer.read_age()
                if age is None or age > timer.stale_after():
                    found[f"due_timer:{timer.collection}"] = (
                        "never read its index" if age is None else f"index last read {age:.0f} s ago")
        return found


class OpsEndpoints:
    """Mixed into each service class; nameko picks up inherited entrypoints."""

    mongo_ping = MongoHealth()
    bus_queues = DeclareQueues()
    entrypoint_metrics = EntrypointMetrics()  # RED per entrypoint, timers' heartbeats
    openapi_spec = None  # a service with an HTTP API sets its OpenAPI document here

    @http("GET", "/openapi.json", access=PUBLIC)
    def openapi(self, request):
        if self.openapi_spec is None:
            return json_response(404, {"error": {"code": "not_found", "message": "this service has no HTTP API"}})
        return json_response(200, self.openapi_spec)

    @http("GET", "/metrics", access=PUBLIC)
    def metrics(self, request):
        return metrics_response(request)

    readiness = Readiness()

    @http("GET", "/health", access=PUBLIC)
    def health(self, request):
        try:
            self.mongo_ping()
        except Exception as exc:  # any failure means "not ready", and says why
            return json_response(503, {"status": "unavailable", "mongo": str(exc)[:200]})
        return json_response(200, {"status": "ok", "service": self.name})

    @http("GET", "/health/live", access=PUBLIC)
    def liveness(self, request):
        """The process answers: restart it only if this fails."""
        return json_response(200, {"status": "ok", "service": self.name})

    @http("GET", "/health/ready", access=PUBLIC)
    def ready(self, request):
        """Ready to take work: MongoDB answers, RabbitMQ accepts a connection, and every
        due-work timer (routing's deadlines) read its index recently."""
        problems = self.readiness()
        body = {"status": "unavailable" if problems else "ok", "service": self.name, "checks": problems or {}}
        return json_response(503 if problems else 200, body)


class IdentityStores(DependencyProvider):
    """The container's Identity (organisation copy, integrations), for handlers that
    update them."""

    identity = Identity()

    def get_dependency(self, worker_ctx):
        return self.identity


class FollowsOrganisation:
    """For every service but routing (which owns them): keep this service's copy of the
    organisation (org_changed) and of the integration clients and their key digests
    (integration_changed), so it authenticates and scopes every caller on its own."""

    identity_stores = IdentityStores()

    @event_handler(ev.ROUTING, ev.ORG_CHANGED)
    def on_org_changed(self, payload):
        if self.identity_stores.org_store.apply(ev.load(ev.ORG_CHANGED, payload)):
            self.identity_stores.refresh()

    @event_handler(ev.ROUTING, ev.INTEGRATION_CHANGED)
    def on_integration_changed(self, payload):
        self.identity_stores.integrations.apply(ev.load(ev.INTEGRATION_CHANGED, payload))


class AuditsPersonalData:
    """For services whose answers carry personal data: the log of who saw it."""

    personal_data_reads = Repository(PersonalDataReads)

    @http("GET", "/v1/audit/personal-data-reads", access=requires(Permission.AUDIT_READ))
    def list_personal_data_reads(self, request):
        limit = int_arg(request, "limit", 100, 1, 1000)
        return json_response(200, {"reads": self.personal_data_reads.recent(limit)})
