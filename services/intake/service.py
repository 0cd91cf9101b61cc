"""Intake entrypoints: HTTP and bus in, case_submitted out."""
import logging
import math
import time

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher
from nameko.extensions import DependencyProvider

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.access import Principal, Scope, scope_of
from closeloop_shared.auth import CurrentOrganisation
from closeloop_shared.bus import INBOUND_QUEUE, Unprocessable, consume_attributed, event_handler, timer
from closeloop_shared.cache import TimedCache
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.contract import Permission as P
from closeloop_shared.http import HttpError, http, json_response, load_or_422, read_json, requires
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import FollowsOrganisation, OpsEndpoints
from services.intake import cases, flows
from services.intake.limits import RateLimiter
from services.intake.metrics import FEEDBACK_RECEIVED
from services.intake.repository import FeedbackRepository
from services.intake.schemas import OPENAPI, FeedbackIn

log = logging.getLogger(__name__)
FEEDBACK_IN = FeedbackIn()
# (integrations collection, AMQP user) -> the active integration publishing as that user,
# or None; a change shows within REFERENCE_CACHE_SECONDS (intake only keeps a copy: the
# writes are routing's, announced by integration_changed).
PUBLISHERS = TimedCache()


class SubmissionLimiter(DependencyProvider):
    """One rate limiter per container, shared by its workers."""

    def setup(self):
        config = self.container.config
        self.limiter = RateLimiter(setting(config, keys.INTAKE_RATE_PER_MINUTE),
                                   setting(config, keys.INTAKE_RATE_BURST))

    def get_dependency(self, worker_ctx):
        return self.limiter


class IntakeService(OpsEndpoints, FollowsOrganisation):
    name = ev.INTAKE
    openapi_spec = OPENAPI

    feedback = Repository(FeedbackRepository)
    org = CurrentOrganisation()
    limiter = SubmissionLimiter()
    dispatch = EventDispatcher()
    config = Config()

    @http("POST", "/v1/feedback", access=requires(P.FEEDBACK_SUBMIT))
    def submit_feedback(self, request):
        principal = request.principal
        wait = self.limiter.wait(principal.subject, time.monotonic())
        if wait:
            raise HttpError(429, "rate_limited", "too many submissions from this client; slow down",
                            headers={"Retry-After": str(math.ceil(wait))})
        body = read_json(request, setting(self.config, keys.MAX_BODY_BYTES))
        submission = load_or_422(FEEDBACK_IN, body)
        try:
            store = flows.store_for(self.org, scope_of(principal, self.org), submission["store_id"])
        except flows.StoreRefused as refused:
            raise HttpError(422, refused.code, refused.message, {"store_id": [refused.message]})
        case, created = self._accept(submission, store, "http", cases.submitter(principal))
        return json_response(201 if created else 200, cases.receipt(case, created))

    @http("GET", "/v1/feedback/<string:case_id>", access=requires(P.FEEDBACK_READ))
    def get_feedback(self, request, case_id):
        case = self.feedback.get(case_id)
        if case is None or not scope_of(request.principal, self.org).allows(case["store_id"], case.get("submitted_by")):
            raise HttpError(404, "case_not_found", f"no case {case_id}")
        return json_response(200, cases.receipt(case, created=True)
                             | {"published": not case.get("outbox_pending")})

    @consume_attributed(INBOUND_QUEUE)
    def on_feedback_submitted(self, body, publisher):
        """Feedback from other systems on closeloop.inbound, attributed by the broker-
        validated AMQP user: a registered integration's bus user (scoped to its brand),
        or a trusted publisher (INBOUND_TRUSTED_PUBLISHERS, e.g. the local run's guest)."""
        submission = FEEDBACK_IN.load(body)  # ValidationError: dead-lettered with the reason
        principal = self._bus_principal(publisher)
        scope = scope_of(principal, self.org) if principal else Scope(None)
        try:
            store = flows.store_for(self.org, scope, submission["store_id"])
        except flows.StoreRefused as refused:
            raise Unprocessable(refused.message)
        self._accept(submission, store, "bus", cases.submitter(principal, publisher))

    @event_handler(ev.ROUTING, ev.INTEGRATION_CHANGED)
    def on_integration_changed(self, payload):
        """As every service keeps its copy; then this replica forgets the publishers it
        knew, so a revoked integration is refused at once here (elsewhere within
        REFERENCE_CACHE_SECONDS)."""
        super().on_integration_changed(payload)
        PUBLISHERS.forget(self.identity_stores.integrations.collection.full_name)

    @event_handler(ev.FOLLOWUP, ev.REVISIT_COMPLAINT_VOICED)
    def on_revisit_complaint_voiced(self, payload):
        """A complaint voiced during a revisit becomes a case like any other, submitted
        by the staff member who heard it; its external reference is the revisit, so a
        redelivery yields the same case."""
        voiced = ev.load(ev.REVISIT_COMPLAINT_VOICED, payload)
        submission = FEEDBACK_IN.load(cases.revisit_feedback(payload))
        try:
            store = flows.store_for(self.org, Scope(None), submission["store_id"])
        except flows.StoreRefused as refused:
            raise Unprocessable(refused.message)
        self._accept(submission, store, "revisit", cases.staff_submitter(voiced["voiced_by"]))

    @timer(keys.OUTBOX_RELAY_INTERVAL_SECONDS)
    def relay_unpublished_cases(self):
        relayed = self.feedback.outbox.relay(self.dispatch, utcnow())
        if relayed:
            log.warning("relayed unpublished cases", extra={"count": relayed})

    def _bus_principal(self, publisher):
        """The integration behind an AMQP user; None for a trusted publisher;
        Unprocessable (dead-lettered) for anyone else."""
        client = self._integration_of(publisher) if publisher else None
        if client is not None:
            principal = Principal.for_integration(client)
            if not principal.can(P.FEEDBACK_SUBMIT):
                raise Unprocessable(f"integration {principal.subject} may not submit feedback")
            return principal
        trusted = [u.strip() for u in str(setting(self.config, keys.INBOUND_TRUSTED_PUBLISHERS)).split(",")]
        if publisher and publisher in trusted:
            return None
        raise Unprocessable(f"feedback from an unknown publisher ({publisher or 'no user_id'}): "
                            "publish with your own AMQP user and user_id set")

    def _integration_of(self, publisher):
        """The active integration using this AMQP user (None: none), kept
        REFERENCE_CACHE_SECONDS: a bus message is not a read of `integrations` each."""
        integrations = self.identity_stores.integrations
        return PUBLISHERS.get((integrations.collection.full_name, publisher),
                              lambda: integrations.by_bus_user(publisher),
                              setting(self.config, keys.REFERENCE_CACHE_SECONDS))

    def _accept(self, submission, store, via, submitted_by):
        case, created = flows.accept(self.feedback, self.dispatch, submission, store, via,
                                     submitted_by, utcnow())
        if created:
            FEEDBACK_RECEIVED.labels(case["channel"], via).inc()
            log.info("case accepted", extra={"case_number": case["case_number"],
                                             "store_id": case["store_id"], "via": via})
        return case, created
