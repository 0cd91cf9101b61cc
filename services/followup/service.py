"""Followup entrypoints: schedule revisits on case_resolved, announce them when due,
record their outcome; the tiered revisit programme (customer profiles and tiers, due
revisits claimed by one replica, attempts and outcomes, completion rates)."""
import logging

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.bus import (
    APPOINTMENT_BOOKED_KEY, APPOINTMENT_CANCELLED_KEY, APPOINTMENT_CHANGED_KEY, APPOINTMENT_QUEUES,
    VISIT_COMPLETED_QUEUE, Unprocessable, consume, event_handler, timer)
from closeloop_shared.due import due_timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.access import scope_of
from closeloop_shared.auth import CurrentOrganisation
from closeloop_shared.contract import Permission as P
from closeloop_shared.contract import AppointmentStatus, RevisitTaskStatus
from closeloop_shared.http import (
    HttpError, http, json_response, load_or_422, read_json, required_arg, requires)
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import AuditsPersonalData, FollowsOrganisation, OpsEndpoints
from services.followup import flows, profiles, revisits, scripts
from services.followup.repository import (
    AppointmentRepository, CustomerRepository, RevisitRepository, StoreCalendarRepository, TaskRepository)
from services.followup.schemas import (
    OPENAPI, AppointmentCancelledIn, AppointmentIn, AppointmentsQuery, AttemptIn, ChangeRequestIn, OutcomeIn,
    RescheduleIn, TierOverrideIn, VisitCompletedIn)

log = logging.getLogger(__name__)
MAX_CLAIMS_PER_TICK = 200
OUTCOME_IN = OutcomeIn()
ATTEMPT_IN, RESCHEDULE_IN, TIER_IN, VISIT_IN = AttemptIn(), RescheduleIn(), TierOverrideIn(), VisitCompletedIn()
APPOINTMENT_IN, CANCELLED_IN, CHANGE_IN = AppointmentIn(), AppointmentCancelledIn(), ChangeRequestIn()
APPOINTMENTS_QUERY = AppointmentsQuery()
TASKS, APPOINTMENTS = "revisit_tasks", "appointments"
IMPORT_BODY_FACTOR = 32  # an import may be larger than other bodies (2 MB by default)


class FollowupService(OpsEndpoints, FollowsOrganisation, AuditsPersonalData):
    name = ev.FOLLOWUP
    openapi_spec = OPENAPI

    revisits = Repository(RevisitRepository)
    customers = Repository(CustomerRepository)
    tasks = Repository(TaskRepository)
    appointments = Repository(AppointmentRepository)
    calendars = Repository(StoreCalendarRepository)
    org = CurrentOrganisation()
    dispatch = EventDispatcher()
    config = Config()

    @event_handler(ev.ROUTING, ev.CASE_RESOLVED)
    def on_case_resolved(self, payload):
        revisit = flows.case_resolved(self.revisits, self.customers, self.org, self.calendars,
                                      ev.load(ev.CASE_RESOLVED, payload),
                                      setting(self.config, keys.REVISIT_DELAY_SECONDS), utcnow())
        if revisit is not None:
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

    # -- the tiered revisit programme (services/followup/programme.py, flows.py) ----------

    @due_timer(TASKS, "due_at", where={"status": RevisitTaskStatus.SCHEDULED.value})
    def revisit_task_due(self, task_id):
        """A revisit's time came: exactly one replica puts it on its owner's list (or
        cancels or throttles it), also for what fell due while every replica was down."""
        flows.make_due(self.customers, self.tasks, self._settings(), task_id, utcnow())

    @event_handler(ev.ROUTING, ev.STORE_CALENDAR_CHANGED)
    def on_store_calendar_changed(self, payload):
        """routing's calendar of a store (closures, holidays, opening hours): followup's
        copy, and the store's waiting calls and reminders moved into open time."""
        announced = ev.load(ev.STORE_CALENDAR_CHANGED, payload)
        calls, reminders = flows.store_calendar_changed(
            self.calendars, self.customers, self.tasks, self.revisits, self.appointments, self.org,
            flows.reminder_policy(self.config), announced, utcnow())
        if calls or reminders:
            log.info("revisits and reminders moved to open hours", extra={
                "store_id": announced["store_id"], "calls": calls, "reminders": reminders})

    @timer(keys.OUTBOX_RELAY_INTERVAL_SECONDS)
    def relay_task_outbox(self):
        self.tasks.outbox.relay(self.dispatch, utcnow())
        self.appointments.outbox.relay(self.dispatch, utcnow())
        self.customers.outbox.relay(self.dispatch, utcnow())

    # -- appointments from booking systems (services/followup/appointments.py) -------------

    @consume(APPOINTMENT_QUEUES[APPOINTMENT_BOOKED_KEY])
    def on_appointment_booked(self, body):
        self._booking(flows.appointment_booked, APPOINTMENT_IN.load(body))

    @consume(APPOINTMENT_QUEUES[APPOINTMENT_CHANGED_KEY])
    def on_appointment_changed(self, body):
        self._booking(flows.appointment_changed, APPOINTMENT_IN.load(body))

    @consume(APPOINTMENT_QUEUES[APPOINTMENT_CANCELLED_KEY])
    def on_appointment_cancelled(self, body):
        cancellation = CANCELLED_IN.load(body)
        if flows.appointment_cancelled(self.appointments, cancellation, utcnow()):
            log.info("appointment cancelled", extra={"appointment_id": cancellation["appointment_id"]})

    @due_timer(APPOINTMENTS, "reminder_at", where={"status": AppointmentStatus.BOOKED.value})
    def appointment_reminder_due(self, appointment_id):
        """The day before, at the store-local hour: exactly one replica sends the reminder."""
        event = flows.appointment_reminder(self.appointments, self.customers, appointment_id, utcnow())
        if event is not None:
            self.appointments.outbox.flush(appointment_id, [event], self.dispatch)

    def _booking(self, action, appointment):
        """Validated by the schema (ValidationError: dead-lettered with the reason)."""
        try:
            events = action(self.appointments, self.customers, self.tasks, self.org, self.calendars,
                            flows.reminder_policy(self.config), appointment, utcnow())
        except flows.BadMessage as bad:
            raise Unprocessable(str(bad))
        if events:
            self.appointments.outbox.flush(appointment["appointment_id"], events, self.dispatch)

    @consume(VISIT_COMPLETED_QUEUE)
    def on_visit_completed(self, body):
        """visit.completed on closeloop.inbound: the customer's history and tier. A body
        failing VisitCompletedIn is dead-lettered with the reason; a visit repeated is
        counted once; a visit of a customer not (yet) imported is dead-lettered too."""
        visit = VISIT_IN.load(body)
        if visit["store_id"] not in self.org.stores:
            raise Unprocessable(f"unknown store {visit['store_id']}")
        if not flows.record_visit(self.customers, self.tasks, self.org, self.calendars, self._settings(), visit,
                                  utcnow()) \
                and self.customers.get(visit["member_id"]) is None:
            raise Unprocessable("unknown member: import the customer first")

    @http("POST", "/v1/customers/import", access=requires(P.CUSTOMER_MANAGE))
    def import_customers(self, request):
        limit = setting(self.config, keys.MAX_BODY_BYTES) * IMPORT_BODY_FACTOR
        if request.mimetype == "text/csv":
            body, parsed = request.stream.read(limit + 1), None
            if len(body) > limit:
                raise HttpError(413, "payload_too_large", f"body exceeds {limit} bytes")
        else:
            body, parsed = None, read_json(request, limit)
        scope = scope_of(request.principal, self.org)
        try:
            rows = flows.import_rows_of(body, request.mimetype, parsed)
        except flows.Refused as refused:
            raise HttpError(refused.status, refused.code, refused.message, refused.fields)
        stores = frozenset(s for s in self.org.stores if scope.covers(s))  # others read as unknown
        report = flows.import_customers(self.customers, self.tasks, self.org, self.calendars, self._settings(),
                                        rows, stores, utcnow())
        log.info("customers imported", extra={"accepted": len(report.accepted), "rejected": len(report.rejected)})
        return json_response(200, report.summary())

    @http("GET", "/v1/customers/<string:member_id>", access=requires(P.REVISIT_READ))
    def get_customer(self, request, member_id):
        document = self._customer_in_scope(request, member_id)
        shown = profiles.view(profiles.Profile.from_document(document), request.principal)
        shown.update(tier=document.get("tier"), override=document.get("override"),
                     tier_audit=document.get("tier_audit", []),
                     open_revisits=[{"task_id": t["_id"], "status": t["status"], "purpose": t["purpose"],
                                     "owner_id": t["owner_id"], "planned_at": t["planned_at"]}
                                    for t in self.tasks.open_for(member_id)])
        self.personal_data_reads.record(request.principal, "customer", [member_id])
        return json_response(200, shown)

    @http("POST", "/v1/customers/<string:member_id>/tier", access=requires(P.CUSTOMER_MANAGE))
    def override_tier(self, request, member_id):
        body = load_or_422(TIER_IN, read_json(request, setting(self.config, keys.MAX_BODY_BYTES)))
        self._customer_in_scope(request, member_id)
        updated = self._refusals(flows.override_tier, self.customers, self.tasks, self.org, self.calendars,
                                 member_id,
                                 body["tier"], body["reason"],
                                 request.principal.actor, self._settings(), utcnow())
        return json_response(200, {"member_id": member_id, "tier": updated["tier"],
                                   "tier_audit": updated["tier_audit"]})

    @http("POST", "/v1/customers/<string:member_id>/withdraw-consent", access=requires(P.CUSTOMER_MANAGE))
    def withdraw_consent(self, request, member_id):
        self._customer_in_scope(request, member_id)
        cancelled, stopped, event = self._refusals(flows.withdraw_consent, self.customers, self.tasks,
                                                   self.revisits, self.appointments, member_id, utcnow())
        self.customers.outbox.flush(member_id, [event], self.dispatch)  # else the relay timer publishes it
        log.info("consent withdrawn", extra={"cancelled_revisits": cancelled, "stopped_reminders": stopped})
        return json_response(200, {"member_id": member_id, "consent": False, "cancelled_revisits": cancelled,
                                   "stopped_reminders": stopped})

    @http("GET", "/v1/revisit-tasks/due-today", access=requires(P.REVISIT_READ))
    def due_today(self, request):
        found = flows.due_today(self.tasks, self.org, request.principal, utcnow())
        self.personal_data_reads.record(request.principal, "revisit_task", [t["_id"] for t in found])
        return json_response(200, {"tasks": [scripts.task_view(t, request.principal, self._store_name(t)) for t in found]})

    @http("POST", "/v1/revisit-tasks/<string:task_id>/attempts", access=requires(P.REVISIT_RECORD))
    def record_attempt(self, request, task_id):
        body = load_or_422(ATTEMPT_IN, read_json(request, setting(self.config, keys.MAX_BODY_BYTES)))
        scope = scope_of(request.principal, self.org)
        updated, pending = self._refusals(flows.record_attempt, self.customers, self.tasks, self.org,
                                          self.calendars, self._settings(), task_id, body, request.principal, scope, utcnow())
        if updated is None:
            raise HttpError(409, "revisit_task_not_due", "this revisit was recorded meanwhile")
        self.tasks.outbox.flush(task_id, pending, self.dispatch)
        return json_response(200, scripts.task_view(updated, request.principal, self._store_name(updated)))

    @http("POST", "/v1/revisit-tasks/<string:task_id>/reschedule", access=requires(P.REVISIT_RECORD))
    def reschedule(self, request, task_id):
        body = load_or_422(RESCHEDULE_IN, read_json(request, setting(self.config, keys.MAX_BODY_BYTES)))
        scope = scope_of(request.principal, self.org)
        updated = self._refusals(flows.reschedule, self.tasks, self.org, task_id, body["due_at"],
                                 request.principal, scope, utcnow())
        if updated is None:
            raise HttpError(409, "revisit_task_closed", "this revisit was recorded meanwhile")
        return json_response(200, scripts.task_view(updated, request.principal, self._store_name(updated)))

    @http("GET", "/v1/appointments", access=requires(P.REVISIT_READ))
    def list_appointments(self, request):
        """A store's appointments of a day, for the front desk's today page."""
        query = load_or_422(APPOINTMENTS_QUERY, request.args.to_dict())
        store_id, day, found = self._refusals(flows.appointments_of_day, self.appointments, self.org,
                                              query["store_id"], query["day"], request.principal,
                                              scope_of(request.principal, self.org), utcnow())
        self.personal_data_reads.record(request.principal, "appointment", [a["_id"] for a in found])
        return json_response(200, {"store_id": store_id, "day": day.isoformat(),
                                   "timezone": self.org.stores[store_id].timezone,
                                   "appointments": [flows.appointment_view(a, request.principal) for a in found]})

    @http("POST", "/v1/appointments/<string:appointment_id>/change-requests", access=requires(P.REVISIT_RECORD))
    def request_appointment_change(self, request, appointment_id):
        body = load_or_422(CHANGE_IN, read_json(request, setting(self.config, keys.MAX_BODY_BYTES)))
        event = self._refusals(flows.request_change, self.appointments, self.org, appointment_id, body,
                               request.principal, scope_of(request.principal, self.org), utcnow())
        self.appointments.outbox.flush(appointment_id, [event], self.dispatch)
        return json_response(202, {"appointment_id": appointment_id, "status": "requested",
                                   "requested_starts_at": body["starts_at"]})

    @http("GET", "/v1/revisit-tasks/completion", access=requires(P.REPORT_READ))
    def completion(self, request):
        rates = flows.completion_rates(self.tasks, scope_of(request.principal, self.org))
        return json_response(200, {"completion": rates})

    def _store_name(self, task):
        store = self.org.stores.get(task["store_id"])
        return store.name if store else ""

    def _settings(self):
        return flows.Settings.from_config(self.config)

    def _customer_in_scope(self, request, member_id):
        document = self.customers.get(member_id)
        if document is None or not scope_of(request.principal, self.org).allows(document["home_store_id"]):
            raise HttpError(404, "customer_not_found", f"no customer {member_id}")
        return document

    @staticmethod
    def _refusals(action, *args):
        try:
            return action(*args)
        except flows.Refused as refused:
            raise HttpError(refused.status, refused.code, refused.message, refused.fields)
