"""Every Grafana query and every alert expression names a metric the five running
services really export, and every series it selects exists as soon as they start: read
from their live /metrics, not from a list in the tests. Also: the outbox backlog gauges and
the follow-up dashboard's revisit outcomes measure what they say."""
import json
import re
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_access import SERVICES, Stack

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC_NAME = re.compile(r"\bcloseloop_[A-Za-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
            "summary": ("_sum", "_count", "")}


def exported(text):
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        base = family[:-len("_total")] if family.endswith("_total") else family
        names |= {base + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names


def dashboard_expressions():
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        def panels(items):
            for panel in items:
                yield panel
                yield from panels(panel.get("panels", []))
        for panel in panels(json.loads(path.read_text(encoding="utf-8"))["panels"]):
            yield from (target["expr"] for target in panel.get("targets", []) if target.get("expr"))


def alert_expressions():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboards_and_alerts_select_only_series_the_services_export_from_the_start(container_factory,
                                                                                     service_config):
    stack = Stack(container_factory, service_config)
    live, texts = set(), {}
    for name in SERVICES:
        response = requests.get(stack.urls[name] + "/metrics", timeout=10)
        assert response.status_code == 200, name
        live |= exported(response.text)
        texts[name] = response.text
    # the risk gauges exist (at zero) before any case: every series is created at start
    assert {"closeloop_cases_at_risk", "closeloop_cases_breached_open", "closeloop_open_cases"} <= live
    dashboards, alerts = list(dashboard_expressions()), alert_expressions()
    assert len(dashboards) >= 18 and len(alerts) >= 6
    for expression in [*dashboards, *alerts]:
        unknown = set(METRIC_NAME.findall(expression)) - live
        assert not unknown, f"{expression} names metrics no service exports: {unknown}"
    every_selected_series_exists_at_start(texts)  # one stack for both: each start takes seconds


SELECTOR = re.compile(r"\b(closeloop_[A-Za-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"')
TARGET_LABELS = {"job", "instance"}  # Prometheus adds these when it scrapes


def live_samples(text):
    """{sample name: [its label sets]}"""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample.labels)
    return found


def selected(samples, name, matchers):
    return any(all(re.fullmatch(value, labels.get(label, "")) if op == "=~" else labels.get(label) == value
                   for label, op, value in matchers)
               for labels in samples.get(name, ()))


def every_selected_series_exists_at_start(texts):
    """Before any traffic: a selector such as {outcome="abandoned"} or
    {service="routing", entrypoint="check_deadlines"} already matches a series, so the first
    event after a restart counts in increase() and alerts, and no panel starts out empty."""
    samples = {name: live_samples(text) for name, text in texts.items()}
    everything = {}
    for found in samples.values():
        for name, label_sets in found.items():
            everything.setdefault(name, []).extend(label_sets)
    checked = 0
    for expression in [*dashboard_expressions(), *alert_expressions()]:
        for name, body in SELECTOR.findall(expression):
            matchers = [(label, op, value) for label, op, value in MATCHER.findall(body)
                        if label not in TARGET_LABELS and op in ("=", "=~")]
            assert selected(everything, name, matchers), f"no series {name}{{{body}}} at start ({expression})"
            checked += 1
    assert checked >= 25
    for service, found in samples.items():
        # RED per entrypoint: /health/ready at least, in this service's own name
        assert selected(found, "closeloop_entrypoint_calls_total",
                        [("service", "=", service), ("entrypoint", "=", "ready"), ("kind", "=", "http")]), service
        assert selected(found, "closeloop_entrypoint_duration_seconds_count",
                        [("service", "=", service), ("kind", "=~", "event|consumer")]), service
        assert selected(found, "closeloop_outbox_backlog_messages", [("service", "=", service)]), service
    routing = samples["routing"]
    assert selected(routing, "closeloop_timer_last_success_timestamp_seconds",
                    [("service", "=", "routing"), ("entrypoint", "=", "check_deadlines"), ("kind", "=", "timer")])
    assert selected(routing, "closeloop_due_timer_last_read_timestamp_seconds",
                    [("service", "=", "routing"), ("collection", "=", "cases")])
    for clock in ("first_response", "resolution", "update", "report"):
        assert selected(routing, "closeloop_sla_breaches_total", [("clock", "=", clock)]), clock


def test_the_outbox_backlog_gauges_count_what_the_relay_left_and_its_age(mongo_client, mongo_prefix):
    from datetime import timedelta

    from prometheus_client import REGISTRY

    from closeloop_shared.clock import utcnow
    from closeloop_shared.events import new_event
    from closeloop_shared.outbox import Outbox

    collection = mongo_client[f"{mongo_prefix}_monitoring"]["docs"]
    Outbox.ensure_indexes(collection)
    labels = {"service": "monitoring", "collection": "docs"}
    assert REGISTRY.get_sample_value("closeloop_outbox_backlog_messages", labels) == 0  # there from the start
    now = utcnow()

    def event(case_id):
        return new_event("case_closed", {"case_id": case_id, "store_id": "S", "closed_at": now})

    collection.insert_many([
        {"_id": "old", "outbox": [event("old"), event("old")], "outbox_pending": True,
         "updated_at": now - timedelta(minutes=10)},
        {"_id": "new", "outbox": [event("new")], "outbox_pending": True, "updated_at": now},
        {"_id": "done", "outbox": [], "outbox_pending": False, "updated_at": now - timedelta(hours=1)}])

    def broker_down(kind, payload):
        raise ConnectionError("broker down")

    Outbox(collection).relay(broker_down, now)  # nothing could be published: all three wait
    assert REGISTRY.get_sample_value("closeloop_outbox_backlog_messages", labels) == 3
    assert 599 <= REGISTRY.get_sample_value("closeloop_outbox_oldest_age_seconds", labels) <= 601
    Outbox(collection).relay(lambda kind, payload: None, now + timedelta(seconds=10))  # broker back
    assert REGISTRY.get_sample_value("closeloop_outbox_backlog_messages", labels) == 0
    assert REGISTRY.get_sample_value("closeloop_outbox_oldest_age_seconds", labels) == 0


def test_the_follow_up_dashboards_revisit_outcomes_follow_reportings_events(container_factory, service_config,
                                                                             web_config, web_session):
    import uuid

    from nameko.standalone.events import event_dispatcher

    from closeloop_shared import events as ev
    from closeloop_shared.clock import utcnow
    from services.reporting.service import ReportingService
    from tests.fixtures import wait_for

    config = dict(service_config, **web_config)
    container_factory(ReportingService, config).start()

    def outcomes():
        found = {}
        for family in text_string_to_metric_families(web_session.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "closeloop_revisit_outcomes_7d":
                    found[sample.labels["source"], sample.labels["outcome"]] = sample.value
        return found

    assert set(outcomes().values()) == {0}  # every series there before the first revisit
    now = utcnow()
    dispatch = event_dispatcher(config)
    for i, (status, score) in enumerate([("completed", 5), ("completed", 2), ("unreachable", None)]):
        dispatch(ev.EMITTERS[ev.REVISIT_TASK_COMPLETED], ev.REVISIT_TASK_COMPLETED, ev.dump(ev.REVISIT_TASK_COMPLETED, {
            "event_id": uuid.uuid4().hex, "task_id": f"t{i}", "store_id": "SH-XH-001", "owner_id": "sh-xh-rv",
            "tier": "key", "purpose": "care", "status": status, "attempts": 3, "score": score,
            "planned_at": now, "completed_at": now}))
    found = wait_for(lambda: (lambda o: o if o[("programme", "unreachable")] == 1 and
                              o[("programme", "completed")] == 2 else None)(outcomes()), what="revisit outcomes")
    assert found == {("programme", "completed"): 2, ("programme", "unreachable"): 1,
                     ("programme", "satisfied"): 1, ("programme", "unsatisfied"): 1,
                     ("case", "satisfied"): 0, ("case", "unsatisfied"): 0}
