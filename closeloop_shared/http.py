"""The HTTP edge shared by all services: JSON in, JSON out, and one error shape for
every failure, including unknown routes and unexpected errors:

    {"error": {"code": "validation_failed", "message": "...", "fields": {"customer.phone": ["..."]}}}

Services decorate entrypoints with this module's `http`, never nameko's directly: all
entrypoints of a service must share one web server.
"""
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bson import ObjectId
from marshmallow import ValidationError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from pymongo.errors import PyMongoError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from closeloop_shared.auth import Identity
from closeloop_shared.clock import utcnow
from closeloop_shared.contract import Permission
from closeloop_shared.tokens import InvalidCredential

log = logging.getLogger(__name__)


class HttpError(Exception):
    def __init__(self, status, code, message, fields=None, headers=None, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields
        self.headers = headers
        self.details = details  # more machine-readable members of the error (e.g. allowed_actions)


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
    body = {"code": error.code, "message": error.message, **(error.details or {})}
    if error.fields:
        body["fields"] = error.fields
    return json_response(error.status, {"error": body}, headers=error.headers)


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


# Input hygiene: a request body's arrays and objects nest at most MAX_JSON_DEPTH deep
# (real bodies nest two or three: feedback with its customer, a resolution with its
# remedy). Deeper bodies are answered 400 malformed_json before the parser sees them, so
# 10,000 nested arrays cost one linear scan instead of a RecursionError (a 500) in the
# parser or in whatever walks the result later. NaN and Infinity, which are not JSON,
# are refused the same way.
MAX_JSON_DEPTH = 32
_JSON_STRUCTURE = re.compile(r'\\.|["\[\]{}]', re.DOTALL)  # an escape pair, a quote, a bracket


def json_too_deep(text, limit=MAX_JSON_DEPTH):
    """Whether the arrays and objects of JSON `text` nest more than `limit` deep
    (brackets inside strings do not count). One pass, linear in any text, valid JSON or
    not: the parser judges the rest."""
    if text.count("[") + text.count("{") <= limit:  # every real body: no scan needed
        return False
    depth, in_string = 0, False
    for token in _JSON_STRUCTURE.finditer(text):
        char = token.group()
        if char == '"':
            in_string = not in_string
        elif in_string or len(char) == 2:  # inside a string, or an escape pair
            continue
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _not_json_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def read_json(request, max_bytes, expect=dict):
    """The request's JSON object (or array, with `expect=list`: a provider's batch push),
    or an HttpError saying what is wrong with it: 413 over `max_bytes`, 415 without a
    JSON content type, 400 malformed_json when it is not UTF-8 JSON, nests deeper than
    MAX_JSON_DEPTH or holds NaN/Infinity, 422 when it is not an object (array)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise HttpError(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise HttpError(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    if request.mimetype != "application/json":
        raise HttpError(415, "unsupported_media_type", "send Content-Type: application/json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, "malformed_json", f"body is not valid JSON: {exc}")
    if json_too_deep(text):
        raise HttpError(400, "malformed_json",
                        f"body is not accepted: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text, parse_constant=_not_json_constant)
    except RecursionError:  # the scan above makes this unreachable; kept as the backstop
        raise HttpError(400, "malformed_json",
                        f"body is not accepted: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    except ValueError as exc:
        raise HttpError(400, "malformed_json", f"body is not valid JSON: {exc}")
    if not isinstance(body, expect):
        what = "an array" if expect is list else "an object"
        raise HttpError(422, "validation_failed", f"body must be a JSON {what.split()[-1]}",
                        {"_schema": [f"expected {what}"]})
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


@dataclass(frozen=True)
class Access:
    """What a route needs: nothing (public), or an authenticated principal holding
    `permission`. Every route declares one (`http(..., access=...)`), so none is open
    by omission; the authorisation matrix test checks each against the README table."""
    permission: Permission | None

    @property
    def public(self):
        return self.permission is None


PUBLIC = Access(None)


def requires(permission):
    return Access(permission)


def bearer_credential(request):
    scheme, _, credential = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise HttpError(401, "unauthenticated", "send Authorization: Bearer <token or API key>")
    return credential.strip()


class JsonHttpEntrypoint(HttpRequestHandler):
    """nameko's @http with the access rule checked before any worker runs: 401 without
    a valid credential, 403 without the permission. The handler finds the caller in
    `request.principal`. HttpError becomes its JSON response; a storage outage 503
    (nothing was accepted, retry); anything else a JSON 500 (and an error log)."""

    server = JsonWebServer()
    identity = Identity()

    def __init__(self, method, url, *, access, **kwargs):
        if not isinstance(access, Access):
            raise TypeError(f"{method} {url}: access must be PUBLIC or requires(Permission)")
        self.access = access
        kwargs["expected_exceptions"] = (HttpError,) + tuple(kwargs.get("expected_exceptions", ()))
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        request.principal = None
        if not self.access.public:
            try:
                request.principal = self._authorise(request)
            except Exception as exc:
                if not isinstance(exc, (HttpError, PyMongoError)):  # no worker ran to log it
                    log.error("unexpected error authorising a request", exc_info=exc)
                return self.response_from_exception(exc)
        return super().handle_request(request)

    def _authorise(self, request):
        try:
            principal = self.identity.authenticate(bearer_credential(request), utcnow())
        except InvalidCredential as exc:
            raise HttpError(401, "unauthenticated", str(exc))
        if not principal.can(self.access.permission):
            raise HttpError(403, "forbidden", f"needs permission {self.access.permission.value}")
        return principal

    def response_from_exception(self, exc):
        if isinstance(exc, HttpError):
            response = error_response(exc)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="closeloop"'
            return response
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
