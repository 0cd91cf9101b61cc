"""Routing entrypoints: route new cases, staff actions over HTTP, the SLA clock, and the
organisation it owns (org chart, logins, integration keys)."""
import logging
import math
from datetime import datetime, timedelta

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher
from werkzeug.wrappers import Response

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.access import Scope, scope_of
from closeloop_shared.auth import SNAPSHOT_ID, CurrentOrganisation
from closeloop_shared.bus import Unprocessable, event_handler, timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.contract import Permission as P
from closeloop_shared.contract import CaseStatus, TriageStatus
from closeloop_shared.due import DueNotice, due_timer
from closeloop_shared.http import (
    PUBLIC, HttpError, http, int_arg, json_response, load_or_422, read_json, requires)
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import AuditsPersonalData, IdentityStores, OpsEndpoints
from services.routing import deadline_flows, flows, identity_flows, integrations, organisation, schemas
from services.routing import duty, duty_flows
from services.routing.dependencies import TokenSigner
from services.routing import case_flows, remedies
from services.routing.lifecycle import ActionRefused
from services.routing.metrics import (
    BREACH_DETECTION_LAG, ESCALATIONS, FIRST_RESPONSE_SECONDS, SLA_BREACHES)
from services.routing.organisation import OrgRefused
from services.routing.repository import (
    AccountRepository, CaseRepository, CorrectionRepository, IntegrationRepository, OrgRepository)
from services.routing.repository import RosterRepository
from services.routing.repository import PolicyRepository
from services.routing import calendar_flows
from services.routing.repository import CalendarRepository
from services.routing.metrics import CALENDAR_INCOMPLETE_YEARS
from services.routing import policy_flows
from services.routing.policy import PolicyInvalid, builtin_policies_from

log = logging.getLogger(__name__)
# How a refused case action answers (409 for every other code: the case's state).
REFUSAL_STATUS = {"validation_failed": 422, "above_approval_limit": 403, "own_proposal": 403, "below_rung": 403}
RESPOND_IN, NOTE_IN, REPORT_UP_IN = schemas.RespondIn(), schemas.NoteIn(), schemas.ReportUpIn()
REQUEST_INFO_IN, RESUME_IN = schemas.RequestInfoIn(), schemas.ResumeIn()
REMEDY_PROPOSAL_IN, REMEDY_DECISION_IN = schemas.RemedyProposalIn(), schemas.RemedyDecisionIn()
ROOT_CAUSE_IN, FILE_REPORT_IN = schemas.RootCauseIn(), schemas.FileReportIn()
RESOLVE_IN, LINK_IN, MERGE_IN = schemas.ResolveIn(), schemas.LinkIn(), schemas.MergeIn()
REOPEN_IN = schemas.ReopenIn()
RECLASSIFY_IN = schemas.ReclassifyIn()
LOGIN_IN = schemas.LoginIn()
PASSWORD_IN = schemas.PasswordIn()
BRAND_IN, REGION_IN, STORE_IN, STAFF_IN = (schemas.BrandIn(), schemas.RegionIn(), schemas.StoreIn(),
                                           schemas.StaffIn())
STORE_PATCH, STAFF_PATCH = schemas.StorePatch(partial=True), schemas.StaffPatch(partial=True)
INTEGRATION_IN = schemas.IntegrationIn()
ROSTER_IN, REASSIGN_IN = schemas.RosterIn(), schemas.ReassignIn()
SLA_POLICY_IN, SLA_POLICY_CHANGE_IN = schemas.SlaPolicyIn(), schemas.SlaPolicyChangeIn()
SLA_POLICY_DEACTIVATE_IN = schemas.SlaPolicyDeactivateIn()
STORE_CALENDAR_IN, CLOSURE_IN, BRAND_OVERRIDES_IN = (
    schemas.StoreCalendarIn(), schemas.ClosureIn(), schemas.BrandOverridesIn())
DEADLINES = ("cases", "next_check_at")  # CaseRepository's collection and its indexed due field


class RoutingService(OpsEndpoints, AuditsPersonalData):
    name = ev.ROUTING
    openapi_spec = schemas.OPENAPI

    cases = Repository(CaseRepository)
    org_store = Repository(OrgRepository)
    integrations = Repository(IntegrationRepository)
    accounts = Repository(AccountRepository)
    corrections = Repository(CorrectionRepository)
    rosters = Repository(RosterRepository)
    sla_policies = Repository(PolicyRepository)
    calendars = Repository(CalendarRepository)
    org = CurrentOrganisation()
    identity = IdentityStores()
    signer = TokenSigner()
    dispatch = EventDispatcher()
    config = Config()
    deadline_written = DueNotice(*DEADLINES)

    # -- events in --------------------------------------------------------------

    @event_handler(ev.INTAKE, ev.CASE_SUBMITTED)
    def on_case_submitted(self, payload):
        submitted = ev.load(ev.CASE_SUBMITTED, payload)
        if self.org.store(submitted["store_id"]) is None:
            raise Unprocessable(f"unknown store {submitted['store_id']!r}")
        window = timedelta(seconds=setting(self.config, keys.DUPLICATE_WINDOW_SECONDS))
        case, events = flows.route(self.cases, self.org, self._rules(), submitted, utcnow(),
                                   setting(self.config, keys.TRIAGE_CONFIDENCE_THRESHOLD), window)
        self._publish(case, events)
        for linked, link_events in case_flows.link_duplicates(self.cases, case, utcnow(), window):
            self._publish(linked, link_events)
        log.info("case routed", extra={"case_number": case["case_number"],
                                       "category": case["category"], "severity": case["severity"]})

    @event_handler(ev.FOLLOWUP, ev.REVISIT_RECORDED)
    def on_revisit_recorded(self, payload):
        revisit = ev.load(ev.REVISIT_RECORDED, payload)
        case, events = case_flows.apply_revisit(self.cases, self._rules(), revisit, utcnow())
        if case:
            self._publish(case, events)

    @event_handler(ev.NOTIFY, ev.NOTIFICATION_FAILED)
    def on_notification_failed(self, payload):
        failed = ev.load(ev.NOTIFICATION_FAILED, payload)
        case, events = case_flows.add_task_for_failed_notification(self.cases, failed, utcnow())
        if case is None:
            log.warning("notification failed for a case routing does not have", extra={"case_id": failed["case_id"]})

    # -- the SLA clock ----------------------------------------------------------

    @due_timer(*DEADLINES)
    def check_case_due(self, case_id):
        """A case's deadline check at the moment it falls due, in one replica
        (closeloop_shared.due); the scan below is the safety net."""
        for checked in deadline_flows.check_case(self.cases, self.org, self._rules(), case_id, utcnow()):
            self._checked(*checked, detected_by="timer")

    @timer(keys.SLA_SCAN_INTERVAL_SECONDS)
    def check_deadlines(self):
        for checked in deadline_flows.check_due(self.cases, self.org, self._rules(), utcnow()):
            self._checked(*checked, detected_by="scan")

    @timer(keys.OUTBOX_RELAY_INTERVAL_SECONDS)
    def relay_outbox(self):
        for store in (self.cases, self.org_store, self.integrations):
            store.outbox.relay(self.dispatch, utcnow())

    @timer(keys.ORG_ANNOUNCE_INTERVAL_SECONDS, eager=True)
    def announce_organisation(self):
        """Re-announce the organisation at start and now and then, so a service whose
        copy is new or behind (restored from a backup, say) catches up without waiting
        for the next change. Consumers keep the newest version: repeats are no-ops."""
        self.dispatch(ev.ORG_CHANGED, ev.dump(ev.ORG_CHANGED, self.org.to_snapshot()))

    @timer(keys.ORG_ANNOUNCE_INTERVAL_SECONDS, eager=True)
    def announce_calendars(self):
        """Every store's calendar at start and now and then (followup's copy catches up,
        and the announced horizon moves on with the days); repeats are no-ops."""
        self._announce_calendars(None)

    # -- HTTP: cases ----------------------------------------------------------------

    @http("GET", "/v1/cases/<string:case_id>", access=requires(P.CASE_READ))
    def get_case(self, request, case_id):
        case = self._case_call(flows.get_case, self.cases, case_id, self._scope(request))
        self.personal_data_reads.record(request.principal, "case", [case["_id"]])
        return json_response(200, flows.public_view(case, request.principal))

    @http("GET", "/v1/cases", access=requires(P.CASE_READ))
    def list_cases(self, request):
        status = request.args.get("status")
        if status and status not in {s.value for s in CaseStatus}:
            raise HttpError(422, "validation_failed", "unknown status",
                            {"status": [f"Must be one of: {', '.join(s.value for s in CaseStatus)}."]})
        triage = request.args.get("triage")
        if triage and triage not in {t.value for t in TriageStatus}:
            raise HttpError(422, "validation_failed", "unknown triage state",
                            {"triage": [f"Must be one of: {', '.join(t.value for t in TriageStatus)}."]})
        found = self.cases.find(self._scope(request), request.args.get("store"), status,
                                int_arg(request, "limit", 50, 1, 200), triage=triage)
        self.personal_data_reads.record(request.principal, "case", [c["_id"] for c in found])
        return json_response(200, {"cases": [flows.public_view(c, request.principal) for c in found]})

    @http("GET", "/v1/cases/<string:case_id>/timeline", access=requires(P.CASE_READ))
    def get_timeline(self, request, case_id):
        before = int_arg(request, "before", None, 1, 2**62) if request.args.get("before") else None
        page = self._case_call(case_flows.timeline, self.cases, case_id, self._scope(request), before,
                               int_arg(request, "limit", 50, 1, 200))
        return json_response(200, page)

    @http("POST", "/v1/cases/<string:case_id>/acknowledge", access=requires(P.CASE_ACKNOWLEDGE))
    def acknowledge(self, request, case_id):
        return self._act(request, case_flows.acknowledge, self.cases, self.org, case_id,
                         request.principal, self._scope(request), utcnow())

    @http("POST", "/v1/cases/<string:case_id>/respond", access=requires(P.CASE_RESPOND))
    def respond(self, request, case_id):
        body = load_or_422(RESPOND_IN, self._body(request))
        return self._act(request, case_flows.respond, self.cases, self._calendar_of, case_id,
                         request.principal, self._scope(request), body["note"], utcnow())

    @http("POST", "/v1/cases/<string:case_id>/note", access=requires(P.CASE_RESPOND))
    def add_note(self, request, case_id):
        body = load_or_422(NOTE_IN, self._body(request))
        return self._act(request, case_flows.add_note, self.cases, case_id, request.principal,
                         self._scope(request), body["note"], body["evidence"], utcnow())

    @http("POST", "/v1/cases/<string:case_id>/report-to-superior", access=requires(P.CASE_RESPOND))
    def report_to_superior(self, request, case_id):
        body = load_or_422(REPORT_UP_IN, self._body(request))
        return self._act(request, case_flows.report_to_superior, self.cases, self.org, case_id,
                         request.principal, self._scope(request), body["message"], utcnow())

    @http("POST", "/v1/cases/<string:case_id>/request-info", access=requires(P.CASE_RESPOND))
    def request_info(self, request, case_id):
        body = load_or_422(REQUEST_INFO_IN, self._body(request))
        return self._act(request, case_flows.request_info, self.cases, case_id,
                         request.principal, self._scope(request), body["question"], utcnow())

    @http("POST", "/v1/cases/<string:case_id>/resume", access=requires(P.CASE_RESPOND))
    def resume(self, request, case_id):
        body = load_or_422(RESUME_IN, self._body(request))
        return self._act(request, case_flows.resume, self.cases, self._calendar_of, case_id,
                         request.principal, self._scope(request), body["answer"], utcnow())

    @http("POST", "/v1/cases/<string:case_id>/propose-remedy", access=requires(P.CASE_RESOLVE))
    def propose_remedy(self, request, case_id):
        body = load_or_422(REMEDY_PROPOSAL_IN, self._body(request))
        return self._act(request, case_flows.propose_remedy, self.cases, self.org,
                         self.remedy_rules, case_id, request.principal, self._scope(request), body, utcnow())

    @http("POST", "/v1/cases/<string:case_id>/approve-remedy", access=requires(P.CASE_REMEDY_APPROVE))
    def approve_remedy(self, request, case_id):
        return self._decide_remedy(request, case_id, True)

    @http("POST", "/v1/cases/<string:case_id>/reject-remedy", access=requires(P.CASE_REMEDY_APPROVE))
    def reject_remedy(self, request, case_id):
        return self._decide_remedy(request, case_id, False)

    @http("GET", "/v1/remedies/approval-limits", access=requires(P.CASE_RESOLVE))
    def approval_limits(self, request):
        """The limits proposals are decided with (REMEDY_APPROVAL_LIMITS_FEN): the console's
        remedy form says who must approve before anything is sent."""
        limits = self.remedy_rules.limits.by_role
        return json_response(200, {"limits_fen": {role.value: limit for role, limit in limits.items()}})

    @http("POST", "/v1/cases/<string:case_id>/root-cause", access=requires(P.CASE_ROOT_CAUSE))
    def record_root_cause(self, request, case_id):
        body = load_or_422(ROOT_CAUSE_IN, self._body(request))
        return self._act(request, case_flows.record_root_cause, self.cases, self.org, case_id,
                         request.principal, self._scope(request), body["cause"], body["actions"], body["note"],
                         utcnow())

    @http("POST", "/v1/cases/<string:case_id>/file-report", access=requires(P.CASE_REPORT))
    def file_report(self, request, case_id):
        body = load_or_422(FILE_REPORT_IN, self._body(request))
        return self._act(request, case_flows.file_report, self.cases, case_id,
                         request.principal, self._scope(request), body["summary"], utcnow())

    @http("POST", "/v1/cases/<string:case_id>/sign-off-report", access=requires(P.CASE_REPORT_SIGN_OFF))
    def sign_off_report(self, request, case_id):
        return self._act(request, case_flows.sign_off_report, self.cases, case_id,
                         request.principal, self._scope(request), utcnow())

    @http("POST", "/v1/cases/<string:case_id>/resolve", access=requires(P.CASE_RESOLVE))
    def resolve(self, request, case_id):
        body = load_or_422(RESOLVE_IN, self._body(request))
        return self._act(request, case_flows.resolve, self.cases, self.org, case_id,
                         body["remedy_id"], body["note"], request.principal, self._scope(request), utcnow())

    @http("POST", "/v1/cases/<string:case_id>/close", access=requires(P.CASE_CLOSE))
    def close(self, request, case_id):
        return self._act(request, case_flows.close, self.cases, case_id,
                         request.principal.actor, utcnow(), self._scope(request))

    @http("POST", "/v1/cases/<string:case_id>/reopen", access=requires(P.CASE_REOPEN))
    def reopen(self, request, case_id):
        body = load_or_422(REOPEN_IN, self._body(request))
        return self._act(request, case_flows.reopen, self.cases, self._rules(), case_id,
                         request.principal.actor, body["reason"], "staff", utcnow(), self._scope(request))

    @http("POST", "/v1/cases/<string:case_id>/link", access=requires(P.CASE_MERGE))
    def link(self, request, case_id):
        body = load_or_422(LINK_IN, self._body(request))
        return self._act(request, case_flows.link, self.cases, case_id, body["related"],
                         request.principal, self._scope(request), utcnow())

    @http("POST", "/v1/cases/<string:case_id>/merge", access=requires(P.CASE_MERGE))
    def merge(self, request, case_id):
        body = load_or_422(MERGE_IN, self._body(request))
        return self._act(request, case_flows.merge, self.cases, case_id, body["into"],
                         request.principal, self._scope(request), utcnow())

    @http("POST", "/v1/cases/<string:case_id>/archive", access=requires(P.CASE_ARCHIVE))
    def archive(self, request, case_id):
        return self._act(request, case_flows.archive, self.cases, case_id,
                         request.principal, self._scope(request), utcnow())

    @http("POST", "/v1/cases/<string:case_id>/category", access=requires(P.CASE_RECLASSIFY))
    def reclassify(self, request, case_id):
        body = load_or_422(RECLASSIFY_IN, self._body(request))
        return self._act(request, flows.reclassify, self.cases, self.corrections, case_id, body["category"],
                         body["reason"], request.principal, self._scope(request), utcnow())

    # -- HTTP: logins, organisation, integrations --------------------------------------

    @http("POST", "/v1/auth/login", access=PUBLIC)
    def log_in(self, request):
        body = load_or_422(LOGIN_IN, self._body(request))
        if self.signer is None:
            raise HttpError(503, "login_unavailable", "no signing key is configured (AUTH_SIGNING_KEY_FILE)")
        try:
            session = identity_flows.login(self.accounts, self.org, self.signer, body["staff_id"],
                                           body["password"], utcnow(),
                                           setting(self.config, keys.AUTH_TOKEN_TTL_SECONDS))
        except identity_flows.LoginRefused as refused:
            if refused.retry_after:
                raise HttpError(429, "account_locked", str(refused),
                                headers={"Retry-After": str(max(1, math.ceil(refused.retry_after)))})
            raise HttpError(401, "invalid_credentials", str(refused))
        log.info("staff logged in", extra={"staff_id": session["staff"]["staff_id"]})
        return json_response(200, session)

    @http("GET", "/v1/org", access=requires(P.ORG_READ))
    def get_organisation(self, request):
        return json_response(200, organisation.public_view(self.org, self._scope(request)))

    @http("POST", "/v1/org/brands", access=requires(P.ORG_MANAGE))
    def add_brand(self, request):
        body = load_or_422(BRAND_IN, self._body(request))
        return self._change_org(201, lambda o: organisation.add_brand(o, body["brand_id"], body["name"]))

    @http("POST", "/v1/org/regions", access=requires(P.ORG_MANAGE))
    def add_region(self, request):
        body = load_or_422(REGION_IN, self._body(request))
        return self._change_org(201, lambda o: organisation.add_region(
            o, body["region_id"], body["name"], body["brand_id"]))

    @http("POST", "/v1/org/stores", access=requires(P.ORG_MANAGE))
    def add_store(self, request):
        body = load_or_422(STORE_IN, self._body(request))
        return self._change_org(201, lambda o: organisation.add_store(
            o, body["store_id"], body["name"], body["region_id"], body["timezone"]))

    @http("PATCH", "/v1/org/stores/<string:store_id>", access=requires(P.ORG_MANAGE))
    def update_store(self, request, store_id):
        body = load_or_422(STORE_PATCH, self._body(request))
        return self._change_org(200, lambda o: organisation.update_store(o, store_id, body))

    @http("POST", "/v1/org/staff", access=requires(P.ORG_MANAGE))
    def add_staff(self, request):
        body = load_or_422(STAFF_IN, self._body(request))
        return self._change_org(201, lambda o: organisation.add_staff(
            o, body["staff_id"], body["name"], body["role"], body["unit_id"], body["email"]))

    @http("PATCH", "/v1/org/staff/<string:staff_id>", access=requires(P.ORG_MANAGE))
    def update_staff(self, request, staff_id):
        body = load_or_422(STAFF_PATCH, self._body(request))
        return self._change_org(200, lambda o: organisation.update_staff(o, staff_id, body),
                                hand_over_from=staff_id)

    @http("POST", "/v1/org/staff/<string:staff_id>/deactivate", access=requires(P.ORG_MANAGE))
    def deactivate_staff(self, request, staff_id):
        return self._change_org(200, lambda o: organisation.deactivate_staff(o, staff_id),
                                hand_over_from=staff_id)

    @http("POST", "/v1/org/staff/<string:staff_id>/password", access=requires(P.ORG_MANAGE))
    def set_password(self, request, staff_id):
        body = load_or_422(PASSWORD_IN, self._body(request))
        try:
            identity_flows.set_password(self.accounts, self.org, staff_id, body["password"], utcnow())
        except KeyError:
            raise HttpError(404, "staff_not_found", f"no active staff member {staff_id}")
        log.info("password set", extra={"staff_id": staff_id, "by": request.principal.subject})
        return Response(status=204)

    @http("GET", "/v1/integrations", access=requires(P.KEYS_MANAGE))
    def list_integrations(self, request):
        now = utcnow()
        return json_response(200, {"integrations": [integrations.view(c, now) for c in self.integrations.all()]})

    @http("POST", "/v1/integrations", access=requires(P.KEYS_MANAGE))
    def add_integration(self, request):
        body = load_or_422(INTEGRATION_IN, self._body(request))
        now = utcnow()
        client, events = self._org_call(identity_flows.create_client, self.integrations, self.org, body, now)
        self.integrations.outbox.flush(client["_id"], events, self.dispatch)
        return json_response(201, integrations.view(client, now))

    @http("POST", "/v1/integrations/<string:client_id>/keys", access=requires(P.KEYS_MANAGE))
    def issue_key(self, request, client_id):
        now = utcnow()
        client, key, events = self._org_call(identity_flows.issue_key, self.integrations, client_id, now)
        self.integrations.outbox.flush(client["_id"], events, self.dispatch)
        log.info("API key issued", extra={"client_id": client_id, "key_id": key.key_id,
                                          "by": request.principal.subject})
        return json_response(201, {"client_id": client_id, "key_id": key.key_id,
                                   "api_key": key.presented, "expires_at": client["keys"][-1]["expires_at"],
                                   "note": "shown this once: store it in the integration's secret store"})

    @http("DELETE", "/v1/integrations/<string:client_id>/keys/<string:key_id>", access=requires(P.KEYS_MANAGE))
    def revoke_key(self, request, client_id, key_id):
        now = utcnow()
        client, events = self._org_call(identity_flows.revoke_key, self.integrations, client_id, key_id, now)
        self.integrations.outbox.flush(client["_id"], events, self.dispatch)
        log.info("API key revoked", extra={"client_id": client_id, "key_id": key_id,
                                           "by": request.principal.subject})
        return json_response(200, integrations.view(client, now))

    # -- HTTP: rosters (duty, reassignment; the shift-end handover) ---------------------

    @timer(keys.DUTY_HANDOVER_INTERVAL_SECONDS)
    def hand_over_ended_shifts(self):
        """Every replica looks; each shift end is claimed by one (duty_flows)."""
        lookback = timedelta(seconds=setting(self.config, keys.DUTY_HANDOVER_LOOKBACK_SECONDS))
        for case, events in duty_flows.hand_over_at_shift_end(self.cases, self.rosters, self.org,
                                                              utcnow(), lookback):
            self._publish(case, events)

    @http("GET", "/v1/stores/<string:store_id>/roster", access=requires(P.ORG_READ))
    def get_roster(self, request, store_id):
        self._check_store_in_scope(request, store_id)
        return json_response(200, duty_flows.roster_view(duty_flows.roster_for(self.rosters, store_id), store_id))

    @http("PUT", "/v1/stores/<string:store_id>/roster", access=requires(P.ROSTER_MANAGE))
    def set_roster(self, request, store_id):
        body = load_or_422(ROSTER_IN, self._body(request))
        self._check_store_in_scope(request, store_id)
        try:
            roster = duty_flows.set_roster(self.rosters, self.org, store_id, body["shifts"], body["version"],
                                           request.principal.actor, utcnow())
        except duty_flows.RosterRefused as refused:
            raise HttpError(refused.status, refused.code, refused.message,
                            {refused.field: [refused.message]} if refused.field else None)
        return json_response(200, roster.to_doc())

    @http("GET", "/v1/stores/<string:store_id>/on-duty", access=requires(P.ORG_READ))
    def get_on_duty(self, request, store_id):
        self._check_store_in_scope(request, store_id)
        at = utcnow()
        if request.args.get("at"):
            try:
                at = datetime.fromisoformat(request.args["at"])
            except ValueError:
                at = None
            if at is None or at.tzinfo is None:
                raise HttpError(422, "validation_failed", "not an ISO instant with a zone",
                                {"at": ["an ISO 8601 instant with its zone, e.g. 2026-11-25T09:30:00+08:00"]})
        people = duty.on_duty(duty_flows.roster_for(self.rosters, store_id), self.org, store_id, at)
        return json_response(200, {"store_id": store_id, "at": at, "staff": [
            {"staff_id": p.staff_id, "name": p.name, "role": p.role.value} for p in people]})

    @http("POST", "/v1/cases/<string:case_id>/reassign", access=requires(P.CASE_REASSIGN))
    def reassign(self, request, case_id):
        body = load_or_422(REASSIGN_IN, self._body(request))
        try:
            return self._act(request, duty_flows.reassign, self.cases, self.org, case_id, body["staff_id"],
                             body["reason"], request.principal, self._scope(request), utcnow())
        except duty_flows.ReassignRefused as refused:
            raise HttpError(refused.status, refused.code, refused.message, {"staff_id": [refused.message]})

    def _check_store_in_scope(self, request, store_id):
        """404 for a store out of the caller's scope, as for one that does not exist."""
        if store_id not in self.org.stores or not self._scope(request).covers(store_id):
            raise HttpError(404, "store_not_found", f"no store {store_id}")

    # -- HTTP: SLA policies (chosen per new case; running cases keep the clocks they have) ------

    @property
    def sla_builtins(self):
        """The built-in policies every case falls back to, from the SLA_* config keys."""
        return builtin_policies_from(self.config)

    @http("GET", "/v1/sla-policies", access=requires(P.CASE_READ))
    def list_sla_policies(self, request):
        return json_response(200, {"policies": policy_flows.list_policies(self.sla_policies, self.sla_builtins)})

    @http("GET", "/v1/sla-policies/<string:policy_id>", access=requires(P.CASE_READ))
    def get_sla_policy(self, request, policy_id):
        return json_response(200, self._policy_call(policy_flows.get_policy, self.sla_policies,
                                                    self.sla_builtins, policy_id))

    @http("POST", "/v1/sla-policies", access=requires(P.SLA_MANAGE))
    def add_sla_policy(self, request):
        body = load_or_422(SLA_POLICY_IN, self._body(request))
        return json_response(201, self._policy_call(policy_flows.create, self.sla_policies, self.sla_builtins,
                                                    body, request.principal.actor, utcnow()))

    @http("PUT", "/v1/sla-policies/<string:policy_id>", access=requires(P.SLA_MANAGE))
    def change_sla_policy(self, request, policy_id):
        body = load_or_422(SLA_POLICY_CHANGE_IN, self._body(request))
        return json_response(200, self._policy_call(policy_flows.update, self.sla_policies, self.sla_builtins,
                                                    policy_id, body, request.principal.actor, utcnow()))

    @http("POST", "/v1/sla-policies/<string:policy_id>/deactivate", access=requires(P.SLA_MANAGE))
    def deactivate_sla_policy(self, request, policy_id):
        body = load_or_422(SLA_POLICY_DEACTIVATE_IN, self._body(request))
        return json_response(200, self._policy_call(
            policy_flows.deactivate, self.sla_policies, self.sla_builtins, policy_id, body["version"],
            request.principal.actor, utcnow()))

    def _policy_call(self, flow, *args):
        try:
            return flow(*args)
        except policy_flows.PolicyNotFound as exc:
            raise HttpError(404, "policy_not_found", f"no SLA policy {exc}")
        except PolicyInvalid as invalid:
            raise HttpError(422, "validation_failed", invalid.message, {invalid.field: [invalid.message]})
        except policy_flows.PolicyConflict as conflict:
            raise HttpError(409, conflict.code, conflict.message)

    # -- HTTP: calendars (business hours per store, brand overrides, official holiday lists) ----

    _calendar_years_warned = set()  # per process: warn once for each year found missing

    @timer(keys.CALENDAR_CHECK_INTERVAL_SECONDS, eager=True)
    def check_calendar_years(self):
        """This year's and next year's official lists must be known ahead: until they
        are, business time there counts on weekly hours (metric + one warning a year)."""
        today = utcnow().date()
        missing = calendar_flows.incomplete_years(self.calendars, (today.year, today.year + 1))
        CALENDAR_INCOMPLETE_YEARS.set(len(missing))
        for year in sorted(missing - self._calendar_years_warned):
            self._calendar_years_warned.add(year)
            log.warning("business calendar incomplete: no official holiday list for the year, weekly "
                        "hours used; publish it with PUT /v1/calendars/years/<year>", extra={"year": year})

    @http("GET", "/v1/calendars/stores/<string:store_id>", access=requires(P.ORG_READ))
    def get_store_calendar(self, request, store_id):
        return json_response(200, self._store_calendar(request, store_id))

    @http("PUT", "/v1/calendars/stores/<string:store_id>", access=requires(P.CALENDAR_MANAGE))
    def set_store_calendar(self, request, store_id):
        body = load_or_422(STORE_CALENDAR_IN, self._body(request))
        self._calendar_call(calendar_flows.save_store_hours, self.calendars, self.org, self._scope(request),
                            store_id, body, request.principal.actor, utcnow())
        self._announce_calendars([store_id])
        log.info("store hours set", extra={"store_id": store_id, "by": request.principal.subject})
        return json_response(200, self._store_calendar(request, store_id))

    @http("POST", "/v1/calendars/stores/<string:store_id>/closures", access=requires(P.CALENDAR_MANAGE))
    def add_store_closure(self, request, store_id):
        body = load_or_422(CLOSURE_IN, self._body(request))
        closure = self._calendar_call(calendar_flows.add_closure, self.calendars, self.org, self._scope(request),
                                      store_id, body, request.principal.actor, utcnow())
        self._announce_calendars([store_id])
        return json_response(201, {"closure": closure, "calendar": self._store_calendar(request, store_id)})

    @http("GET", "/v1/calendars/brands/<string:brand_id>/overrides", access=requires(P.ORG_READ))
    def get_brand_overrides(self, request, brand_id):
        return json_response(200, self._calendar_call(calendar_flows.brand_view, self.calendars, self.org,
                                                      request.principal, brand_id))

    @http("PUT", "/v1/calendars/brands/<string:brand_id>/overrides", access=requires(P.CALENDAR_ADMIN))
    def set_brand_overrides(self, request, brand_id):
        body = load_or_422(BRAND_OVERRIDES_IN, self._body(request))
        self._calendar_call(calendar_flows.save_brand_overrides, self.calendars, self.org, request.principal,
                            brand_id, body["overrides"], utcnow())
        self._announce_calendars(self.org.stores_of_brand(brand_id))
        return json_response(200, calendar_flows.brand_view(self.calendars, self.org, request.principal, brand_id))

    @http("GET", "/v1/calendars/years", access=requires(P.ORG_READ))
    def list_calendar_years(self, request):
        return json_response(200, calendar_flows.years_view(self.calendars, utcnow().date()))

    @http("PUT", "/v1/calendars/years/<int:year>", access=requires(P.CALENDAR_ADMIN))
    def publish_calendar_year(self, request, year):
        body = self._body(request)
        if not 2000 <= year <= 2100:
            raise HttpError(422, "validation_failed", "year out of range", {"year": ["Must be from 2000 to 2100."]})
        lists = load_or_422(schemas.OfficialYearIn(year), body)
        published = calendar_flows.save_year(self.calendars, year, lists, request.principal.actor, utcnow())
        log.info("official holiday list published", extra={"year": year, "by": request.principal.subject})
        self.check_calendar_years()
        self._announce_calendars(None)
        return json_response(200, published)

    def _store_calendar(self, request, store_id):
        return self._calendar_call(calendar_flows.store_view, self.calendars, self.org, self._scope(request),
                                   store_id, utcnow().date(), setting(self.config, keys.CALENDAR_DEFAULT_HOURS))

    def _announce_calendars(self, store_ids, org=None):
        """store_calendar_changed for these stores (None: all), as `org` (by default the
        current organisation) places them; one lost to a broker outage is made good by
        the next announce_calendars."""
        for payload in calendar_flows.announcements(self.calendars, org or self.org, store_ids, utcnow(),
                                                    setting(self.config, keys.CALENDAR_DEFAULT_HOURS)):
            self.dispatch(ev.STORE_CALENDAR_CHANGED, ev.dump(ev.STORE_CALENDAR_CHANGED, payload))

    def _calendar_call(self, flow, *args):
        try:
            return flow(*args)
        except calendar_flows.CalendarNotFound as exc:
            raise HttpError(404, "calendar_not_found", f"no store or brand {exc} in your scope")

    # -- helpers --------------------------------------------------------------------

    def _body(self, request):
        return read_json(request, setting(self.config, keys.MAX_BODY_BYTES))

    def _scope(self, request):
        return scope_of(request.principal, self.org)

    def _case_call(self, flow, *args):
        try:
            return flow(*args)
        except flows.CaseNotFound as exc:
            raise HttpError(404, "case_not_found", f"no case {exc}")
        except flows.ActionForbidden as exc:
            raise HttpError(403, "forbidden", str(exc))
        except ActionRefused as refused:
            details = {"allowed_actions": refused.allowed} if refused.allowed is not None else None
            raise HttpError(REFUSAL_STATUS.get(refused.code, 409), refused.code, refused.message,
                            {refused.field: [refused.message]} if refused.field else None, details=details)
        except flows.ConcurrentUpdate:
            raise HttpError(409, "concurrent_update", "the case changed meanwhile; retry")

    def _decide_remedy(self, request, case_id, approve):
        body = load_or_422(REMEDY_DECISION_IN, self._body(request))
        return self._act(request, case_flows.decide_remedy, self.cases, self.remedy_rules, case_id,
                         body["remedy_id"], approve, body["reason"], request.principal, self._scope(request),
                         utcnow())

    @property
    def remedy_rules(self):
        return case_flows.RemedyRules(
            remedies.Limits.from_config(setting(self.config, keys.REMEDY_APPROVAL_LIMITS_FEN)),
            timedelta(seconds=setting(self.config, keys.REPEAT_REMEDY_WINDOW_SECONDS)),
            setting(self.config, keys.REPEAT_REMEDY_THRESHOLD))

    def _act(self, request, flow, *args):
        """Runs a case action and publishes what it caused: on the case, and on the
        other cases a link or a merge wrote (the flow's optional third result)."""
        case, events, *others = self._case_call(flow, *args)
        for other, other_events in (others[0] if others else ()):
            self._publish(other, other_events)
        for event in events:
            if event["type"] == ev.CASE_FIRST_RESPONDED:
                FIRST_RESPONSE_SECONDS.observe(event["payload"]["seconds_to_respond"])
        self._publish(case, events)
        return json_response(200, flows.public_view(case, request.principal))

    def _org_call(self, flow, *args):
        try:
            return flow(*args)
        except OrgRefused as refused:
            raise HttpError(refused.status, refused.code, refused.message,
                            {refused.field: [refused.message]} if refused.field else None)
        except identity_flows.ConcurrentChange as exc:
            raise HttpError(409, "concurrent_update", str(exc))

    def _change_org(self, status, change, hand_over_from=None):
        now, before = utcnow(), self.org
        changed, events = self._org_call(identity_flows.change_organisation, self.org_store,
                                         before, change, now)
        self.org_store.outbox.flush(SNAPSHOT_ID, events, self.dispatch)
        self.identity.refresh()
        moved = calendar_flows.stores_to_announce(before, changed)
        if moved:  # a new time zone moves every open hour: followup's copy must not wait
            try:
                self._announce_calendars(moved, changed)
            except Exception as exc:  # stored already; the periodic announcement makes it good
                log.warning("store calendars not announced", extra={"stores": moved, "error": str(exc)[:200]})
        handed = []
        if hand_over_from and organisation.left_post(before, changed, hand_over_from):
            for case, case_events in flows.hand_over_cases_of(self.cases, changed, hand_over_from, now):
                if case_events:
                    self._publish(case, case_events)
                    handed.append(case["case_number"])
        return json_response(status, {**organisation.public_view(changed, Scope(None)),
                                      "cases_handed_over": handed})

    def _publish(self, case, events):
        self.cases.outbox.flush(case["_id"], events, self.dispatch)
        self.deadline_written(case["_id"], case.get("next_check_at"))  # a near one is timed at once

    def _calendar_of(self, store_id):
        return calendar_flows.calendar_for(self.calendars, self.org, store_id)

    def _rules(self):
        return deadline_flows.case_rules(self.config, self.cases, self.sla_policies, self.calendars,
                                         self.rosters, self.org)

    def _checked(self, case, events, detected_by):
        self._publish(case, events)
        for event in events:
            payload = event["payload"]
            if event["type"] == ev.CASE_DEADLINE_BREACHED:
                SLA_BREACHES.labels(payload["clock"]).inc()
            elif event["type"] == ev.CASE_ESCALATED:
                ESCALATIONS.labels(payload["reason"]).inc()
                log.warning("case escalated", extra={
                    "case_number": case["case_number"], "reason": payload["reason"],
                    "rung": payload["rung"], "detected_by": detected_by})
                if payload.get("due_at"):
                    due_at = ev.load(ev.CASE_ESCALATED, payload)["due_at"]
                    BREACH_DETECTION_LAG.labels(detected_by).observe((utcnow() - due_at).total_seconds())
