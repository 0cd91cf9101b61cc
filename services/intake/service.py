"""Intake entrypoints: HTTP and bus in, case_submitted out."""
import logging

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher

from closeloop_shared.bus import INBOUND_QUEUE, Unprocessable, consume, timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import MAX_BODY_BYTES, OUTBOX_RELAY_INTERVAL_SECONDS, setting
from closeloop_shared.events import INTAKE
from closeloop_shared.http import HttpError, http, json_response, load_or_422, read_json
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import OpsEndpoints, OrgChart
from services.intake import cases, flows
from services.intake.metrics import FEEDBACK_RECEIVED
from services.intake.repository import FeedbackRepository
from services.intake.schemas import OPENAPI, FeedbackIn

log = logging.getLogger(__name__)
FEEDBACK_IN = FeedbackIn()


class IntakeService(OpsEndpoints):
    name = INTAKE
    openapi_spec = OPENAPI

    feedback = Repository(FeedbackRepository)
    org = OrgChart()
    dispatch = EventDispatcher()
    config = Config()

    @http("POST", "/v1/feedback")
    def submit_feedback(self, request):
        body = read_json(request, setting(self.config, MAX_BODY_BYTES))
        submission = load_or_422(FEEDBACK_IN, body)
        store = self.org.store(submission["store_id"])
        if store is None:
            raise HttpError(422, "unknown_store", "no such store in the org chart",
                            {"store_id": [f"unknown store {submission['store_id']!r}"]})
        case, created = self._accept(submission, store, via="http")
        return json_response(201 if created else 200, cases.receipt(case, created))

    @http("GET", "/v1/feedback/<string:case_id>")
    def get_feedback(self, request, case_id):
        case = self.feedback.get(case_id)
        if case is None:
            raise HttpError(404, "case_not_found", f"no case {case_id}")
        return json_response(200, cases.receipt(case, created=True)
                             | {"published": not case.get("outbox_pending")})

    @consume(INBOUND_QUEUE)
    def on_feedback_submitted(self, body):
        submission = FEEDBACK_IN.load(body)  # ValidationError: dead-lettered with the reason
        store = self.org.store(submission["store_id"])
        if store is None:
            raise Unprocessable(f"unknown store {submission['store_id']!r}")
        self._accept(submission, store, via="bus")

    @timer(OUTBOX_RELAY_INTERVAL_SECONDS)
    def relay_unpublished_cases(self):
        relayed = self.feedback.outbox.relay(self.dispatch, utcnow())
        if relayed:
            log.warning("relayed unpublished cases", extra={"count": relayed})

    def _accept(self, submission, store, via):
        case, created = flows.accept(self.feedback, self.dispatch, submission, store, via, utcnow())
        if created:
            FEEDBACK_RECEIVED.labels(case["channel"], via).inc()
            log.info("case accepted", extra={"case_number": case["case_number"],
                                             "store_id": case["store_id"], "via": via})
        return case, created
