"""Bodies routing accepts: staff actions on a case (the acting person is the caller,
never a body field), logins, the organisation and integration keys."""
from zoneinfo import available_timezones

from marshmallow import fields, validate

from closeloop_shared import openapi
from closeloop_shared.openapi import StrictSchema
from closeloop_shared.access import INTEGRATION_PERMISSIONS
from closeloop_shared.contract import Category, Role, StoreStatus, TriageStatus
from closeloop_shared.events import CASE_STATUSES, REFUND_OPTIONS, REMEDY_TYPES
from closeloop_shared.org import DEFAULT_TIMEZONE

ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", error="1-64 letters, digits, '.', '_' or '-'")
NAME = validate.Length(1, 100)
TIMEZONE = validate.OneOf(sorted(available_timezones()))


class FirstResponseIn(StrictSchema):
    note = fields.String(required=True, validate=validate.Length(1, 2000))


class ReportIn(StrictSchema):
    summary = fields.String(required=True, validate=validate.Length(1, 10000))


class RemedyIn(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(REMEDY_TYPES))
    refund_option = fields.String(load_default=None, allow_none=True,
                                  validate=validate.OneOf(REFUND_OPTIONS))
    amount = fields.Decimal(load_default=None, allow_none=True, places=2,
                            validate=validate.Range(min=0, max=1_000_000))


class ResolveIn(StrictSchema):
    remedy = fields.Nested(RemedyIn, required=True)
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class ReopenIn(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


class ReclassifyIn(StrictSchema):
    """A staff correction of the category (the acting person is the caller)."""
    category = fields.String(required=True, validate=validate.OneOf(
        [c.value for c in Category if c is not Category.OTHER]))
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


class LoginIn(StrictSchema):
    staff_id = fields.String(required=True, validate=validate.Length(1, 64))
    password = fields.String(required=True, validate=validate.Length(1, 256))


class PasswordIn(StrictSchema):
    password = fields.String(required=True, validate=validate.Length(10, 256))


class BrandIn(StrictSchema):
    brand_id = fields.String(required=True, validate=ID)
    name = fields.String(required=True, validate=NAME)


class RegionIn(StrictSchema):
    region_id = fields.String(required=True, validate=ID)
    name = fields.String(required=True, validate=NAME)
    brand_id = fields.String(required=True, validate=ID)


class StoreIn(StrictSchema):
    store_id = fields.String(required=True, validate=ID)
    name = fields.String(required=True, validate=NAME)
    region_id = fields.String(required=True, validate=ID)
    timezone = fields.String(load_default=DEFAULT_TIMEZONE, validate=TIMEZONE)


class StorePatch(StrictSchema):
    name = fields.String(validate=NAME)
    timezone = fields.String(validate=TIMEZONE)
    status = fields.String(validate=validate.OneOf([s.value for s in StoreStatus]))
    revisit_owner_id = fields.String(allow_none=True, validate=ID)


class StaffIn(StrictSchema):
    staff_id = fields.String(required=True, validate=ID)
    name = fields.String(required=True, validate=NAME)
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    # the store (store roles), region (regional manager) or brand (customer service,
    # general manager) they work in; none for an admin
    unit_id = fields.String(load_default=None, allow_none=True, validate=ID)
    email = fields.Email(load_default=None, allow_none=True)


class StaffPatch(StrictSchema):
    name = fields.String(validate=NAME)
    email = fields.Email(allow_none=True)
    role = fields.String(validate=validate.OneOf([r.value for r in Role]))
    unit_id = fields.String(allow_none=True, validate=ID)


class IntegrationIn(StrictSchema):
    client_id = fields.String(required=True, validate=ID)
    name = fields.String(required=True, validate=NAME)
    brand_id = fields.String(required=True, validate=ID)
    store_ids = fields.List(fields.String(validate=ID), load_default=list, validate=validate.Length(max=1000))
    permissions = fields.List(
        fields.String(validate=validate.OneOf(sorted(p.value for p in INTEGRATION_PERMISSIONS))),
        required=True, validate=validate.Length(1, len(INTEGRATION_PERMISSIONS)))
    # the RabbitMQ user it publishes to closeloop.inbound with, if it uses the bus
    bus_user = fields.String(load_default=None, allow_none=True, validate=ID)


class ShiftIn(StrictSchema):
    """A shift of a duty roster, in the store's local time: on weekdays (0 = Monday) or
    on one date (which then runs only its dated shifts); an end at or before the start
    crosses midnight."""
    shift_id = fields.String(required=True, validate=ID)
    start = fields.Time(required=True, format="%H:%M")
    end = fields.Time(required=True, format="%H:%M")
    staff_ids = fields.List(fields.String(validate=ID), required=True, validate=validate.Length(1, 200))
    weekdays = fields.List(fields.Integer(validate=validate.Range(0, 6)), load_default=list,
                           validate=validate.Length(max=7))
    date = fields.Date(load_default=None, allow_none=True)


class RosterIn(StrictSchema):
    shifts = fields.List(fields.Nested(ShiftIn), required=True, validate=validate.Length(max=500))
    # the roster's version as read: the write is refused (409) if it changed since
    version = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0))


class ReassignIn(StrictSchema):
    staff_id = fields.String(required=True, validate=ID)
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


def _action(summary, body):
    return {"post": {"summary": summary, "parameters": [openapi.path_param("case_id")],
                     "requestBody": openapi.json_body(body),
                     "responses": openapi.responses({200: "the case after the action"},
                                                    400, 404, 409, 413, 415, 422, 503)}}


def _write(summary, body, ok, params=(), statuses=(400, 404, 409, 413, 415, 422, 503)):
    operation = {"summary": summary, "responses": openapi.responses(ok, *statuses),
                 "parameters": [openapi.path_param(p) for p in params]}
    if body is not None:
        operation["requestBody"] = openapi.json_body(body)
    return operation


OPENAPI = openapi.build("Closeloop routing", {
    "/v1/cases": {"get": {
        "summary": "Recent cases, newest first",
        "parameters": [openapi.query_param("store", "store id"),
                       openapi.query_param("status", "case status", {"type": "string", "enum": list(CASE_STATUSES)}),
                       openapi.query_param("limit", "1-200", {"type": "integer", "minimum": 1, "maximum": 200}),
                       openapi.query_param("triage", "pending: cases whose category waits for a person",
                                           {"type": "string", "enum": [t.value for t in TriageStatus]})],
        "responses": openapi.responses({200: "cases"}, 422, 503)}},
    "/v1/cases/{case_id}": {"get": {
        "summary": "A case: status, category, severity, assignee, deadlines, timeline",
        "parameters": [openapi.path_param("case_id")],
        "responses": openapi.responses({200: "the case"}, 404, 503)}},
    "/v1/cases/{case_id}/first-response": _action("Record the first response", FirstResponseIn),
    "/v1/cases/{case_id}/report": _action("File the written report of a referral case", ReportIn),
    "/v1/cases/{case_id}/resolve": _action("Resolve with a remedy (options A-D for refunds)", ResolveIn),
    "/v1/cases/{case_id}/reopen": _action("Reopen a resolved or closed case", ReopenIn),
    "/v1/cases/{case_id}/category": _action(
        "Correct the category (resolves a pending triage; recorded with who and why for retraining)",
        ReclassifyIn),
    "/v1/auth/login": {"post": _write(
        "Log in with staff id and password: a signed token for every service", LoginIn,
        {200: "token, token_type, expires_at, staff"}, statuses=(400, 401, 413, 415, 422, 429, 503))},
    "/v1/org": {"get": {"summary": "The organisation within the caller's scope",
                        "responses": openapi.responses({200: "brands, regions, stores, staff"}, 503)}},
    "/v1/org/brands": {"post": _write("Add a brand", BrandIn, {201: "the organisation"})},
    "/v1/org/regions": {"post": _write("Add a region to a brand", RegionIn, {201: "the organisation"})},
    "/v1/org/stores": {"post": _write("Add a store (closed until it has a manager and is opened)",
                                      StoreIn, {201: "the organisation"})},
    "/v1/org/stores/{store_id}": {"patch": _write(
        "Rename, move time zone, open or close a store, set its revisit owner", StorePatch,
        {200: "the organisation"}, ["store_id"])},
    "/v1/org/staff": {"post": _write("Add a staff member", StaffIn, {201: "the organisation"})},
    "/v1/org/staff/{staff_id}": {"patch": _write(
        "Change a staff member's name, e-mail, role or unit", StaffPatch, {200: "the organisation"},
        ["staff_id"])},
    "/v1/org/staff/{staff_id}/deactivate": {"post": _write(
        "Deactivate: history kept, open cases handed to the next on the ladder", None,
        {200: "the organisation and the cases handed over"}, ["staff_id"], (404, 409, 503))},
    "/v1/org/staff/{staff_id}/password": {"post": _write(
        "Set a staff member's password (unlocks the account)", PasswordIn, {204: "set"}, ["staff_id"])},
    "/v1/integrations": {
        "get": {"summary": "Integration clients and their keys (never a secret)",
                "responses": openapi.responses({200: "integrations"}, 503)},
        "post": _write("Register an integration client", IntegrationIn, {201: "the client"})},
    "/v1/integrations/{client_id}/keys": {"post": _write(
        "Issue an API key, shown once (two may be active, for rotation)", None,
        {201: "the key: api_key is shown this once"}, ["client_id"], (404, 409, 503))},
    "/v1/integrations/{client_id}/keys/{key_id}": {"delete": _write(
        "Revoke an API key at once", None, {200: "the client"}, ["client_id", "key_id"], (404, 409, 503))},
    "/v1/audit/personal-data-reads": openapi.AUDIT_OPERATION,
    "/v1/stores/{store_id}/roster": {
        "get": {"summary": "The store's duty roster (shifts in local time, with its version)",
                "parameters": [openapi.path_param("store_id")],
                "responses": openapi.responses({200: "store_id, version, shifts"}, 404, 503)},
        "put": _write("Replace the store's duty roster (its people active members of the store)",
                      RosterIn, {200: "the roster as stored"}, ["store_id"])},
    "/v1/stores/{store_id}/on-duty": {"get": {
        "summary": "Who is on duty at the store at a moment (default now)",
        "parameters": [openapi.path_param("store_id"),
                       openapi.query_param("at", "ISO instant with a zone", {"type": "string", "format": "date-time"})],
        "responses": openapi.responses({200: "at, staff"}, 404, 422, 503)}},
    "/v1/cases/{case_id}/reassign": _action(
        "Hand the case to another person on its store's chain (supervisor or above)", ReassignIn),
}, public={("/v1/auth/login", "post")})
