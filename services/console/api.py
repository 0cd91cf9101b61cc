"""The console's port to the five services: their public HTTP APIs, called with the
logged-in person's own token, so every answer is scoped and masked for that person by
the service that owns the data. The console reads no service's collections.

Errors come back as ApiError with the service's machine-readable code (or
`service_unreachable` when a service does not answer), for the pages to word."""
import requests


class ApiError(Exception):
    def __init__(self, status, code, message="", fields=None, retry_after=None, allowed_actions=None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.fields, self.retry_after, self.allowed_actions = fields or {}, retry_after, allowed_actions


class ServicesApi:
    """One person's view of the services (token None: only logging in)."""

    def __init__(self, session, urls, timeout, token=None):
        self.session, self.urls, self.timeout, self.token = session, urls, timeout, token

    def as_person(self, token):
        return ServicesApi(self.session, self.urls, self.timeout, token)

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, method, service, path, body=None, params=None):
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.session.request(method, self.urls[service] + path, json=body, params=params,
                                            headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiError(503, "service_unreachable", f"{service}: {type(exc).__name__}")
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else {}

    def _get(self, service, path, **params):
        return self._call("GET", service, path, params={k: v for k, v in params.items() if v is not None})

    def _post(self, service, path, body=None):
        return self._call("POST", service, path, body=body if body is not None else {})

    # -- routing -----------------------------------------------------------------------

    def login(self, staff_id, password):
        return self._post("routing", "/v1/auth/login", {"staff_id": staff_id, "password": password})

    def organisation(self):
        return self._get("routing", "/v1/org")

    def cases(self, status=None, triage=None, store=None, limit=200):
        return self._get("routing", "/v1/cases", status=status, triage=triage, store=store,
                         limit=limit)["cases"]

    def case(self, case_id):
        return self._get("routing", f"/v1/cases/{_segment(case_id)}")

    def act(self, case_id, action, body=None):
        """POST /v1/cases/{id}/{action} (a lifecycle action): the case as it is now."""
        return self._post("routing", f"/v1/cases/{_segment(case_id)}/{action}", body)

    def reassign(self, case_id, staff_id, reason):
        return self._post("routing", f"/v1/cases/{_segment(case_id)}/reassign",
                          {"staff_id": staff_id, "reason": reason})

    def approval_limits(self):
        """{role: the most it approves on its own in fen, None: no limit}: routing's own
        limits, so the remedy form's approval path is the one routing will apply."""
        return self._get("routing", "/v1/remedies/approval-limits")["limits_fen"]

    def reclassify(self, case_id, category, reason):
        return self._post("routing", f"/v1/cases/{_segment(case_id)}/category",
                          {"category": category, "reason": reason})

    # -- followup ----------------------------------------------------------------------

    def revisits(self, case_id):
        return self._get("followup", "/v1/revisits", case_id=case_id)["revisits"]

    def record_revisit(self, revisit_id, score, comment):
        return self._post("followup", f"/v1/revisits/{_segment(revisit_id)}/outcome",
                          {"score": score, "comment": comment})

    def appointments(self, store_id=None, day=None):
        """{store_id, day, timezone, appointments}: the store's bookings of a store-local
        day (default: the person's store, today there), contacts as the role may see them."""
        return self._get("followup", "/v1/appointments", store_id=store_id, day=day)

    def revisit_tasks_due_today(self):
        return self._get("followup", "/v1/revisit-tasks/due-today")["tasks"]

    def record_attempt(self, task_id, body):
        return self._post("followup", f"/v1/revisit-tasks/{_segment(task_id)}/attempts", body)

    # -- reporting ---------------------------------------------------------------------

    def summary(self, store=None):
        return self._get("reporting", "/v1/reports/summary", store=store)

    def kpis(self, store=None):
        return self._get("reporting", "/v1/reports/kpis", store=store)

    def weekly(self, store=None, week=None):
        return self._get("reporting", "/v1/reports/weekly", store=store, week=week)


def _segment(value):
    """An id as one path segment: the services' ids are [A-Za-z0-9_-]; anything else
    could walk to another route, so it is refused before any call."""
    if not value or not all(ch.isalnum() or ch in "-_" for ch in value):
        raise ApiError(404, "not_found", "not an id")
    return value


def _error(response):
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    extra = {k: v for k, v in error.items() if k not in ("code", "message", "fields")}
    return ApiError(response.status_code, error.get("code") or "internal_error", error.get("message") or "",
                    error.get("fields"), response.headers.get("Retry-After"), extra.get("allowed_actions"))
