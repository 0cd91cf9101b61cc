"""The HTTP edge shared by all services: JSON in, JSON out, and one error shape for
every failure, including unknown routes and unexpected errors:

    {"error": {"code": "validation_failed", "message": "...", "fields": {"customer.phone": ["..."]}}}

Services decorate entrypoints with this module's `http`, never nameko's directly: all
entrypoints of a service must share one web server.
"""
import json
import logging
from datetime import datetime
from decimal import Decimal

from bson import ObjectId
from marshmallow import ValidationError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)


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


class JsonWsgiApp(WsgiApp):
    """nameko's WSGI app, with unknown routes and wrong methods answered in JSON."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        try:
            provider, values = self.url_map.bind_to_environ(environ).match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code, "http_error")
            response = error_response(HttpError(exc.code, code, exc.description))
        return response(environ, start_response)


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)


class JsonHttpEntrypoint(HttpRequestHandler):
    """nameko's @http: HttpError becomes its JSON response; a storage outage 503 (nothing
    was accepted, retry); anything else a JSON 500 (and an error log)."""

    server = JsonWebServer()

    def __init__(self, method, url, **kwargs):
        kwargs["expected_exceptions"] = (HttpError,) + tuple(kwargs.get("expected_exceptions", ()))
        super().__init__(method, url, **kwargs)

    def response_from_exception(self, exc):
        if isinstance(exc, HttpError):
            return error_response(exc)
        if isinstance(exc, PyMongoError):
            return error_response(HttpError(503, "storage_unavailable",
                                            f"storage is unavailable, retry later ({type(exc).__name__})"))
        return error_response(HttpError(500, "internal_error", "unexpected error; it has been logged"))


http = JsonHttpEntrypoint.decorator


def required_arg(request, name):
    """A query parameter that must be there, or a 422 naming it."""
    value = request.args.get(name)
    if not value:
        raise HttpError(422, "validation_failed", f"{name} is required",
                        {name: ["Missing data for required field."]})
    return value


def int_arg(request, name, default, low, high):
    """A bounded integer query parameter, or a 422 naming it."""
    raw = request.args.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise HttpError(422, "validation_failed", f"{name} must be an integer from {low} to {high}",
                        {name: [f"Must be an integer from {low} to {high}."]})
    return value
