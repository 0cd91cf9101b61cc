"""Reporting entrypoints: every case event into the read model; summaries over HTTP."""
from datetime import date, timedelta

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher
from werkzeug.wrappers import Response

from closeloop_shared import events as ev
from closeloop_shared.bus import event_handler, timer
from closeloop_shared.clock import CHINA, utcnow
from closeloop_shared.config import (
    OUTBOX_RELAY_INTERVAL_SECONDS, REPORTING_AT_RISK_LEAD_SECONDS, REPORTING_DIGEST_HOUR,
    REPORTING_DIGEST_INTERVAL_SECONDS, REPORTING_FOLD_INTERVAL_SECONDS, REPORTING_LEGACY_FOLD_INTERVAL_SECONDS,
    setting)
from closeloop_shared.access import scope_of
from closeloop_shared.auth import CurrentOrganisation, Identity
from closeloop_shared.contract import Permission as P
from closeloop_shared.http import HttpError, http, json_response, requires
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import FollowsOrganisation, OpsEndpoints

from services.reporting import flows, metrics, periods, reports
from services.reporting.repository import FactsRepository, OpenCasesCollector
from services.reporting.schemas import OPENAPI


class OpenCasesGauge(metrics.RegisteredCollector):
    """The open-cases collector (repository.OpenCasesCollector), for this container's lifetime."""

    identity = Identity()  # the brands whose on-time outcomes are exported

    def collector(self):
        lead = timedelta(seconds=setting(self.container.config, REPORTING_AT_RISK_LEAD_SECONDS))
        return OpenCasesCollector(FactsRepository(self.database), lead,
                                  brands=lambda: sorted(self.identity.organisation().brands))


def _handler(event_type):
    @event_handler(ev.EMITTERS[event_type], event_type)
    def handle(self, payload):
        row = flows.take_in(self.facts, event_type, payload, utcnow(), self.org)
        if row is not None and event_type == ev.CASE_RESOLVED:
            metrics.observe_resolution(row)
    handle.__name__ = f"on_{event_type}"
    return handle


def _period(request, now):
    try:
        return periods.period(request.args.get("from"), request.args.get("to"), now)
    except periods.BadPeriod as bad:
        raise HttpError(422, "validation_failed", f"{bad.field}: {bad.message}",
                        {bad.field: [bad.message]})


class ReportingService(OpsEndpoints, FollowsOrganisation):
    name = ev.REPORTING
    openapi_spec = OPENAPI

    facts = Repository(FactsRepository)
    dispatch = EventDispatcher()
    config = Config()
    org = CurrentOrganisation()
    open_cases_gauge = OpenCasesGauge()
    revisit_outcomes_gauge = metrics.RevisitOutcomesGauge()
    pending_increments_gauge = metrics.PendingIncrementsGauge()

    on_case_submitted = _handler(ev.CASE_SUBMITTED)
    on_case_routed = _handler(ev.CASE_ROUTED)
    on_case_escalated = _handler(ev.CASE_ESCALATED)
    on_case_first_responded = _handler(ev.CASE_FIRST_RESPONDED)
    on_case_resolved = _handler(ev.CASE_RESOLVED)
    on_case_reopened = _handler(ev.CASE_REOPENED)
    on_case_closed = _handler(ev.CASE_CLOSED)
    on_revisit_recorded = _handler(ev.REVISIT_RECORDED)
    on_case_reclassified = _handler(ev.CASE_RECLASSIFIED)
    on_case_deadline_breached = _handler(ev.CASE_DEADLINE_BREACHED)
    on_report_signed_off = _handler(ev.REPORT_SIGNED_OFF)
    on_revisit_task_completed = _handler(ev.REVISIT_TASK_COMPLETED)

    @timer(REPORTING_FOLD_INTERVAL_SECONDS)
    def fold_increments(self):
        """What a handler left pending while another folded: into the buckets within moments."""
        flows.fold_backlog(self.facts)

    @timer(REPORTING_LEGACY_FOLD_INTERVAL_SECONDS)
    def fold_legacy_increments(self):
        """What a release before 2026-11 left in pending_increments (an upgrade's old
        replicas may still be adding some): folded once, like the rest."""
        flows.fold_legacy(self.facts)

    @timer(REPORTING_DIGEST_INTERVAL_SECONDS)
    def send_weekly_digests(self):
        hour = setting(self.config, REPORTING_DIGEST_HOUR)
        for digest_id, event in flows.weekly_digests(self.facts, self.org, utcnow(), hour):
            self.facts.digest_outbox.flush(digest_id, [event], self.dispatch)

    @timer(OUTBOX_RELAY_INTERVAL_SECONDS)
    def relay_digests(self):
        self.facts.digest_outbox.relay(self.dispatch, utcnow())

    @http("GET", "/v1/reports/summary", access=requires(P.REPORT_READ))
    def summary(self, request):
        """The first report's contract, now read from the pre-aggregated buckets."""
        start, end = _period(request, utcnow())
        store, scope = self._store_in_scope(request)
        the_plan = reports.plan(reports.GroupBy.NONE, self.org, scope.stores, store)
        return json_response(200, {**reports.summary(self.facts, the_plan, reports.span_of(start, end)),
                                   "store": store})

    @http("GET", "/v1/reports/kpis", access=requires(P.REPORT_READ))
    def kpis_report(self, request):
        start, end = _period(request, utcnow())
        store, scope = self._store_in_scope(request)
        try:
            group_by = reports.GroupBy(request.args.get("by", reports.GroupBy.NONE.value))
        except ValueError:
            message = f"one of {', '.join(g.value for g in reports.GroupBy)}"
            raise HttpError(422, "validation_failed", f"by: {message}", {"by": [message]})
        body = reports.report(self.facts, group_by, reports.plan(group_by, self.org, scope.stores, store),
                              reports.span_of(start, end))
        if request.args.get("format") == "csv":
            return Response(reports.csv_text(body), status=200, headers={"Content-Type": "text/csv; charset=utf-8"})
        return json_response(200, body)

    @http("GET", "/v1/reports/weekly", access=requires(P.REPORT_READ))
    def weekly_report(self, request):
        """Seed 000's weekly category summary: the week holding `week` (default: last week)."""
        today = utcnow().astimezone(CHINA).date()
        try:
            day = date.fromisoformat(request.args["week"]) if request.args.get("week") else today - timedelta(days=7)
        except ValueError:
            raise HttpError(422, "validation_failed", "week: Not a valid date.", {"week": ["Not a valid date."]})
        store, scope = self._store_in_scope(request)
        the_plan = reports.plan(reports.GroupBy.NONE, self.org, scope.stores, store)
        return json_response(200, reports.weekly(self.facts, the_plan, self.org, day))

    def _store_in_scope(self, request):
        store = request.args.get("store")
        scope = scope_of(request.principal, self.org)
        if store and not scope.allows(store):
            raise HttpError(404, "store_not_found", f"no store {store}")
        return store, scope
