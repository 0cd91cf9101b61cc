"""The HTTP contract: the base of request schemas, and OpenAPI documents built from the
services' own marshmallow schemas (apispec), served at /openapi.json, so the contract
other systems read is the one the code validates."""
import json
from decimal import Decimal

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import RAISE, Schema, fields

ERROR_DESCRIPTIONS = {
    400: "malformed_json", 404: "not found", 409: "invalid_transition / already_recorded",
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


def build(title, paths):
    """paths: {"/v1/x/{id}": {"post": {operation object}}} -> the OpenAPI 3 document."""
    spec = APISpec(title=title, version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.schema("Error", schema=Error)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    # apispec keeps Decimal bounds of Decimal fields; JSON wants plain numbers.
    return json.loads(json.dumps(spec.to_dict(), default=_plain_number))


def _plain_number(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
