"""The bus contract: event names (past tense, owned by the emitting service) and the
payload each carries. Emitters dump with these schemas; consumers load with them, so a
malformed payload fails loudly (and is dead-lettered) instead of half-working.

Consumers ignore fields they do not know, so an emitter may add fields without
breaking anyone.
"""
import uuid

from marshmallow import EXCLUDE, Schema, fields, validate

from closeloop_shared.contract import (
    Category, Channel, ClockBasis, ClockName, CustomerTier, LinkReason, Permission, PrincipalKind, RefundOption,
    RemedyStatus, RemedyType, RevisitPurpose, Role, RootCause, Severity, StoreStatus)

# Event names, grouped by the service that owns (emits) them.
INTAKE = "intake"
CASE_SUBMITTED = "case_submitted"

ROUTING = "routing"
CASE_ROUTED = "case_routed"
CASE_ESCALATED = "case_escalated"
CASE_DEADLINE_APPROACHED = "case_deadline_approached"
CASE_DEADLINE_BREACHED = "case_deadline_breached"
CASE_FIRST_RESPONDED = "case_first_responded"
CASE_RESOLVED = "case_resolved"
CASE_REOPENED = "case_reopened"
CASE_CLOSED = "case_closed"
CASE_REASSIGNED = "case_reassigned"
CASE_RECLASSIFIED = "case_reclassified"
# The lifecycle's actions (services/routing/lifecycle.py)
CASE_ACKNOWLEDGED = "case_acknowledged"
CASE_REPORTED_TO_SUPERIOR = "case_reported_to_superior"
CASE_PAUSED = "case_paused"
CASE_RESUMED = "case_resumed"
REMEDY_PROPOSED = "remedy_proposed"
REMEDY_DECIDED = "remedy_decided"
REPORT_FILED = "report_filed"
REPORT_SIGNED_OFF = "report_signed_off"
CASE_LINKED = "case_linked"
CASE_MERGED = "case_merged"
CASE_ARCHIVED = "case_archived"
ORG_CHANGED = "org_changed"
INTEGRATION_CHANGED = "integration_changed"
# a store's business calendar as routing now computes it (hours, closures, holidays,
# brand overrides): followup keeps a copy to time revisit calls and reminders
STORE_CALENDAR_CHANGED = "store_calendar_changed"

FOLLOWUP = "followup"
FOLLOWUP_DUE = "followup_due"
REVISIT_RECORDED = "revisit_recorded"
# a relationship revisit of the tiered programme ended: reached (with its outcome) or
# unreachable after every attempt (for completion rates per store and owner)
REVISIT_TASK_COMPLETED = "revisit_task_completed"
# appointments from booking systems (services/followup/appointments.py): the customer is
# told of a booking or its new time, and reminded the day before (notify sends both)
APPOINTMENT_CONFIRMED = "appointment_confirmed"
# a customer asked us (not the booking system) for another time: the store and the
# booking system (a webhook of this kind) are told; the booking system's
# appointment.changed closes the loop
APPOINTMENT_CHANGE_REQUESTED = "appointment_change_requested"
# a complaint the customer voiced during a revisit: intake makes it a case
REVISIT_COMPLAINT_VOICED = "revisit_complaint_voiced"
APPOINTMENT_REMINDER_DUE = "appointment_reminder_due"
# a customer withdrew consent to be contacted: followup stopped its programmes, and
# notify ends what it still holds for them (deferred, waiting for a retry)
CUSTOMER_CONSENT_WITHDRAWN = "customer_consent_withdrawn"

NOTIFY = "notify"
NOTIFICATION_FAILED = "notification_failed"
REPORTING = "reporting"
WEEKLY_DIGEST_READY = "weekly_digest_ready"
# Every service but routing keeps its own copy of the organisation and the integrations.
IDENTITY_FOLLOWERS = (INTAKE, FOLLOWUP, NOTIFY, REPORTING)

# Who emits each event: consumers subscribe to (emitter, event name).
EMITTERS = {
    CASE_SUBMITTED: INTAKE,
    CASE_ROUTED: ROUTING, CASE_ESCALATED: ROUTING, CASE_FIRST_RESPONDED: ROUTING,
    CASE_DEADLINE_APPROACHED: ROUTING, CASE_DEADLINE_BREACHED: ROUTING,
    CASE_RESOLVED: ROUTING, CASE_REOPENED: ROUTING, CASE_CLOSED: ROUTING,
    CASE_REASSIGNED: ROUTING, ORG_CHANGED: ROUTING, INTEGRATION_CHANGED: ROUTING,
    CASE_RECLASSIFIED: ROUTING,
    CASE_ACKNOWLEDGED: ROUTING, CASE_REPORTED_TO_SUPERIOR: ROUTING, CASE_PAUSED: ROUTING,
    CASE_RESUMED: ROUTING, REMEDY_PROPOSED: ROUTING, REMEDY_DECIDED: ROUTING, REPORT_FILED: ROUTING,
    REPORT_SIGNED_OFF: ROUTING, CASE_LINKED: ROUTING, CASE_MERGED: ROUTING, CASE_ARCHIVED: ROUTING,
    FOLLOWUP_DUE: FOLLOWUP, REVISIT_RECORDED: FOLLOWUP, REVISIT_TASK_COMPLETED: FOLLOWUP,
    APPOINTMENT_CONFIRMED: FOLLOWUP, APPOINTMENT_REMINDER_DUE: FOLLOWUP, REVISIT_COMPLAINT_VOICED: FOLLOWUP,
    APPOINTMENT_CHANGE_REQUESTED: FOLLOWUP,
    CUSTOMER_CONSENT_WITHDRAWN: FOLLOWUP,
    STORE_CALENDAR_CHANGED: ROUTING,
    NOTIFICATION_FAILED: NOTIFY,
    WEEKLY_DIGEST_READY: REPORTING,
}

# Who listens to what: (consumer service, handler method) for each event. Every service
# declares all these queues when it starts (closeloop_shared.bus.DeclareQueues): nameko
# publishes with mandatory=False, so an event published before its consumer first
# started would otherwise be dropped. A unit test keeps this in step with the handlers.
SUBSCRIPTIONS = {
    CASE_SUBMITTED: (("routing", "on_case_submitted"), ("notify", "on_case_submitted"),
                     ("reporting", "on_case_submitted")),
    CASE_ROUTED: (("notify", "on_case_routed"), ("reporting", "on_case_routed")),
    CASE_ESCALATED: (("notify", "on_case_escalated"), ("reporting", "on_case_escalated")),
    CASE_FIRST_RESPONDED: (("reporting", "on_case_first_responded"),),
    CASE_RESOLVED: (("followup", "on_case_resolved"), ("reporting", "on_case_resolved")),
    CASE_REOPENED: (("followup", "on_case_reopened"), ("reporting", "on_case_reopened")),
    CASE_CLOSED: (("reporting", "on_case_closed"),),
    FOLLOWUP_DUE: (("notify", "on_followup_due"),),
    APPOINTMENT_CONFIRMED: (("notify", "on_appointment_confirmed"),),
    APPOINTMENT_REMINDER_DUE: (("notify", "on_appointment_reminder_due"),),
    REVISIT_COMPLAINT_VOICED: (("intake", "on_revisit_complaint_voiced"),),
    APPOINTMENT_CHANGE_REQUESTED: (("notify", "on_appointment_change_requested"),),
    REVISIT_RECORDED: (("routing", "on_revisit_recorded"), ("reporting", "on_revisit_recorded")),
    CASE_REASSIGNED: (("notify", "on_case_reassigned"),),
    # a notification nobody could be reached by becomes a task on the case
    NOTIFICATION_FAILED: (("routing", "on_notification_failed"),),
    CASE_DEADLINE_APPROACHED: (("notify", "on_case_deadline_approached"),),
    CASE_RECLASSIFIED: (("reporting", "on_case_reclassified"),),
    # the pre-aggregated facts: an unmet clock counts late once it breached; a referral's report on time
    CASE_DEADLINE_BREACHED: (("reporting", "on_case_deadline_breached"),),
    REPORT_SIGNED_OFF: (("reporting", "on_report_signed_off"),),
    # the revisit programme's completion and satisfaction (unreachable customers apart)
    REVISIT_TASK_COMPLETED: (("reporting", "on_revisit_task_completed"),),
    # the weekly digest (seed 000) to each manager of the region or brand
    WEEKLY_DIGEST_READY: (("notify", "on_weekly_digest_ready"),),
    ORG_CHANGED: tuple((service, "on_org_changed") for service in IDENTITY_FOLLOWERS),
    INTEGRATION_CHANGED: tuple((service, "on_integration_changed") for service in IDENTITY_FOLLOWERS),
    # revisit calls and appointment reminders inside the store's open hours
    STORE_CALENDAR_CHANGED: (("followup", "on_store_calendar_changed"),),
    # messages held back for a customer who withdrew consent are never sent
    CUSTOMER_CONSENT_WITHDRAWN: (("notify", "on_customer_consent_withdrawn"),),
}

CHANNELS = tuple(c.value for c in Channel)
CATEGORIES = tuple(c.value for c in Category)    # the enums live in contract.py
SEVERITIES = tuple(s.value for s in Severity)
REMEDY_TYPES = tuple(t.value for t in RemedyType)
# The four options of the store's complaint procedure (A-D).
REFUND_OPTIONS = tuple(o.value for o in RefundOption)
ROOT_CAUSES = tuple(c.value for c in RootCause)
LOCALES = ("zh-CN", "en")


class EventSchema(Schema):
    class Meta:
        unknown = EXCLUDE


class Contact(EventSchema):
    name = fields.String(required=True)
    phone = fields.String(allow_none=True, load_default=None)  # E.164
    email = fields.Email(allow_none=True, load_default=None)
    member_id = fields.String(allow_none=True, load_default=None)
    # optional, for notify: the openid under the brand's WeChat official account, and
    # the channel the customer prefers ("wechat" | "sms" | "email"); absent when not given
    wechat_openid = fields.String(allow_none=True)
    preferred_channel = fields.String(allow_none=True)
    # the customer's tier when the submitting system knows it (SLA policies may ask for it)
    tier = fields.String(allow_none=True, validate=validate.OneOf([t.value for t in CustomerTier]))


class StaffMember(EventSchema):
    staff_id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True)
    email = fields.Email(allow_none=True, load_default=None)


class ExternalRef(EventSchema):
    source = fields.String(required=True)
    id = fields.String(required=True)


class Referral(EventSchema):
    """A consumer-association (消协, 12315) or media referral: who referred it, their
    official reference number, and the referral document's text."""
    authority = fields.String(required=True)
    reference_number = fields.String(allow_none=True, load_default=None)
    body = fields.String(allow_none=True, load_default=None)
    referred_at = fields.AwareDateTime(allow_none=True, load_default=None)


class ServiceContext(EventSchema):
    service_item = fields.String(allow_none=True, load_default=None)
    technician = fields.String(allow_none=True, load_default=None)
    appointment_id = fields.String(allow_none=True, load_default=None)


class Remedy(EventSchema):
    type = fields.String(required=True, validate=validate.OneOf(REMEDY_TYPES))
    refund_option = fields.String(allow_none=True, load_default=None,
                                  validate=validate.OneOf(REFUND_OPTIONS))
    # Money crosses the bus as whole fen (30000 is 300.00 yuan): exact, never a float.
    amount_fen = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    remedy_id = fields.String(allow_none=True, load_default=None)  # its ledger entry (None: an apology)
    continue_treatment = fields.Boolean(load_default=True)


class SubmittedBy(EventSchema):
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in PrincipalKind]))
    client_id = fields.String(allow_none=True, load_default=None)   # integrations
    staff_id = fields.String(allow_none=True, load_default=None)    # staff


class CaseSubmitted(EventSchema):
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    store_name = fields.String(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    customer = fields.Nested(Contact, required=True)
    content = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    submitted_at = fields.AwareDateTime(required=True)
    category = fields.String(allow_none=True, load_default=None,
                             validate=validate.OneOf(CATEGORIES))
    external_ref = fields.Nested(ExternalRef, allow_none=True, load_default=None)
    service_context = fields.Nested(ServiceContext, allow_none=True, load_default=None)
    referral = fields.Nested(Referral, allow_none=True, load_default=None)
    locale = fields.String(load_default="zh-CN", validate=validate.OneOf(LOCALES))
    # Who handed it in: an integration (its client id: external references are unique
    # per client, and an integration may read back only its own cases), a staff member
    # registering a complaint, or a bus publisher (the broker-validated AMQP user).
    submitted_by = fields.Nested(SubmittedBy, allow_none=True, load_default=None)


class Deadlines(EventSchema):
    first_response_due = fields.AwareDateTime(allow_none=True, load_default=None)
    resolution_due = fields.AwareDateTime(allow_none=True, load_default=None)
    report_due = fields.AwareDateTime(allow_none=True, load_default=None)
    update_due = fields.AwareDateTime(allow_none=True, load_default=None)


class CaseRouted(EventSchema):
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    assignee = fields.Nested(StaffMember, required=True)
    rung = fields.Integer(required=True)
    deadlines = fields.Nested(Deadlines, required=True)
    routed_at = fields.AwareDateTime(required=True)
    locale = fields.String(load_default="zh-CN")
    # How the category was decided (optional: older emitters leave them out).
    confidence = fields.Float(allow_none=True)
    runner_up = fields.String(allow_none=True)
    model_version = fields.String(allow_none=True)
    classified_by = fields.String(allow_none=True)  # "model" | "submitter"
    triage = fields.Boolean()  # True: the category waits for a person to confirm it
    # The SLA policy chosen, by when the assignee's rung must acknowledge, and who else
    # is told at once (the customer-service department of a referral).
    policy_id = fields.String(allow_none=True, load_default=None)
    ack_due_at = fields.AwareDateTime(allow_none=True, load_default=None)
    informed = fields.List(fields.Nested(StaffMember), load_default=list)
    referral = fields.Nested(Referral, allow_none=True, load_default=None)


class CaseEscalated(EventSchema):
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    # Which clock ran out, or "critical_referral" for the immediate escalation of
    # consumer-association and media cases.
    reason = fields.String(required=True)
    rung = fields.Integer(required=True)
    previous_assignee = fields.Nested(StaffMember, allow_none=True, load_default=None)
    assignee = fields.Nested(StaffMember, required=True)
    escalated_at = fields.AwareDateTime(required=True)
    locale = fields.String(load_default="zh-CN")
    # The deadline that caused it (lag = escalated_at or publication - due_at); None for
    # an escalation no deadline caused (critical_referral).
    due_at = fields.AwareDateTime(allow_none=True, load_default=None)
    # The ladder's rung (issue 7): its role, everyone on it who is told, and by when one
    # of them must acknowledge before the case climbs again (None on the top rung held).
    role = fields.String(allow_none=True, load_default=None, validate=validate.OneOf([r.value for r in Role]))
    notified = fields.List(fields.Nested(StaffMember), load_default=list)
    ack_due_at = fields.AwareDateTime(allow_none=True, load_default=None)


class CaseDeadlineApproached(EventSchema):
    """A clock's warning: `clock` is due at `due_at`; the assignee is told `lead` before."""
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    clock = fields.String(required=True, validate=validate.OneOf([c.value for c in ClockName]))
    basis = fields.String(required=True, validate=validate.OneOf([b.value for b in ClockBasis]))
    due_at = fields.AwareDateTime(required=True)
    warned_at = fields.AwareDateTime(required=True)
    assignee = fields.Nested(StaffMember, required=True)
    locale = fields.String(load_default="zh-CN")


class CaseDeadlineBreached(EventSchema):
    """A clock ran out unmet (once per clock; a rearmed clock can breach again)."""
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    clock = fields.String(required=True, validate=validate.OneOf([c.value for c in ClockName]))
    basis = fields.String(required=True, validate=validate.OneOf([b.value for b in ClockBasis]))
    policy_id = fields.String(required=True)
    policy_version = fields.Integer(required=True)
    due_at = fields.AwareDateTime(required=True)
    breached_at = fields.AwareDateTime(required=True)
    rung = fields.Integer(required=True)
    assignee = fields.Nested(StaffMember, required=True)
    locale = fields.String(load_default="zh-CN")


class CaseFirstResponded(EventSchema):
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    responded_at = fields.AwareDateTime(required=True)
    on_time = fields.Boolean(required=True)
    seconds_to_respond = fields.Float(required=True)


class CaseResolved(EventSchema):
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    category = fields.String(required=True)
    remedy = fields.Nested(Remedy, required=True)
    note = fields.String(load_default="")
    resolved_at = fields.AwareDateTime(required=True)
    on_time = fields.Boolean(required=True)
    # 1 for the first resolution, 2 after one reopening, ...: one revisit per round.
    resolution_round = fields.Integer(required=True)
    customer = fields.Nested(Contact, required=True)
    revisit_owner = fields.Nested(StaffMember, required=True)
    locale = fields.String(load_default="zh-CN")
    amount_fen = fields.Integer(load_default=0, strict=True)  # the remedy's, for totals
    root_cause = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(ROOT_CAUSES))
    # who resolved it (staff id, or integration:<id>): the satisfaction revisit is made by
    # someone else (followup); None from older emitters
    resolved_by = fields.String(allow_none=True, load_default=None)


class CaseReopened(EventSchema):
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    reason = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(("staff", "revisit")))
    reopened_at = fields.AwareDateTime(required=True)
    resolution_due = fields.AwareDateTime(allow_none=True, load_default=None)  # re-armed clock


class CaseClosed(EventSchema):
    case_id = fields.String(required=True)
    store_id = fields.String(required=True)
    closed_at = fields.AwareDateTime(required=True)
    root_cause = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(ROOT_CAUSES))
    merged_into = fields.String(allow_none=True, load_default=None)  # closed as a duplicate of


class CaseEvent(EventSchema):
    """What every lifecycle event carries: which case, and its own id (consumers'
    idempotency key)."""
    event_id = fields.String(required=True)
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    actor = fields.String(required=True)  # staff id, integration:<id>, revisit:<id> or system
    at = fields.AwareDateTime(required=True)


class CaseAcknowledged(CaseEvent):
    rung = fields.Integer(required=True)


class CaseReportedToSuperior(CaseEvent):
    superior = fields.Nested(StaffMember, allow_none=True, load_default=None)
    message = fields.String(required=True)


class CasePaused(CaseEvent):
    """Waiting for the customer's information: the customer-facing clocks stopped."""
    question = fields.String(required=True)


class CaseResumed(CaseEvent):
    deadlines = fields.Nested("Deadlines", required=True)  # moved on by the paused time


class RemedyProposed(CaseEvent):
    remedy_id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(REMEDY_TYPES))
    refund_option = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(REFUND_OPTIONS))
    amount_fen = fields.Integer(required=True, strict=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in RemedyStatus]))
    approver = fields.Nested(StaffMember, allow_none=True, load_default=None)  # who must approve it
    approver_role = fields.String(allow_none=True, load_default=None, validate=validate.OneOf([r.value for r in Role]))
    flags = fields.List(fields.String(), load_default=list)  # "repeat_customer"
    repeat = fields.Dict(allow_none=True, load_default=None)  # {count, stores, amount_fen}


class RemedyDecided(CaseEvent):
    remedy_id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(REMEDY_TYPES))
    refund_option = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(REFUND_OPTIONS))
    amount_fen = fields.Integer(required=True, strict=True)
    decision = fields.String(required=True, validate=validate.OneOf(
        [RemedyStatus.APPROVED.value, RemedyStatus.REJECTED.value]))
    proposed_by = fields.String(required=True)
    reason = fields.String(load_default="")


class ReportFiled(CaseEvent):
    revision = fields.Integer(required=True)
    report_due = fields.AwareDateTime(allow_none=True, load_default=None)


class ReportSignedOff(CaseEvent):
    on_time = fields.Boolean(required=True)


class CaseLinked(CaseEvent):
    related_case_id = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf([r.value for r in LinkReason]))


class CaseMerged(CaseEvent):
    into_case_id = fields.String(required=True)


class CaseArchived(CaseEvent):
    pass


class FollowupDue(EventSchema):
    revisit_id = fields.String(required=True)
    round = fields.Integer(required=True)  # the resolution round it asks about
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    owner = fields.Nested(StaffMember, required=True)
    customer = fields.Nested(Contact, required=True)
    due_at = fields.AwareDateTime(required=True)
    locale = fields.String(load_default="zh-CN")


class RevisitRecorded(EventSchema):
    revisit_id = fields.String(required=True)
    round = fields.Integer(required=True)  # only that round's resolution may be reopened
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    score = fields.Integer(required=True, validate=validate.Range(1, 5))
    satisfied = fields.Boolean(required=True)
    reopens_case = fields.Boolean(required=True)
    comment = fields.String(load_default="")
    recorded_at = fields.AwareDateTime(required=True)


class RevisitTaskCompleted(EventSchema):
    """A tiered-programme revisit ended (services/followup/programme.py). No personal
    data: the customer is not named; `status` completed or unreachable."""
    event_id = fields.String(required=True)  # consumers dedupe on it (or on task_id)
    task_id = fields.String(required=True)
    store_id = fields.String(required=True)
    owner_id = fields.String(required=True)
    tier = fields.String(required=True, validate=validate.OneOf([t.value for t in CustomerTier]))
    purpose = fields.String(required=True, validate=validate.OneOf([p.value for p in RevisitPurpose]))
    status = fields.String(required=True, validate=validate.OneOf(("completed", "unreachable")))
    attempts = fields.Integer(required=True)
    score = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(1, 5))
    complaint = fields.Boolean(load_default=False)  # a complaint voiced: a case was opened through intake
    planned_at = fields.AwareDateTime(required=True)
    completed_at = fields.AwareDateTime(required=True)


class RevisitComplaintVoiced(EventSchema):
    """A complaint voiced during a revisit of the tiered programme: intake makes it a
    case (channel survey, external reference {source: revisit, id: task_id}, submitted
    by the staff member who heard it)."""
    event_id = fields.String(required=True)
    task_id = fields.String(required=True)
    store_id = fields.String(required=True)
    customer = fields.Nested(Contact, required=True)
    content = fields.String(required=True)
    voiced_at = fields.AwareDateTime(required=True)
    voiced_by = fields.String(required=True)  # staff id
    # what the person who heard it says it is about (e.g. booking: a booking problem the
    # customer reports); None: routing classifies it
    category = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(CATEGORIES))


class AppointmentMessage(EventSchema):
    """What notify needs to tell a customer about an appointment. notify keys its
    delivery log by case_id: the appointment's id stands in for it."""
    event_id = fields.String(required=True)
    case_id = fields.String(required=True)
    appointment_id = fields.String(required=True)
    store_id = fields.String(required=True)
    customer = fields.Nested(Contact, required=True)
    service_item = fields.String(required=True)
    starts_at = fields.AwareDateTime(required=True)
    locale = fields.String(load_default="zh-CN", validate=validate.OneOf(LOCALES))


class AppointmentConfirmed(AppointmentMessage):
    confirmed_at = fields.AwareDateTime(required=True)
    change = fields.Boolean(load_default=False)  # the appointment moved: its new time


class AppointmentChangeRequested(AppointmentMessage):
    """The customer's identity was checked (the phone of the booking) by `requested_by`."""
    store_staff = fields.Nested(StaffMember, required=True)  # who at the store is told
    requested_starts_at = fields.AwareDateTime(required=True)
    note = fields.String(load_default="")
    requested_by = fields.String(required=True)
    requested_at = fields.AwareDateTime(required=True)


class AppointmentReminderDue(AppointmentMessage):
    reminded_at = fields.AwareDateTime(required=True)


class CaseReassigned(EventSchema):
    """A case handed to someone else on its rung: its owner was deactivated, or a
    manager reassigned it."""
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    reason = fields.String(required=True)
    previous_assignee = fields.Nested(StaffMember, allow_none=True, load_default=None)
    assignee = fields.Nested(StaffMember, required=True)
    reassigned_at = fields.AwareDateTime(required=True)
    locale = fields.String(load_default="zh-CN")


class CaseReclassified(EventSchema):
    """Staff corrected a case's category (issue 8): what it was, what it is now, what the
    model had said and which model. No personal data: the corrector by role only."""
    event_id = fields.String(required=True)
    correction_id = fields.String(required=True)  # "<case id>:<case version>": consumers dedupe on it
    case_id = fields.String(required=True)
    case_number = fields.String(required=True)
    store_id = fields.String(required=True)
    previous_category = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(CATEGORIES))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    model_category = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(CATEGORIES))
    model_version = fields.String(allow_none=True, load_default=None)
    model_confidence = fields.Float(allow_none=True, load_default=None)
    by_role = fields.String(required=True)  # a Role value, or "integration"
    reclassified_at = fields.AwareDateTime(required=True)


class BrandRecord(EventSchema):
    brand_id = fields.String(required=True)
    name = fields.String(required=True)


class RegionRecord(EventSchema):
    region_id = fields.String(required=True)
    name = fields.String(required=True)
    brand_id = fields.String(required=True)


class StoreRecord(EventSchema):
    store_id = fields.String(required=True)
    name = fields.String(required=True)
    region_id = fields.String(required=True)
    timezone = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in StoreStatus]))
    revisit_owner_id = fields.String(allow_none=True, load_default=None)


class StaffRecord(EventSchema):
    staff_id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    email = fields.String(allow_none=True, load_default=None)
    store_id = fields.String(allow_none=True, load_default=None)
    region_id = fields.String(allow_none=True, load_default=None)
    brand_id = fields.String(allow_none=True, load_default=None)
    active = fields.Boolean(required=True)


class OrgChanged(EventSchema):
    """The whole organisation after a change (a snapshot: consumers keep the newest
    version, so order and repeats do not matter). No credentials in it."""
    version = fields.Integer(required=True)
    brands = fields.List(fields.Nested(BrandRecord), required=True)
    regions = fields.List(fields.Nested(RegionRecord), required=True)
    stores = fields.List(fields.Nested(StoreRecord), required=True)
    staff = fields.List(fields.Nested(StaffRecord), required=True)


class KeyRecord(EventSchema):
    key_id = fields.String(required=True)
    digest = fields.String(required=True)  # SHA-256 of the secret, never the secret
    created_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(allow_none=True, load_default=None)
    revoked_at = fields.AwareDateTime(allow_none=True, load_default=None)


class IntegrationChanged(EventSchema):
    """An integration client as it now is, with its keys (for the services that accept
    its API keys or its bus messages); the newest version wins."""
    client_id = fields.String(required=True)
    name = fields.String(required=True)
    brand_id = fields.String(required=True)
    store_ids = fields.List(fields.String(), load_default=list)
    permissions = fields.List(fields.String(validate=validate.OneOf([p.value for p in Permission])),
                              required=True)
    bus_user = fields.String(allow_none=True, load_default=None)
    active = fields.Boolean(required=True)
    keys = fields.List(fields.Nested(KeyRecord), required=True)
    version = fields.Integer(required=True)


class OpenSlot(EventSchema):
    """Open from `start` to `end`, minutes after the store-local midnight of the day it
    starts on (end > 1440: past midnight)."""
    start = fields.Integer(required=True, validate=validate.Range(0, 1439))
    end = fields.Integer(required=True, validate=validate.Range(1, 2880))


class OpenDay(EventSchema):
    date = fields.Date(required=True)
    slots = fields.List(fields.Nested(OpenSlot), required=True)  # empty: closed that day


class StoreCalendarChanged(EventSchema):
    """A store's business calendar as routing now computes it, compactly: its weekly
    slots (Monday first) and every date from horizon_from to horizon_to whose slots
    differ from its weekday's (closures, statutory holidays, make-up workdays, brand
    overrides). Dates past the horizon count on the weekly slots. Sent when the
    calendar changes and at routing's start and now and then (the horizon moves on):
    a snapshot, consumers keep the newest by `as_of`, a repeat changes nothing."""
    event_id = fields.String(required=True)
    store_id = fields.String(required=True)
    timezone = fields.String(required=True)
    weekly = fields.List(fields.List(fields.Nested(OpenSlot)), required=True, validate=validate.Length(equal=7))
    exceptions = fields.List(fields.Nested(OpenDay), load_default=list)
    horizon_from = fields.Date(required=True)
    horizon_to = fields.Date(required=True)
    as_of = fields.AwareDateTime(required=True)


class RootCauseShare(EventSchema):
    root_cause = fields.String(required=True, validate=validate.OneOf(ROOT_CAUSES))
    cases = fields.Integer(required=True)
    share = fields.Float(required=True)
    cumulative = fields.Float(required=True)


class WeeklyDigestReady(EventSchema):
    """reporting's weekly summary of a region or brand (seed 000), once per unit and week,
    for its managers (notify sends it to each, kind weekly_digest): figures, and whom to tell."""
    event_id = fields.String(required=True)
    digest_id = fields.String(required=True)  # "<week's Monday>:<level>:<unit>": consumers dedupe on it
    level = fields.String(required=True, validate=validate.OneOf(("region", "brand")))
    unit_id = fields.String(required=True)
    unit_name = fields.String(allow_none=True, load_default=None)
    # a region's digest: one of its stores (notify finds the region's WeCom group by it); a brand's: none (e-mail)
    store_id = fields.String(allow_none=True, load_default=None)
    # the unit's managers as the organisation had them: a region's regional managers; a
    # brand's general managers and customer-service department
    managers = fields.List(fields.Nested(StaffMember), load_default=list)
    week_from = fields.Date(required=True)
    week_to = fields.Date(required=True)
    cases = fields.Integer(required=True)
    first_response_rate = fields.Float(allow_none=True, load_default=None)
    resolution_rate = fields.Float(allow_none=True, load_default=None)
    satisfaction_rate = fields.Float(allow_none=True, load_default=None)
    repeat_30_rate = fields.Float(allow_none=True, load_default=None)
    cases_change = fields.Integer(allow_none=True, load_default=None)  # against the week before
    root_causes = fields.List(fields.Nested(RootCauseShare), load_default=list)  # the Pareto, largest first


class NotificationFailed(EventSchema):
    """notify gave a notification up: no channel reached the person (none known, every
    one refused or failing). For a customer the store should phone them instead
    (action "phone_call"); for staff someone should tell them another way."""
    event_id = fields.String(required=True)  # set once, with the abandonment, in notify's outbox
    case_id = fields.String(required=True)
    case_number = fields.String(allow_none=True, load_default=None)
    store_id = fields.String(required=True)
    # with case_id and recipient, the notification's stable identity (consumers dedupe on it)
    kind = fields.String(required=True)       # e.g. "acknowledgement", "escalated:3"
    audience = fields.String(required=True, validate=validate.OneOf(("customer", "staff")))
    recipient = fields.String(required=True)  # "customer:<digest>" or "staff:<staff id>": no contact data
    reason = fields.String(required=True)
    channels_tried = fields.List(fields.String(), load_default=list)
    action = fields.String(required=True, validate=validate.OneOf(("phone_call", "tell_staff")))
    failed_at = fields.AwareDateTime(required=True)


class CustomerConsentWithdrawn(EventSchema):
    """A customer withdrew consent to be contacted (followup's profile). No contact data
    crosses: the member id, and the digests notify keys its delivery log by (one per
    handle the profile holds: E.164 phone, lower-case e-mail, WeChat openid; see
    services/notify/kinds.customer_keys). Consumers dedupe on member_id + withdrawn_at."""
    event_id = fields.String(required=True)
    member_id = fields.String(required=True)
    customer_keys = fields.List(fields.String(), load_default=list)
    withdrawn_at = fields.AwareDateTime(required=True)


SCHEMAS = {
    CASE_SUBMITTED: CaseSubmitted(),
    CASE_ROUTED: CaseRouted(),
    CASE_ESCALATED: CaseEscalated(),
    CASE_DEADLINE_APPROACHED: CaseDeadlineApproached(),
    CASE_DEADLINE_BREACHED: CaseDeadlineBreached(),
    CASE_FIRST_RESPONDED: CaseFirstResponded(),
    CASE_RESOLVED: CaseResolved(),
    CASE_REOPENED: CaseReopened(),
    CASE_CLOSED: CaseClosed(),
    FOLLOWUP_DUE: FollowupDue(),
    NOTIFICATION_FAILED: NotificationFailed(),
    WEEKLY_DIGEST_READY: WeeklyDigestReady(),
    REVISIT_RECORDED: RevisitRecorded(),
    REVISIT_TASK_COMPLETED: RevisitTaskCompleted(),
    APPOINTMENT_CONFIRMED: AppointmentConfirmed(),
    REVISIT_COMPLAINT_VOICED: RevisitComplaintVoiced(),
    APPOINTMENT_CHANGE_REQUESTED: AppointmentChangeRequested(),
    APPOINTMENT_REMINDER_DUE: AppointmentReminderDue(),
    CASE_REASSIGNED: CaseReassigned(),
    CASE_RECLASSIFIED: CaseReclassified(),
    CASE_ACKNOWLEDGED: CaseAcknowledged(),
    CASE_REPORTED_TO_SUPERIOR: CaseReportedToSuperior(),
    CASE_PAUSED: CasePaused(),
    CASE_RESUMED: CaseResumed(),
    REMEDY_PROPOSED: RemedyProposed(),
    REMEDY_DECIDED: RemedyDecided(),
    REPORT_FILED: ReportFiled(),
    REPORT_SIGNED_OFF: ReportSignedOff(),
    CASE_LINKED: CaseLinked(),
    CASE_MERGED: CaseMerged(),
    CASE_ARCHIVED: CaseArchived(),
    ORG_CHANGED: OrgChanged(),
    INTEGRATION_CHANGED: IntegrationChanged(),
    STORE_CALENDAR_CHANGED: StoreCalendarChanged(),
    CUSTOMER_CONSENT_WITHDRAWN: CustomerConsentWithdrawn(),
}


def new_event(event_type, data):
    """An outgoing event as an outbox entry (closeloop_shared.outbox publishes it)."""
    event_id = uuid.uuid4().hex
    if "event_id" in SCHEMAS[event_type].fields:
        data = dict(data, event_id=event_id)
    return {"id": event_id, "type": event_type, "payload": dump(event_type, data)}


def dump(event_type, data):
    """The JSON-ready payload of an event (validated on the way out too)."""
    schema = SCHEMAS[event_type]
    payload = schema.dump(data)
    schema.load(payload)  # an emitter bug fails here, at its source, not in consumers
    return payload


def load(event_type, payload):
    """The consumer's view of a payload; raises marshmallow.ValidationError."""
    return SCHEMAS[event_type].load(payload)
