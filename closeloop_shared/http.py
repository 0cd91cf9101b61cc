"""The HTTP edge shared by all services: JSON in, JSON out, and one error shape:

    {"error": {"code": "validation_failed", "message": "...", "fields": {"customer.phone": ["..."]}}}
"""
import functools
import json
from datetime import datetime
from decimal import Decimal

from bson import ObjectId
from marshmallow import ValidationError
from werkzeug.wrappers import Response


class HttpError(Exception):
    def __init__(self, status, code, message, fields=None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def _default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (Decimal, ObjectId)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_response(status, body, headers=None):
    return Response(
        json.dumps(body, ensure_ascii=False, default=_default),
        status=status, headers=headers, mimetype="application/json",
    )


def error_response(error):
    body = {"code": error.code, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    return json_response(error.status, {"error": body})


def flatten_errors(messages, prefix=""):
    """marshmallow's nested error dict as {"customer.phone": ["..."]}."""
    flat = {}
    for key, value in messages.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_errors(value, path + "."))
        else:
            flat[path] = value if isinstance(value, list) else [value]
    return flat


def read_json(request, max_bytes):
    """The request's JSON object, or an HttpError saying what is wrong with it."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise HttpError(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise HttpError(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    if request.mimetype != "application/json":
        raise HttpError(415, "unsupported_media_type", "send Content-Type: application/json")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(400, "malformed_json", f"body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        raise HttpError(422, "validation_failed", "body must be a JSON object",
                        {"_schema": ["expected an object"]})
    return body


def load_or_422(schema, data):
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise HttpError(422, "validation_failed", "request has invalid fields",
                        flatten_errors(exc.messages))


def json_api(method):
    """Turns HttpError raised by an entrypoint into its JSON error response."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except HttpError as error:
            return error_response(error)
    return wrapper
