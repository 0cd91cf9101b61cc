"""Console entrypoints: the staff console's pages and forms. Each route declares its
access rule; the use cases are in flows.py, the rules in domain.py, the words in
i18n.py, the calls to the five services in api.py (with the person's own token)."""
import mimetypes
import time
from pathlib import Path

from werkzeug.wrappers import Response

from closeloop_shared.clock import utcnow
from closeloop_shared.contract import CaseAction, Category, RootCause
from closeloop_shared.contract import Permission as P
from closeloop_shared.http import PUBLIC, requires
from services.console import domain, flows, i18n
from services.console.api import ApiError
from services.console.web import (
    flash_message, flash_redirect, page, page_response, redirect, render, safe_next,
    set_language, set_session, token_claims)

STATIC = Path(__file__).resolve().parent / "static"


class ConsoleService:
    name = "console"

    # -- operations ---------------------------------------------------------------------

    @page("GET", "/health", access=PUBLIC)
    def health(self, request):
        return Response('{"status": "ok", "service": "console"}', mimetype="application/json")

    @page("GET", "/health/live", access=PUBLIC)
    def liveness(self, request):
        return Response('{"status": "ok", "service": "console"}', mimetype="application/json")

    @page("GET", "/health/ready", access=PUBLIC)
    def ready(self, request):
        """Ready when routing (logins, cases) answers; the other services' outages show
        on the pages that need them, in words."""
        try:
            request.api.session.get(request.settings.urls["routing"] + "/health/live", timeout=3).raise_for_status()
        except Exception as exc:  # any failure means not ready, and says why
            return Response(f'{{"status": "unavailable", "routing": "{type(exc).__name__}"}}', status=503,
                            mimetype="application/json")
        return Response('{"status": "ok", "service": "console"}', mimetype="application/json")

    @page("GET", "/static/<string:name>", access=PUBLIC)
    def static(self, request, name):
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return page_response(render("error.html", request.lang, None, title="404",
                                        message=i18n.text("not_found_page", request.lang)), 404)
        return Response(path.read_bytes(), mimetype=mimetypes.guess_type(name)[0] or "application/octet-stream",
                        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    # -- logging in and out, language ------------------------------------------------------

    @page("GET", "/login", access=PUBLIC)
    def login_form(self, request):
        reason = request.args.get("reason")
        notice = i18n.text("expired" if reason == "expired" else "logged_out", request.lang) \
            if reason in ("expired", "logged_out") else None
        return page_response(render("login.html", request.lang, None, csrf=request.csrf, notice=notice,
                                    next=safe_next(request.args.get("next")), staff_id=""))

    @page("POST", "/login", access=PUBLIC)
    def log_in(self, request):
        staff_id = (request.form.get("staff_id") or "").strip()
        target = safe_next(request.form.get("next"))
        try:
            session = request.api.login(staff_id, request.form.get("password") or "")
        except ApiError as error:
            message = i18n.explain(error.code, request.lang, error.fields, error.retry_after)
            return page_response(render("login.html", request.lang, None, csrf=request.csrf, error=message,
                                        next=target, staff_id=staff_id), 401 if error.status == 401 else error.status)
        claims = token_claims(session["token"]) or {}
        response = redirect(target)
        return set_session(response, session["token"], claims.get("exp"), request.settings.secure_cookies)

    @page("POST", "/logout", access=PUBLIC)
    def log_out(self, request):
        response = redirect("/login?reason=logged_out")
        response.delete_cookie("cl_session", path="/")
        return response

    @page("GET", "/language", access=PUBLIC)
    def switch_language(self, request):
        lang = i18n.language(request.args.get("to"))
        return set_language(redirect(safe_next(request.args.get("next"))), lang, request.settings.secure_cookies)

    @page("GET", "/", access=PUBLIC)
    def home(self, request):
        return redirect("/queue")

    # -- my queue, one case ------------------------------------------------------------------

    @page("GET", "/queue", access=requires(P.CASE_READ))
    def queue(self, request):
        now = utcnow()
        mine_only = request.args.get("mine") == "1"
        rows = flows.queue(request.api, request.person, now, mine_only)
        return self._page(request, "queue.html", rows=rows, mine_only=mine_only, now=now)

    @page("GET", "/cases/<string:case_id>", access=requires(P.CASE_READ))
    def case(self, request, case_id):
        now = utcnow()
        view = flows.case_page(request.api, request.person, case_id, now, request.approval_limits)
        return self._page(request, "case.html", now=now, root_causes=list(RootCause),
                          today=flows.local(now).date().isoformat(), **view)

    @page("POST", "/cases/<string:case_id>/acknowledge", access=requires(P.CASE_ACKNOWLEDGE))
    def acknowledge(self, request, case_id):
        return self._act(request, case_id, CaseAction.ACKNOWLEDGE)

    @page("POST", "/cases/<string:case_id>/respond", access=requires(P.CASE_RESPOND))
    def respond(self, request, case_id):
        return self._act(request, case_id, CaseAction.RESPOND)

    @page("POST", "/cases/<string:case_id>/note", access=requires(P.CASE_RESPOND))
    def note(self, request, case_id):
        return self._act(request, case_id, CaseAction.NOTE)

    @page("POST", "/cases/<string:case_id>/request-info", access=requires(P.CASE_RESPOND))
    def request_info(self, request, case_id):
        return self._act(request, case_id, CaseAction.REQUEST_INFO)

    @page("POST", "/cases/<string:case_id>/resume", access=requires(P.CASE_RESPOND))
    def resume(self, request, case_id):
        return self._act(request, case_id, CaseAction.RESUME)

    @page("POST", "/cases/<string:case_id>/report-to-superior", access=requires(P.CASE_RESPOND))
    def report_to_superior(self, request, case_id):
        return self._act(request, case_id, CaseAction.REPORT_TO_SUPERIOR)

    @page("POST", "/cases/<string:case_id>/propose-remedy", access=requires(P.CASE_RESOLVE))
    def propose_remedy(self, request, case_id):
        return self._act(request, case_id, CaseAction.PROPOSE_REMEDY)

    @page("POST", "/cases/<string:case_id>/approve-remedy", access=requires(P.CASE_REMEDY_APPROVE))
    def approve_remedy(self, request, case_id):
        return self._act(request, case_id, CaseAction.APPROVE_REMEDY)

    @page("POST", "/cases/<string:case_id>/reject-remedy", access=requires(P.CASE_REMEDY_APPROVE))
    def reject_remedy(self, request, case_id):
        return self._act(request, case_id, CaseAction.REJECT_REMEDY)

    @page("POST", "/cases/<string:case_id>/resolve", access=requires(P.CASE_RESOLVE))
    def resolve(self, request, case_id):
        return self._act(request, case_id, CaseAction.RESOLVE)

    @page("POST", "/cases/<string:case_id>/root-cause", access=requires(P.CASE_ROOT_CAUSE))
    def root_cause(self, request, case_id):
        return self._act(request, case_id, CaseAction.ROOT_CAUSE)

    @page("POST", "/cases/<string:case_id>/file-report", access=requires(P.CASE_REPORT))
    def file_report(self, request, case_id):
        return self._act(request, case_id, CaseAction.FILE_REPORT)

    @page("POST", "/cases/<string:case_id>/sign-off-report", access=requires(P.CASE_REPORT_SIGN_OFF))
    def sign_off_report(self, request, case_id):
        return self._act(request, case_id, CaseAction.SIGN_OFF_REPORT)

    @page("POST", "/cases/<string:case_id>/close", access=requires(P.CASE_CLOSE))
    def close(self, request, case_id):
        return self._act(request, case_id, CaseAction.CLOSE)

    @page("POST", "/cases/<string:case_id>/reopen", access=requires(P.CASE_REOPEN))
    def reopen(self, request, case_id):
        return self._act(request, case_id, CaseAction.REOPEN)

    @page("POST", "/cases/<string:case_id>/archive", access=requires(P.CASE_ARCHIVE))
    def archive(self, request, case_id):
        return self._act(request, case_id, CaseAction.ARCHIVE)

    @page("POST", "/cases/<string:case_id>/category", access=requires(P.CASE_RECLASSIFY))
    def set_category(self, request, case_id):
        back = safe_next(request.form.get("back") or "/triage")
        return self._try(back, lambda: flows.reclassify(request.api, case_id, request.form), "set_category")

    @page("POST", "/cases/<string:case_id>/reassign", access=requires(P.CASE_REASSIGN))
    def reassign(self, request, case_id):
        return self._try(f"/cases/{case_id}", lambda: flows.reassign(request.api, case_id, request.form), "reassigned")

    @page("POST", "/revisits/<string:revisit_id>/outcome", access=requires(P.REVISIT_RECORD))
    def record_revisit(self, request, revisit_id):
        back = safe_next(request.form.get("back") or "/revisits")
        return self._try(back, lambda: flows.record_revisit(request.api, revisit_id, request.form),
                         "revisit_recorded")

    # -- triage, revisits, escalations, dashboard, digest -----------------------------------

    @page("GET", "/triage", access=requires(P.CASE_RECLASSIFY))
    def triage(self, request):
        return self._page(request, "triage.html", cases=flows.triage(request.api), categories=list(Category))

    @page("GET", "/revisits", access=requires(P.REVISIT_READ))
    def revisits(self, request):
        now = utcnow()
        stores = self._stores(request)
        store = flows.appointment_store(request.person, stores, request.args.get("store"))
        return self._page(request, "revisits.html", now=now, stores=stores, store=store,
                          **flows.revisits_today(request.api, now, store, request.args.get("day") or None))

    @page("POST", "/revisit-tasks/<string:task_id>/attempts", access=requires(P.REVISIT_RECORD))
    def record_attempt(self, request, task_id):
        return self._try("/revisits", lambda: flows.record_attempt(request.api, task_id, request.form),
                         "revisit_recorded")

    @page("GET", "/escalations", access=requires(P.CASE_REASSIGN))
    def escalations(self, request):
        now = utcnow()
        return self._page(request, "escalations.html", now=now,
                          **flows.escalations(request.api, request.person, now))

    @page("GET", "/dashboard", access=requires(P.REPORT_READ))
    def dashboard(self, request):
        view = flows.dashboard(request.api, request.person, utcnow(), request.args.get("store"))
        return self._page(request, "dashboard.html", stores=self._stores(request), **view)

    @page("GET", "/digest", access=requires(P.REPORT_READ))
    def digest(self, request):
        return self._page(request, "digest.html", digest=flows.digest(request.api, request.person,
                                                                      request.args.get("week")))

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _stores(request):
        """{store id: name} of the person's stores, as routing's organisation shows them."""
        return {key[6:]: name for key, name in request.names.items() if key.startswith("store:")}

    def _page(self, request, template, **values):
        html = render(template, request.lang, request.person, csrf=request.csrf, flash=flash_message(request),
                      fragment=request.args.get("fragment") == "1", path=request.path,
                      full_path=request.full_path.rstrip("?"), poll=request.settings.poll_seconds,
                      domain=domain, flows=flows, i18n=i18n, server_time=time.time(),
                      who=lambda staff_id: request.names.get(staff_id) or i18n.actor_label(staff_id, request.lang),
                      people={k: v for k, v in request.names.items() if not k.startswith("store:")},
                      **values)
        return page_response(html)

    def _act(self, request, case_id, action):
        back = f"/cases/{case_id}"
        return self._try(back, lambda: flows.act(request.api, request.person, case_id, action, request.form),
                         action.value)

    def _try(self, back, call, done):
        """Post/redirect/get: back to the page with what happened, in words."""
        try:
            call()
        except flows.FormRefused as refused:
            return flash_redirect(back, refused.text_key, "error")
        except ApiError as error:
            if error.status == 401:
                raise
            fields = tuple(f"{name}:{'required' if 'Missing' in str(reasons) else 'invalid'}"
                           for name, reasons in (error.fields or {}).items())
            return flash_redirect(back, error.code, "error", fields)
        return flash_redirect(back, done)
