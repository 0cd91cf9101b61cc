"""What staff and other systems send to followup: the outcome of a satisfaction revisit,
customer imports, tier overrides, attempts and outcomes of the tiered programme's
revisits, and visits (visit.completed on closeloop.inbound)."""
from datetime import date

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from closeloop_shared import openapi
from closeloop_shared.contract import CUSTOMER_NOTIFY_CHANNELS, AppointmentStatus, Category, CustomerTier
from closeloop_shared.events import LOCALES
from closeloop_shared.openapi import StrictSchema
from closeloop_shared.contacts import e164


class OutcomeIn(StrictSchema):
    score = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default="", validate=validate.Length(max=2000))



class AttemptIn(StrictSchema):
    """One call (or message) to the customer: not reached, or reached with its outcome."""
    reached = fields.Boolean(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    score = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(1, 5))
    next_step = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    # a complaint the customer voiced: opens a case through intake, linked to the revisit
    complaint = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 5000))
    # what the complaint is about, when the caller knows (a booking problem: booking)
    complaint_category = fields.String(load_default=None, allow_none=True,
                                       validate=validate.OneOf([c.value for c in Category]))

    @validates_schema
    def _category_of_a_complaint(self, data, **kwargs):
        if data.get("complaint_category") and not data.get("complaint"):
            raise ValidationError("only with a complaint", "complaint_category")


class RescheduleIn(StrictSchema):
    due_at = fields.AwareDateTime(required=True)


class TierOverrideIn(StrictSchema):
    tier = fields.String(required=True, validate=validate.OneOf([t.value for t in CustomerTier]))
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class ImportIn(StrictSchema):
    """One row of a customer import (JSON form; CSV has the same columns)."""
    member_id = fields.String(required=True)
    name = fields.String(required=True)
    phone = fields.String(load_default=None, allow_none=True)
    home_store_id = fields.String(required=True)
    preferred_channel = fields.String(load_default=None, allow_none=True)
    contact_hours = fields.String(load_default=None, allow_none=True, metadata={"example": "10-20"})
    special_needs = fields.List(fields.String(), load_default=list)
    special_needs_note = fields.String(load_default="")
    consent = fields.Boolean(load_default=False)
    wechat_openid = fields.String(load_default=None, allow_none=True)
    email = fields.String(load_default=None, allow_none=True)


class ImportBody(StrictSchema):
    customers = fields.List(fields.Nested(ImportIn), required=True)


class VisitCompletedIn(StrictSchema):
    """visit.completed on closeloop.inbound, from a till or booking system."""
    visit_id = fields.String(required=True, validate=validate.Length(1, 128))
    member_id = fields.String(required=True, validate=validate.Length(1, 64))
    store_id = fields.String(required=True, validate=validate.Length(1, 64))
    visited_at = fields.AwareDateTime(required=True)
    spend_fen = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class E164Phone(fields.String):
    """A phone as people type it, loaded as E.164 (mainland China by default)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return e164(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class AppointmentCustomerIn(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 50))
    phone = E164Phone(load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True)
    member_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    wechat_openid = fields.String(allow_none=True, validate=validate.Length(1, 64))
    preferred_channel = fields.String(allow_none=True, validate=validate.OneOf(CUSTOMER_NOTIFY_CHANNELS))


class AppointmentIn(Schema):
    """appointment.booked and appointment.changed on closeloop.inbound. `version`: the
    booking system's revision of the appointment (a newer one wins; repeats are ignored).
    Fields it does not know are ignored (a booking system sends more than we need)."""
    class Meta:
        unknown = EXCLUDE

    appointment_id = fields.String(required=True, validate=validate.Length(1, 128))
    store_id = fields.String(required=True, validate=validate.Length(1, 64))
    customer = fields.Nested(AppointmentCustomerIn, required=True)
    service_item = fields.String(required=True, validate=validate.Length(1, 100))
    starts_at = fields.AwareDateTime(required=True)
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    status = fields.String(load_default=AppointmentStatus.BOOKED.value, validate=validate.OneOf(
        [AppointmentStatus.BOOKED.value, AppointmentStatus.ATTENDED.value, AppointmentStatus.NO_SHOW.value]))
    locale = fields.String(load_default="zh-CN", validate=validate.OneOf(LOCALES))


class AppointmentCancelledIn(Schema):
    class Meta:
        unknown = EXCLUDE

    appointment_id = fields.String(required=True, validate=validate.Length(1, 128))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    reason = fields.String(load_default="", validate=validate.Length(max=500))


class AppointmentsQuery(StrictSchema):
    """GET /v1/appointments: one of the caller's stores (default: their own) and a day
    in the store's time zone (default: today there)."""
    store_id = fields.String(load_default=None, validate=validate.Length(1, 64))
    day = fields.Date(load_default=None, validate=validate.Range(date(2000, 1, 1), date(2999, 12, 31)),
                      metadata={"example": "2026-11-25"})


class ChangeRequestIn(StrictSchema):
    """A customer asks for another time: their phone proves they are the booking's customer."""
    phone = E164Phone(required=True)
    starts_at = fields.AwareDateTime(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=500))


TASK = openapi.path_param("task_id")
MEMBER = openapi.path_param("member_id")
OPENAPI = openapi.build("Closeloop followup", {
    "/v1/revisits": {"get": {
        "summary": "The revisits of a case",
        "parameters": [dict(openapi.query_param("case_id", "case id"), required=True)],
        "responses": openapi.responses({200: "revisits"}, 422, 503)}},
    "/v1/revisits/{revisit_id}/outcome": {"post": {
        "summary": "Record the customer's score (1-5); 1-2 reopens the case",
        "parameters": [openapi.path_param("revisit_id")],
        "requestBody": openapi.json_body(OutcomeIn),
        "responses": openapi.responses({200: "the completed revisit"}, 400, 404, 409, 413, 415, 422, 503)}},
    "/v1/customers/import": {"post": {
        "summary": "Import customer profiles (JSON {customers: [...]}, or text/csv with the same columns); "
                   "answers the accepted count and the rejected rows with the fields at fault",
        "requestBody": openapi.json_body(ImportBody),
        "responses": openapi.responses({200: "import report"}, 400, 413, 415, 422, 503)}},
    "/v1/customers/{member_id}": {"get": {
        "summary": "A customer's profile, tier (with its override's audit) and open revisits "
                   "(special needs only for the store's own roles)",
        "parameters": [MEMBER], "responses": openapi.responses({200: "profile"}, 404, 503)}},
    "/v1/customers/{member_id}/tier": {"post": {
        "summary": "Override the computed tier (audited)", "parameters": [MEMBER],
        "requestBody": openapi.json_body(TierOverrideIn),
        "responses": openapi.responses({200: "profile"}, 400, 404, 413, 415, 422, 503)}},
    "/v1/customers/{member_id}/withdraw-consent": {"post": {
        "summary": "The customer withdrew consent: every programme stops at once", "parameters": [MEMBER],
        "responses": openapi.responses({200: "how many revisits were cancelled"}, 404, 503)}},
    "/v1/revisit-tasks/due-today": {"get": {
        "summary": "The caller's revisits due by the end of today (overdue included)",
        "responses": openapi.responses({200: "revisit tasks"}, 503)}},
    "/v1/revisit-tasks/{task_id}/attempts": {"post": {
        "summary": "Record an attempt: unreached (retried at another hour, then unreachable) or reached "
                   "with its outcome (a complaint opens a case)",
        "parameters": [TASK], "requestBody": openapi.json_body(AttemptIn),
        "responses": openapi.responses({200: "the task"}, 400, 404, 409, 413, 415, 422, 503)}},
    "/v1/revisit-tasks/{task_id}/reschedule": {"post": {
        "summary": "Move a revisit to another time", "parameters": [TASK],
        "requestBody": openapi.json_body(RescheduleIn),
        "responses": openapi.responses({200: "the task"}, 400, 404, 409, 413, 415, 422, 503)}},
    "/v1/appointments": {"get": {
        "summary": "A store's appointments of a day (store-local), earliest first: time, service item, customer "
                   "(contact as the role may see it), status (booked, attended, no_show, cancelled), whether "
                   "the reminder went",
        "parameters": [openapi.query_param("store_id", "one of the caller's stores (default: their own store)"),
                       openapi.query_param("day", "YYYY-MM-DD in the store's time zone (default: today there)",
                                           {"type": "string", "format": "date"})],
        "responses": openapi.responses({200: "appointments"}, 404, 422, 503)}},
    "/v1/appointments/{appointment_id}/change-requests": {"post": {
        "summary": "The customer asks for another time (checked: the booking's phone); the store and the "
                   "booking system are told",
        "parameters": [openapi.path_param("appointment_id")], "requestBody": openapi.json_body(ChangeRequestIn),
        "responses": openapi.responses({202: "requested"}, 400, 404, 409, 413, 415, 422, 503)}},
    "/v1/revisit-tasks/completion": {"get": {
        "summary": "Revisit completion rate per store and owner (unreachable customers count as not completed)",
        "responses": openapi.responses({200: "completion"}, 503)}},
    "/v1/audit/personal-data-reads": openapi.AUDIT_OPERATION,
})
