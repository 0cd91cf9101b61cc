"""Followup entrypoints: schedule revisits on case_resolved, announce them when due,
record their outcome."""
import logging

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.bus import event_handler, timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.access import scope_of
from closeloop_shared.auth import CurrentOrganisation
from closeloop_shared.contract import Permission as P
from closeloop_shared.http import (
    HttpError, http, json_response, load_or_422, read_json, required_arg, requires)
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import AuditsPersonalData, FollowsOrganisation, OpsEndpoints
from services.followup import revisits
from services.followup.repository import RevisitRepository
from services.followup.schemas import OPENAPI, OutcomeIn

log = logging.getLogger(__name__)
MAX_CLAIMS_PER_TICK = 200
OUTCOME_IN = OutcomeIn()


class FollowupService(OpsEndpoints, FollowsOrganisation, AuditsPersonalData):
    name = ev.FOLLOWUP
    openapi_spec = OPENAPI

    revisits = Repository(RevisitRepository)
    org = CurrentOrganisation()
    dispatch = EventDispatcher()
    config = Config()

    @event_handler(ev.ROUTING, ev.CASE_RESOLVED)
    def on_case_resolved(self, payload):
        resolved = ev.load(ev.CASE_RESOLVED, payload)
        revisit = revisits.schedule(resolved, setting(self.config, keys.REVISIT_DELAY_SECONDS), utcnow())
        if self.revisits.insert(revisit):
            log.info("revisit scheduled", extra={"case_number": revisit["case_number"],
                                                 "due_at": revisit["due_at"].isoformat()})

    @event_handler(ev.ROUTING, ev.CASE_REOPENED)
    def on_case_reopened(self, payload):
        reopened = ev.load(ev.CASE_REOPENED, payload)
        if self.revisits.cancel_open(reopened["case_id"], utcnow()):
            log.info("open revisits cancelled", extra={"case_number": reopened["case_number"]})

    @timer(keys.REVISIT_SCAN_INTERVAL_SECONDS)
    def announce_due_revisits(self):
        now = utcnow()
        for _ in range(MAX_CLAIMS_PER_TICK):
            event = self.revisits.claim_due(now, revisits.due_event)
            if event is None:
                break
            self.revisits.outbox.flush(event["payload"]["revisit_id"], [event], self.dispatch)

    @timer(keys.OUTBOX_RELAY_INTERVAL_SECONDS)
    def relay_outbox(self):
        self.revisits.outbox.relay(self.dispatch, utcnow())

    @http("GET", "/v1/revisits", access=requires(P.REVISIT_READ))
    def list_revisits(self, request):
        case_id = required_arg(request, "case_id")
        scope = scope_of(request.principal, self.org)
        found = [r for r in self.revisits.for_case(case_id) if scope.allows(r["store_id"])]
        self.personal_data_reads.record(request.principal, "revisit", [r["_id"] for r in found])
        return json_response(200, {"revisits": [revisits.view(r, request.principal) for r in found]})

    @http("POST", "/v1/revisits/<string:revisit_id>/outcome", access=requires(P.REVISIT_RECORD))
    def record_outcome(self, request, revisit_id):
        body = load_or_422(OUTCOME_IN, read_json(request, setting(self.config, keys.MAX_BODY_BYTES)))
        revisit = self.revisits.get(revisit_id)
        if revisit is None or not scope_of(request.principal, self.org).allows(revisit["store_id"]):
            raise HttpError(404, "revisit_not_found", f"no revisit {revisit_id}")
        now = utcnow()
        changes, event = revisits.outcome(revisit, body["score"], body["comment"],
                                          request.principal.actor, now)
        updated = self.revisits.complete(revisit_id, changes, event, now)
        if updated is None:
            raise HttpError(409, "already_recorded", "this revisit already has an outcome or was cancelled")
        self.revisits.outbox.flush(revisit_id, [event], self.dispatch)
        return json_response(200, revisits.view(updated, request.principal))
