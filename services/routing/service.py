"""Routing entrypoints: route new cases, staff actions over HTTP, the SLA clock."""
import logging

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.bus import Unprocessable, event_handler, timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.http import (
    HttpError, http, int_arg, json_response, load_or_422, read_json)
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import OpsEndpoints, OrgChart
from services.routing import flows, schemas
from services.routing.lifecycle import ActionRefused
from services.routing.metrics import ESCALATIONS, FIRST_RESPONSE_SECONDS, SLA_BREACHES
from services.routing.repository import CaseRepository
from services.routing.sla import Policy

log = logging.getLogger(__name__)
FIRST_RESPONSE_IN = schemas.FirstResponseIn()
REPORT_IN = schemas.ReportIn()
RESOLVE_IN = schemas.ResolveIn()
REOPEN_IN = schemas.ReopenIn()


class RoutingService(OpsEndpoints):
    name = ev.ROUTING
    openapi_spec = schemas.OPENAPI

    cases = Repository(CaseRepository)
    org = OrgChart()
    dispatch = EventDispatcher()
    config = Config()

    @property
    def policy(self):
        return Policy.from_seconds(*(setting(self.config, key) for key in (
            keys.SLA_FIRST_RESPONSE_SECONDS, keys.SLA_RESOLUTION_SECONDS,
            keys.SLA_REPORT_SECONDS, keys.ESCALATION_STEP_SECONDS)))

    # -- events in --------------------------------------------------------------

    @event_handler(ev.INTAKE, ev.CASE_SUBMITTED)
    def on_case_submitted(self, payload):
        submitted = ev.load(ev.CASE_SUBMITTED, payload)
        if self.org.store(submitted["store_id"]) is None:
            raise Unprocessable(f"unknown store {submitted['store_id']!r}")
        case, events = flows.route(self.cases, self.org, self.policy, submitted, utcnow())
        self._publish(case, events)
        log.info("case routed", extra={"case_number": case["case_number"],
                                       "category": case["category"], "severity": case["severity"]})

    @event_handler(ev.FOLLOWUP, ev.REVISIT_RECORDED)
    def on_revisit_recorded(self, payload):
        revisit = ev.load(ev.REVISIT_RECORDED, payload)
        case, events = flows.apply_revisit(self.cases, self.policy, revisit, utcnow())
        if case:
            self._publish(case, events)

    # -- the SLA clock ----------------------------------------------------------

    @timer(keys.SLA_SCAN_INTERVAL_SECONDS)
    def check_deadlines(self):
        for case, decision, events in flows.check_deadlines(self.cases, self.org, self.policy, utcnow()):
            for clock in decision.newly_breached:
                SLA_BREACHES.labels(clock).inc()
            if decision.escalate:
                ESCALATIONS.labels(decision.reason).inc()
                log.warning("case escalated", extra={
                    "case_number": case["case_number"], "reason": decision.reason,
                    "rung": case["rung"]})
            self._publish(case, events)

    @timer(keys.OUTBOX_RELAY_INTERVAL_SECONDS)
    def relay_outbox(self):
        self.cases.outbox.relay(self.dispatch, utcnow())

    # -- HTTP ---------------------------------------------------------------------

    @http("GET", "/v1/cases/<string:case_id>")
    def get_case(self, request, case_id):
        case = self.cases.get(case_id)
        if case is None:
            raise HttpError(404, "case_not_found", f"no case {case_id}")
        return json_response(200, flows.public_view(case))

    @http("GET", "/v1/cases")
    def list_cases(self, request):
        status = request.args.get("status")
        if status and status not in ev.CASE_STATUSES:
            raise HttpError(422, "validation_failed", "unknown status",
                            {"status": [f"Must be one of: {', '.join(ev.CASE_STATUSES)}."]})
        found = self.cases.find(request.args.get("store"), status, int_arg(request, "limit", 50, 1, 200))
        return json_response(200, {"cases": [flows.public_view(c) for c in found]})

    @http("POST", "/v1/cases/<string:case_id>/first-response")
    def record_first_response(self, request, case_id):
        body = load_or_422(FIRST_RESPONSE_IN, self._body(request))
        case = self._run(flows.respond, self.cases, self.policy, case_id,
                         body["actor"], body["note"], utcnow())
        return json_response(200, flows.public_view(case))

    @http("POST", "/v1/cases/<string:case_id>/report")
    def file_report(self, request, case_id):
        body = load_or_422(REPORT_IN, self._body(request))
        case = self._run(flows.file_report, self.cases, self.policy, case_id,
                         body["actor"], body["summary"], utcnow())
        return json_response(200, flows.public_view(case))

    @http("POST", "/v1/cases/<string:case_id>/resolve")
    def resolve(self, request, case_id):
        body = load_or_422(RESOLVE_IN, self._body(request))
        case = self._run(flows.resolve, self.cases, self.org, self.policy, case_id,
                         body["remedy"], body["actor"], body["note"], utcnow())
        return json_response(200, flows.public_view(case))

    @http("POST", "/v1/cases/<string:case_id>/reopen")
    def reopen(self, request, case_id):
        body = load_or_422(REOPEN_IN, self._body(request))
        case = self._run(flows.reopen, self.cases, self.policy, case_id,
                         body["actor"], body["reason"], "staff", utcnow())
        return json_response(200, flows.public_view(case))

    # -- helpers --------------------------------------------------------------------

    def _body(self, request):
        return read_json(request, setting(self.config, keys.MAX_BODY_BYTES))

    def _run(self, flow, *args):
        try:
            case, events = flow(*args)
        except flows.CaseNotFound as exc:
            raise HttpError(404, "case_not_found", f"no case {exc}")
        except ActionRefused as refused:
            status = 422 if refused.code == "validation_failed" else 409
            raise HttpError(status, refused.code, refused.message,
                            {refused.field: [refused.message]} if refused.field else None)
        except flows.ConcurrentUpdate:
            raise HttpError(409, "concurrent_update", "the case changed meanwhile; retry")
        for event in events:
            if event["type"] == ev.CASE_FIRST_RESPONDED:
                FIRST_RESPONSE_SECONDS.observe(event["payload"]["seconds_to_respond"])
        self._publish(case, events)
        return case

    def _publish(self, case, events):
        self.cases.outbox.flush(case["_id"], events, self.dispatch)
