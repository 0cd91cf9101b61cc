"""What staff send to followup: the outcome of a satisfaction revisit."""
from marshmallow import fields, validate

from closeloop_shared import openapi
from closeloop_shared.openapi import StrictSchema


class OutcomeIn(StrictSchema):
    score = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default="", validate=validate.Length(max=2000))


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
    "/v1/audit/personal-data-reads": openapi.AUDIT_OPERATION,
})
