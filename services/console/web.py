"""The console's HTTP edge: pages instead of JSON, the session in a cookie instead of an
Authorization header, CSRF protection on every form, and every route's access rule
declared (closeloop_shared.http.Access, as the services' routes do).

- The session cookie holds the person's own staff token (HttpOnly, SameSite=Strict,
  Secure behind HTTPS); the console never sees their password again after logging in.
  Who they are (role, store) is read from routing's organisation with that token, so
  a deactivation or a role change counts at once (cached for a few seconds).
- No cookie, an expired token or a 401 from any service: back to the login page with
  the page they were on, and a message saying why; never a stack trace.
- Forms carry a CSRF token that must equal the `cl_csrf` cookie (double submit): a
  page of another site cannot read the cookie, so cannot forge the form.
"""
import base64
import json
import logging
import secrets
import time
from functools import partial
from pathlib import Path
from urllib.parse import quote, urlencode

import requests
from eventlet.event import Event
from jinja2 import Environment, FileSystemLoader, select_autoescape
from nameko.extensions import SharedExtension
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from closeloop_shared.contract import CaseAction, Permission
from closeloop_shared.http import Access
from services.console import i18n, settings
from services.console.api import ApiError, ServicesApi
from services.console.domain import Person

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SESSION_COOKIE, CSRF_COOKIE, LANGUAGE_COOKIE = "cl_session", "cl_csrf", "cl_lang"
WHO_CACHE_SECONDS = 5.0
# routing's approval limits change only with its deployment: asked at most once a minute
APPROVAL_LIMITS_CACHE_SECONDS = 60.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def token_claims(token):
    """The claims of a staff token, read without verifying it (every service verifies
    it on each call): only to notice an expired session before calling anyone."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, AttributeError):
        return None


def safe_next(path):
    """Only a path of this console to go back to after logging in (no open redirect). Any
    control character or space is refused too: browsers drop tabs and newlines while
    parsing a URL, so "/\t/evil.example" would reach them as "//evil.example"."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path \
            or any(ord(c) <= 0x20 or ord(c) == 0x7f for c in path):
        return "/queue"
    return path


class ConsoleClient(SharedExtension):
    """The container's connection pool to the services, and a short memory of who
    holds which token."""

    def setup(self):
        self.settings = settings.from_config(self.container.config)
        self.session = requests.Session()
        self.api = ServicesApi(self.session, self.settings.urls, self.settings.timeout)
        self._who = {}
        self._approval_limits = (None, 0.0)

    def stop(self):
        self.session.close()

    def person(self, token):
        """(the staff member holding this token, {staff id: name} of the people they may
        see and {"store:<id>": name} of their stores), as routing's organisation has them
        now; ApiError(401) when the services no longer accept the token."""
        now = time.monotonic()
        cached = self._who.get(token)
        if cached and cached[2] > now:
            return cached[0], cached[1]
        claims = token_claims(token) or {}
        organisation = self.api.as_person(token).organisation()
        person = Person.from_org(claims.get("sub"), organisation)
        if person is None:
            raise ApiError(401, "unauthenticated", "not in the organisation")
        names = {s["staff_id"]: s["name"] for s in organisation.get("staff", [])}
        names.update({f"store:{s['store_id']}": s["name"] for s in organisation.get("stores", [])})
        if len(self._who) > 1000:
            self._who.clear()
        self._who[token] = (person, names, now + WHO_CACHE_SECONDS)
        return person, names


    def approval_limits(self, api):
        """routing's remedy approval limits, asked with the person's own token (who may
        propose a remedy) and kept for a minute: the same for everyone."""
        limits, until = self._approval_limits
        now = time.monotonic()
        if limits is None or until <= now:
            limits = api.approval_limits()
            self._approval_limits = (limits, now + APPROVAL_LIMITS_CACHE_SECONDS)
        return limits


class ConsoleApp(WsgiApp):
    """Unknown routes and wrong methods answered with a page, not a traceback."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        try:
            provider, values = self.url_map.bind_to_environ(environ).match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            lang = i18n.language(request.cookies.get(LANGUAGE_COOKIE))
            response = page_response(render("error.html", lang, None, message=i18n.text("not_found_page", lang),
                                            title=str(exc.code)), exc.code or 404)
        return response(environ, start_response)


class ConsoleWebServer(WebServer):
    def get_wsgi_app(self):
        return ConsoleApp(self)


def percent(rate):
    """0.953 -> 95.3%; no figure yet -> an em dash (never 'None' or NaN)."""
    return "—" if rate is None else f"{rate * 100:.1f}%".replace(".0%", "%")


def render(template, lang, person, **values):
    return TEMPLATES.get_template(template).render(
        lang=lang, person=person, t=lambda key, **v: i18n.text(key, lang, **v),
        label=lambda value: i18n.label(value, lang), P=Permission, CaseAction=CaseAction, pct=percent,
        **values)


def page_response(html, status=200):
    return Response(html, status=status, mimetype="text/html", headers=SECURITY_HEADERS)


def redirect(location, status=303):
    return Response("", status=status, headers={"Location": location, **SECURITY_HEADERS})


def login_redirect(request, reason="expired"):
    target = request.full_path.rstrip("?") if request.method == "GET" else (request.referrer_path or "/queue")
    response = redirect(f"/login?{urlencode({'next': safe_next(target), 'reason': reason})}")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


class ConsolePage(HttpRequestHandler):
    """A page or form of the console. `access` as the services' routes: PUBLIC, or
    requires(Permission): the logged-in person's role must hold it (a page for other
    roles answers 403 in words). The worker finds `request.person`, `request.api`
    (the services as that person), `request.lang` and `request.csrf`."""

    server = ConsoleWebServer()
    client = ConsoleClient()

    def __init__(self, method, url, *, access, **kwargs):
        if not isinstance(access, Access):
            raise TypeError(f"{method} {url}: access must be PUBLIC or requires(Permission)")
        self.access = access
        kwargs["expected_exceptions"] = (ApiError,) + tuple(kwargs.get("expected_exceptions", ()))
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        request.shallow = False  # the form and cookies are read here, before the worker
        request.lang = i18n.language(request.cookies.get(LANGUAGE_COOKIE))
        request.csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        request.settings = self.client.settings
        request.person, request.api, request.token, request.names = None, self.client.api, None, {}
        referrer = request.headers.get("Referer") or ""
        host = request.host_url.rstrip("/")
        request.referrer_path = referrer[len(host):] if referrer.startswith(host) else None
        if request.method == "POST" and not self._csrf_ok(request):
            back = safe_next(request.referrer_path or "/queue")
            return self._finish(request, redirect(_with_flash(back, "csrf", "error")))
        if not self.access.public:
            token = request.cookies.get(SESSION_COOKIE)
            claims = token_claims(token) if token else None
            if claims is None:
                return self._finish(request, login_redirect(request, "login"))
            if claims.get("exp", 0) <= time.time():
                return self._finish(request, login_redirect(request, "expired"))
            try:
                request.person, request.names = self.client.person(token)
            except ApiError as error:
                if error.status == 401:
                    return self._finish(request, login_redirect(request, "expired"))
                return self._finish(request, self.error_page(request, error))
            request.token, request.api = token, self.client.api.as_person(token)
            request.approval_limits = partial(self.client.approval_limits, request.api)
            if not request.person.can(self.access.permission):
                return self._finish(request, page_response(render(
                    "error.html", request.lang, request.person, title="403", csrf=request.csrf,
                    message=i18n.text("not_allowed_page", request.lang)), 403))
        return self._finish(request, self._run(request))

    def _run(self, request):
        """nameko's HttpRequestHandler.handle_request, with the request at hand when
        the page fails (for the person's language and the way back)."""
        try:
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(
                self, args, kwargs, context_data=self.server.context_data_from_headers(request),
                handle_result=partial(self.handle_result, event))
            return event.wait()
        except ApiError as error:
            return self.error_page(request, error)
        except Exception as exc:
            log.error("console page failed", exc_info=exc)
            return page_response(render("error.html", request.lang, request.person, title="500", csrf=request.csrf,
                                        message=i18n.explain("internal_error", request.lang)), 500)

    def _csrf_ok(self, request):
        sent = request.form.get("csrf") or ""
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        return bool(cookie) and secrets.compare_digest(sent, cookie)

    def _finish(self, request, response):
        secure = self.client.settings.secure_cookies
        if request.cookies.get(CSRF_COOKIE) != request.csrf:
            response.set_cookie(CSRF_COOKIE, request.csrf, httponly=True, samesite="Strict", secure=secure, path="/")
        return response

    def error_page(self, request, error):
        lang = request.lang
        if error.status == 401:
            return login_redirect(request, "expired")
        status = error.status if error.status in (403, 404, 409, 422, 429, 503) else 500
        return page_response(render("error.html", lang, request.person, title=str(status), csrf=request.csrf,
                                    message=i18n.explain(error.code, lang, error.fields, error.retry_after)),
                             status)


page = ConsolePage.decorator


def _with_flash(path, code, kind, fields=()):
    separator = "&" if "?" in path else "?"
    query = {"flash": code, "kind": kind}
    if fields:
        query["fields"] = ",".join(fields)
    return f"{path}{separator}{urlencode(query)}"


def flash_redirect(path, code, kind="ok", fields=()):
    """Post/redirect/get with a message named by a code (no free text in the URL)."""
    return redirect(_with_flash(path, code, kind, fields))


def flash_message(request):
    """The message a redirect asked for, in the person's language, or None."""
    code, kind = request.args.get("flash"), request.args.get("kind", "ok")
    if not code:
        return None
    if kind == "ok":
        try:
            what = i18n.label(CaseAction(code), request.lang)
        except ValueError:
            if code not in i18n.TEXTS:  # only the console's own words: a link cannot write here
                return None
            what = i18n.text(code, request.lang)
        return {"kind": "ok", "text": i18n.text("done", request.lang, what=what)}
    if code in i18n.TEXTS and code not in i18n.ERRORS:
        return {"kind": "error", "text": i18n.text(code, request.lang)}
    fields = {}
    for item in (request.args.get("fields") or "").split(","):
        name, _, reason = item.partition(":")
        if name:
            fields[name] = ["Missing data for required field." if reason == "required" else ""]
    return {"kind": "error", "text": i18n.explain(code, request.lang, fields)}


def set_session(response, token, expires_at, secure):
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/",
                        max_age=max(60, int(expires_at - time.time())) if expires_at else None)
    return response


def set_language(response, lang, secure):
    response.set_cookie(LANGUAGE_COOKIE, lang, httponly=True, samesite="Lax", secure=secure, path="/",
                        max_age=365 * 24 * 3600)
    return response


def quoted(path):
    return quote(path, safe="/?=&")
