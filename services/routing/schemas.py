"""Bodies routing accepts: staff actions on a case (the acting person is the caller,
never a body field), logins, the organisation and integration keys."""
from zoneinfo import available_timezones

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from closeloop_shared import openapi
from closeloop_shared.openapi import StrictSchema
from closeloop_shared.access import INTEGRATION_PERMISSIONS
from closeloop_shared.contract import Category, Role, StoreStatus, TriageStatus
from closeloop_shared.contract import CaseStatus, RefundOption, RemedyType, RootCause
from closeloop_shared.contract import Channel, ClockBasis, ClockName, CustomerTier, Severity
from closeloop_shared.org import DEFAULT_TIMEZONE
from services.routing.policy import MAX_DURATION as MAX_POLICY_DURATION
from services.routing import calendar_flows
from services.routing.calendar import CalendarError, OverrideKind, Slot, overlapping, weekly_overlap

ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", error="1-64 letters, digits, '.', '_' or '-'")
NAME = validate.Length(1, 100)
TIMEZONE = validate.OneOf(sorted(available_timezones()))


TEXT = validate.Length(1, 2000)
CASE_ID = validate.Length(1, 64)


class RespondIn(StrictSchema):
    """An answer to the customer (the first one meets the first-response clock)."""
    note = fields.String(required=True, validate=TEXT)


class EvidenceIn(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(
        ("photo", "video", "audio", "document", "chat", "receipt", "record", "other")))
    ref = fields.String(required=True, validate=validate.Length(1, 500))  # file id, URL, record number


class NoteIn(StrictSchema):
    note = fields.String(required=True, validate=validate.Length(1, 4000))
    evidence = fields.List(fields.Nested(EvidenceIn), load_default=list, validate=validate.Length(max=20))


class ReportUpIn(StrictSchema):
    message = fields.String(required=True, validate=TEXT)


class RequestInfoIn(StrictSchema):
    question = fields.String(required=True, validate=TEXT)


class ResumeIn(StrictSchema):
    answer = fields.String(required=True, validate=TEXT)


class RemedyProposalIn(StrictSchema):
    """Amounts in fen (integers: 30000 is 300.00 yuan)."""
    type = fields.String(required=True, validate=validate.OneOf([t.value for t in RemedyType]))
    refund_option = fields.String(load_default=None, allow_none=True,
                                  validate=validate.OneOf([o.value for o in RefundOption]))
    amount_fen = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=100_000_000))
    note = fields.String(load_default="", validate=validate.Length(max=2000))  # why this remedy


class RemedyDecisionIn(StrictSchema):
    remedy_id = fields.String(required=True, validate=CASE_ID)
    reason = fields.String(load_default="", validate=validate.Length(max=2000))


class ImprovementIn(StrictSchema):
    text = fields.String(required=True, validate=TEXT)
    owner = fields.String(required=True, validate=ID)  # the staff member who sees it done
    due = fields.Date(required=True)


class RootCauseIn(StrictSchema):
    cause = fields.String(required=True, validate=validate.OneOf([c.value for c in RootCause]))
    actions = fields.List(fields.Nested(ImprovementIn), load_default=list, validate=validate.Length(max=20))
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class FileReportIn(StrictSchema):
    summary = fields.String(required=True, validate=validate.Length(1, 10000))


class ResolveIn(StrictSchema):
    """Resolves with the round's approved remedy (remedy_id, or the newest approved
    one); with none approved, the resolution is an apology."""
    remedy_id = fields.String(load_default=None, allow_none=True, validate=CASE_ID)
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class LinkIn(StrictSchema):
    related = fields.String(required=True, validate=CASE_ID)


class MergeIn(StrictSchema):
    into = fields.String(required=True, validate=CASE_ID)


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


class PolicyConditionsIn(StrictSchema):
    """Which cases an SLA policy applies to; an empty list means any value."""
    severities = fields.List(fields.String(validate=validate.OneOf([s.value for s in Severity])),
                             load_default=list, validate=validate.Length(max=len(Severity)))
    categories = fields.List(fields.String(validate=validate.OneOf([c.value for c in Category])),
                             load_default=list, validate=validate.Length(max=len(Category)))
    channels = fields.List(fields.String(validate=validate.OneOf([c.value for c in Channel])),
                           load_default=list, validate=validate.Length(max=len(Channel)))
    tiers = fields.List(fields.String(validate=validate.OneOf([t.value for t in CustomerTier])),
                        load_default=list, validate=validate.Length(max=len(CustomerTier)))


SLA_SECONDS = validate.Range(min=1, max=int(MAX_POLICY_DURATION.total_seconds()))


class ClockSpecIn(StrictSchema):
    name = fields.String(required=True, validate=validate.OneOf([n.value for n in ClockName]))
    basis = fields.String(required=True, validate=validate.OneOf([b.value for b in ClockBasis]))
    duration_seconds = fields.Integer(required=True, strict=True, validate=SLA_SECONDS)
    warning_lead_seconds = fields.Integer(load_default=None, allow_none=True, strict=True,
                                          validate=SLA_SECONDS)


class SlaPolicyFields(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    priority = fields.Integer(load_default=0, strict=True, validate=validate.Range(-1000, 1000))
    conditions = fields.Nested(PolicyConditionsIn, load_default=dict)
    clocks = fields.List(fields.Nested(ClockSpecIn), required=True,
                         validate=validate.Length(1, len(ClockName)))


class SlaPolicyIn(SlaPolicyFields):
    policy_id = fields.String(required=True, validate=ID)


class SlaPolicyChangeIn(SlaPolicyFields):
    """The whole new definition, and the version it replaces (409 if that is not the
    current one)."""
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class SlaPolicyDeactivateIn(StrictSchema):
    version = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1))


# -- business calendars (services/routing/calendar.py) ------------------------------------

HHMM = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d\Z|^24:00\Z", error="a time HH:MM (00:00-24:00)")


class CalendarSlotIn(StrictSchema):
    """Open from start to end, local time; an end at or before the start runs past midnight."""
    start = fields.String(required=True, validate=HHMM)
    end = fields.String(required=True, validate=HHMM)

    @post_load
    def to_slot(self, data, **kwargs):
        try:
            return Slot.parse(data["start"], data["end"])
        except CalendarError as exc:
            raise ValidationError(str(exc), "end")


def _day_slots(**kwargs):
    return fields.List(fields.Nested(CalendarSlotIn), validate=[validate.Length(max=6), _no_overlap], **kwargs)


def _no_overlap(slots):
    clash = overlapping(tuple(slots))
    if clash:
        raise ValidationError(f"slots {clash[0]} and {clash[1]} overlap")


class WeeklySlotsIn(StrictSchema):
    mon, tue, wed, thu, fri, sat, sun = (_day_slots(load_default=list) for _ in range(7))


class StoreCalendarIn(StrictSchema):
    weekly = fields.Nested(WeeklySlotsIn, required=True)
    # the hours of a normal workday: make-up workdays (调休) and brand 'workday' overrides
    workday = _day_slots(required=True)
    observes_holidays = fields.Boolean(required=True)

    @validates_schema
    def no_overlap_past_midnight(self, data, **kwargs):
        weekly = data.get("weekly")
        clash = weekly and weekly_overlap(tuple(tuple(weekly.get(d, ())) for d in calendar_flows.WEEKDAYS))
        if clash:
            day = calendar_flows.WEEKDAYS[clash[0]]
            raise ValidationError({"weekly": {day: [
                f"{clash[1]} runs into the next day's {clash[2]}"]}})


class ClosureIn(StrictSchema):
    first_day = fields.Date(required=True)
    last_day = fields.Date(required=True)
    reason = fields.String(required=True, validate=validate.Length(1, 200))

    @validates_schema
    def ordered_and_bounded(self, data, **kwargs):
        if "first_day" in data and "last_day" in data:
            if data["last_day"] < data["first_day"]:
                raise ValidationError("before first_day", "last_day")
            if (data["last_day"] - data["first_day"]).days > 366:
                raise ValidationError("a closure lasts at most a year", "last_day")


class DateOverrideIn(StrictSchema):
    date = fields.Date(required=True)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in OverrideKind]))
    slots = _day_slots(load_default=list)
    note = fields.String(load_default="", validate=validate.Length(max=200))

    @validates_schema
    def slots_with_custom_only(self, data, **kwargs):
        custom = data.get("kind") == OverrideKind.CUSTOM.value
        if custom and not data.get("slots"):
            raise ValidationError("custom hours need at least one slot", "slots")
        if not custom and data.get("slots"):
            raise ValidationError("slots only go with kind 'custom'", "slots")


class BrandOverridesIn(StrictSchema):
    overrides = fields.List(fields.Nested(DateOverrideIn), required=True, validate=validate.Length(max=1000))

    @validates_schema
    def one_per_date(self, data, **kwargs):
        days = [o["date"] for o in data.get("overrides", [])]
        if len(days) != len(set(days)):
            raise ValidationError("one override per date", "overrides")


YEARS = validate.Range(2000, 2100)


class OfficialYearIn(StrictSchema):
    """A year's official list as the State Council published it (the year is in the path)."""
    holidays = fields.List(fields.Date(), required=True, validate=validate.Length(1, 60))
    workdays = fields.List(fields.Date(), required=True, validate=validate.Length(max=30))
    source = fields.String(required=True, validate=validate.Length(1, 300))

    @validates_schema
    def within_the_year(self, data, **kwargs):
        year = self.context_year
        problems = calendar_flows.year_problems(year, data.get("holidays", []), data.get("workdays", []))
        if problems:
            raise ValidationError(problems)

    def __init__(self, year, **kwargs):
        super().__init__(**kwargs)
        self.context_year = year


def _action(summary, body):
    """A case action; 409 answers an action the case's status does not allow, with the
    allowed ones in error.allowed_actions. `body` None: the action takes no body."""
    operation = {"summary": summary, "parameters": [openapi.path_param("case_id")],
                 "responses": openapi.responses({200: "the case after the action"},
                                                400, 403, 404, 409, 413, 415, 422, 503)}
    if body is not None:
        operation["requestBody"] = openapi.json_body(body)
    return {"post": operation}


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
                       openapi.query_param("status", "case status", {"type": "string", "enum": [s.value for s in CaseStatus]}),
                       openapi.query_param("limit", "1-200", {"type": "integer", "minimum": 1, "maximum": 200}),
                       openapi.query_param("triage", "pending: cases whose category waits for a person",
                                           {"type": "string", "enum": [t.value for t in TriageStatus]})],
        "responses": openapi.responses({200: "cases"}, 422, 503)}},
    "/v1/cases/{case_id}": {"get": {
        "summary": "A case: status, category, severity, assignee, deadlines, timeline",
        "parameters": [openapi.path_param("case_id")],
        "responses": openapi.responses({200: "the case"}, 404, 503)}},
    "/v1/cases/{case_id}/timeline": {"get": {
        "summary": "The whole audit timeline, newest first, a page at a time (the case keeps only the newest)",
        "parameters": [openapi.path_param("case_id"),
                       openapi.query_param("before", "entries with seq below this", {"type": "integer", "minimum": 1}),
                       openapi.query_param("limit", "1-200", {"type": "integer", "minimum": 1, "maximum": 200})],
        "responses": openapi.responses({200: "case_id, count, entries, next_before"}, 404, 422, 503)}},
    "/v1/cases/{case_id}/acknowledge": _action("Take the case on (the assignee, or an escalated rung)", None),
    "/v1/cases/{case_id}/respond": _action("Answer the customer (the first answer meets the first-response clock)",
                                           RespondIn),
    "/v1/cases/{case_id}/note": _action("Add an investigation note with evidence references", NoteIn),
    "/v1/cases/{case_id}/report-to-superior": _action("Report the case to the next rung up (报告上级)", ReportUpIn),
    "/v1/cases/{case_id}/request-info": _action("Ask the customer for information: the clocks pause",
                                                RequestInfoIn),
    "/v1/cases/{case_id}/resume": _action("The customer answered: the clocks resume, deadlines moved on", ResumeIn),
    "/v1/cases/{case_id}/propose-remedy": _action(
        "Propose a remedy (fen): approved at once within the proposer's limit, else it waits for the approver",
        RemedyProposalIn),
    "/v1/cases/{case_id}/approve-remedy": _action("Approve a proposed remedy (within the approver's limit)",
                                                  RemedyDecisionIn),
    "/v1/cases/{case_id}/reject-remedy": _action("Reject a proposed remedy", RemedyDecisionIn),
    "/v1/remedies/approval-limits": {"get": {
        "summary": "The most each role approves on its own, in fen (null: no limit; a role not listed approves "
                   "nothing that costs money), as proposals are decided: a remedy form shows the approval path",
        "responses": openapi.responses({200: "limits_fen by role"})}},
    "/v1/cases/{case_id}/root-cause": _action("Record the root cause and improvement actions (needed to close)",
                                              RootCauseIn),
    "/v1/cases/{case_id}/file-report": _action("File the written report of a referral case", FileReportIn),
    "/v1/cases/{case_id}/sign-off-report": _action(
        "Sign the filed report off (general manager): the report clock is met now", None),
    "/v1/cases/{case_id}/resolve": _action("Resolve with the approved remedy, or an apology", ResolveIn),
    "/v1/cases/{case_id}/close": _action("Close a resolved case whose root cause is recorded", None),
    "/v1/cases/{case_id}/reopen": _action("Reopen a resolved or closed case", ReopenIn),
    "/v1/cases/{case_id}/link": _action("Link a related case (both show it)", LinkIn),
    "/v1/cases/{case_id}/merge": _action("Merge this duplicate into another case: it closes, its clocks stop",
                                         MergeIn),
    "/v1/cases/{case_id}/archive": _action("Archive a closed case", None),
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
    "/v1/sla-policies": {
        "get": {"summary": "SLA policies: the built-in defaults (from config) and the stored ones",
                "responses": openapi.responses({200: "policies"}, 503)},
        "post": _write("Add an SLA policy (version 1; applies to new cases only)", SlaPolicyIn,
                       {201: "the policy"})},
    "/v1/sla-policies/{policy_id}": {
        "get": {"summary": "An SLA policy's current version",
                "parameters": [openapi.path_param("policy_id")],
                "responses": openapi.responses({200: "the policy"}, 404, 503)},
        "put": _write("Change an SLA policy: a new version for new cases; running cases keep theirs",
                      SlaPolicyChangeIn, {200: "the policy"}, ["policy_id"])},
    "/v1/sla-policies/{policy_id}/deactivate": {"post": _write(
        "Take an SLA policy out of force (a new version; running cases keep theirs)",
        SlaPolicyDeactivateIn, {200: "the policy"}, ["policy_id"])},
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
    "/v1/calendars/stores/{store_id}": {
        "get": {"summary": "A store's business calendar: weekly slots, workday hours, holidays observed, closures",
                "parameters": [openapi.path_param("store_id")],
                "responses": openapi.responses({200: "the store's calendar"}, 404, 503)},
        "put": _write("Set a store's weekly slots, workday hours and whether it closes on statutory holidays",
                      StoreCalendarIn, {200: "the store's calendar"}, ["store_id"])},
    "/v1/calendars/stores/{store_id}/closures": {"post": _write(
        "Close a store on a range of dates (renovation, inspection...)", ClosureIn,
        {201: "the closure and the store's calendar"}, ["store_id"])},
    "/v1/calendars/brands/{brand_id}/overrides": {
        "get": {"summary": "A brand's date overrides (closed, normal workday, custom slots)",
                "parameters": [openapi.path_param("brand_id")],
                "responses": openapi.responses({200: "the brand's overrides"}, 404, 503)},
        "put": _write("Replace a brand's date overrides", BrandOverridesIn, {200: "the brand's overrides"},
                      ["brand_id"])},
    "/v1/calendars/years": {"get": {
        "summary": "Official holiday lists around today and their source (published, file, library, missing)",
        "responses": openapi.responses({200: "years, incomplete_years"}, 503)}},
    "/v1/calendars/years/{year}": {"put": _write(
        "Publish a year's official statutory holidays and make-up workdays (wins over file and library)",
        OfficialYearIn(2000), {200: "the year"}, ["year"])},
}, public={("/v1/auth/login", "post")})
