"""The HTTP contract: the base of request schemas, and OpenAPI documents built from the
services' own marshmallow schemas (apispec), served at /openapi.json, so the contract
other systems read is the one the code validates."""
import json
from decimal import Decimal

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import RAISE, Schema, fields

ERROR_DESCRIPTIONS = {
    400: "malformed_json", 401: "unauthenticated: no, or an invalid, expired or revoked credential",
    403: "forbidden: the caller's role or key lacks the permission",
    404: "not found (or outside the caller's scope)", 409: "conflict with the current state",
    429: "too many requests: see Retry-After",
    413: "payload_too_large", 415: "unsupported_media_type",
    422: "validation_failed / unknown_store: `fields` names each field at fault",
    503: "storage_unavailable: retry later",
}


class StrictSchema(Schema):
    """Base of every request body: an unknown field is an error, not silently dropped."""

    class Meta:
        unknown = RAISE


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class Error(Schema):
    error = fields.Nested(ErrorBody, required=True)


def json_body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def path_param(name):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def query_param(name, description, schema=None):
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def responses(ok, *errors):
    """`ok` maps status -> description; `errors` are statuses answered with Error."""
    answers = {str(status): {"description": text} for status, text in ok.items()}
    for status in errors:
        answers[str(status)] = {"description": ERROR_DESCRIPTIONS[status],
                                "content": {"application/json": {"schema": "Error"}}}
    return answers


def build(title, paths, public=()):
    """paths: {"/v1/x/{id}": {"post": {operation object}}} -> the OpenAPI 3 document.
    Every operation needs a bearer credential (a staff token or an integration API key)
    and may answer 401/403, except the (path, method) pairs listed in `public`."""
    spec = APISpec(title=title, version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.schema("Error", schema=Error)
    spec.components.security_scheme("bearer", {
        "type": "http", "scheme": "bearer",
        "description": "a staff token from POST /v1/auth/login (routing), or an integration API key clk_..."})
    for path, operations in paths.items():
        for method, operation in operations.items():
            if (path, method) not in public:
                operation["security"] = [{"bearer": []}]
                operation["responses"].update(responses({}, 401, 403))
        spec.path(path=path, operations=operations)
    # apispec keeps Decimal bounds of Decimal fields; JSON wants plain numbers.
    return json.loads(json.dumps(spec.to_dict(), default=_plain_number))


def _plain_number(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# GET /v1/audit/personal-data-reads, on every service whose answers carry personal data
# (closeloop_shared.ops.AuditsPersonalData).
AUDIT_OPERATION = {"get": {
    "summary": "Who read which personal data, newest first",
    "parameters": [query_param("limit", "1-1000", {"type": "integer", "minimum": 1, "maximum": 1000})],
    "responses": responses({200: "reads"}, 422, 503)}}
