"""Reporting entrypoints: every case event into the read model; summaries over HTTP."""
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider
from prometheus_client import REGISTRY

from closeloop_shared import events as ev
from closeloop_shared.bus import event_handler
from closeloop_shared.clock import utcnow
from closeloop_shared.http import HttpError, http, json_response
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import OpsEndpoints
from services.reporting import kpis, read_model
from services.reporting.repository import FactsRepository, OpenCasesCollector

CHINA = ZoneInfo("Asia/Shanghai")
DEFAULT_PERIOD = timedelta(days=7)


class OpenCasesGauge(Repository):
    """Registers the open-cases collector for this container's lifetime."""

    def __init__(self):
        super().__init__(FactsRepository)

    def start(self):
        self.collector = OpenCasesCollector(FactsRepository(self.database))
        REGISTRY.register(self.collector)

    def stop(self):
        REGISTRY.unregister(self.collector)
        super().stop()


def parse_moment(value, field):
    """An ISO date (China midnight) or an ISO datetime (China time if no zone)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HttpError(422, "validation_failed", f"{field} is not an ISO date or datetime",
                        {field: ["Not a valid date or datetime."]})
    if len(value) == 10:
        moment = datetime.combine(moment.date(), time.min)
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA)


def _handler(event_type):
    @event_handler(ev.EMITTERS[event_type], event_type)
    def handle(self, payload):
        data = ev.load(event_type, payload)
        self.facts.apply(data["case_id"], read_model.project(event_type, data))
    handle.__name__ = f"on_{event_type}"
    return handle


class ReportingService(OpsEndpoints):
    name = ev.REPORTING

    facts = Repository(FactsRepository)
    open_cases_gauge = OpenCasesGauge()

    on_case_submitted = _handler(ev.CASE_SUBMITTED)
    on_case_routed = _handler(ev.CASE_ROUTED)
    on_case_escalated = _handler(ev.CASE_ESCALATED)
    on_case_first_responded = _handler(ev.CASE_FIRST_RESPONDED)
    on_case_resolved = _handler(ev.CASE_RESOLVED)
    on_case_reopened = _handler(ev.CASE_REOPENED)
    on_case_closed = _handler(ev.CASE_CLOSED)
    on_revisit_recorded = _handler(ev.REVISIT_RECORDED)

    @http("GET", "/v1/reports/summary")
    def summary(self, request):
        now = utcnow()
        args = request.args
        end = parse_moment(args["to"], "to") if args.get("to") else now
        start = parse_moment(args["from"], "from") if args.get("from") else end - DEFAULT_PERIOD
        if start >= end:
            raise HttpError(422, "validation_failed", "from must be before to",
                            {"from": ["must be before to"]})
        store = args.get("store")
        body = {"from": start, "to": end, "store": store,
                **kpis.summarize(self.facts.rows(start, end, store), now)}
        return json_response(200, body)
