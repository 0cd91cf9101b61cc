"""Bodies of the staff actions on a case (POST /v1/cases/{id}/...)."""
from marshmallow import fields, validate

from closeloop_shared import openapi
from closeloop_shared.openapi import StrictSchema
from closeloop_shared.events import CASE_STATUSES, REFUND_OPTIONS, REMEDY_TYPES


class ActionIn(StrictSchema):
    actor = fields.String(required=True, validate=validate.Length(1, 64))  # staff id


class FirstResponseIn(ActionIn):
    note = fields.String(required=True, validate=validate.Length(1, 2000))


class ReportIn(ActionIn):
    summary = fields.String(required=True, validate=validate.Length(1, 10000))


class RemedyIn(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(REMEDY_TYPES))
    refund_option = fields.String(load_default=None, allow_none=True,
                                  validate=validate.OneOf(REFUND_OPTIONS))
    amount = fields.Decimal(load_default=None, allow_none=True, places=2,
                            validate=validate.Range(min=0, max=1_000_000))


class ResolveIn(ActionIn):
    remedy = fields.Nested(RemedyIn, required=True)
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class ReopenIn(ActionIn):
    reason = fields.String(required=True, validate=validate.Length(1, 2000))


def _action(summary, body):
    return {"post": {"summary": summary, "parameters": [openapi.path_param("case_id")],
                     "requestBody": openapi.json_body(body),
                     "responses": openapi.responses({200: "the case after the action"},
                                                    400, 404, 409, 413, 415, 422, 503)}}


OPENAPI = openapi.build("Closeloop routing", {
    "/v1/cases": {"get": {
        "summary": "Recent cases, newest first",
        "parameters": [openapi.query_param("store", "store id"),
                       openapi.query_param("status", "case status", {"type": "string", "enum": list(CASE_STATUSES)}),
                       openapi.query_param("limit", "1-200", {"type": "integer", "minimum": 1, "maximum": 200})],
        "responses": openapi.responses({200: "cases"}, 422, 503)}},
    "/v1/cases/{case_id}": {"get": {
        "summary": "A case: status, category, severity, assignee, deadlines, timeline",
        "parameters": [openapi.path_param("case_id")],
        "responses": openapi.responses({200: "the case"}, 404, 503)}},
    "/v1/cases/{case_id}/first-response": _action("Record the first response", FirstResponseIn),
    "/v1/cases/{case_id}/report": _action("File the written report of a referral case", ReportIn),
    "/v1/cases/{case_id}/resolve": _action("Resolve with a remedy (options A-D for refunds)", ResolveIn),
    "/v1/cases/{case_id}/reopen": _action("Reopen a resolved or closed case", ReopenIn),
})
