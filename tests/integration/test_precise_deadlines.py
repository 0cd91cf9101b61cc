"""Precise breach timers (closeloop_shared.due) in routing, against real RabbitMQ and the
MongoDB-protocol server: the periodic scan is slowed to once a minute so that only the
timers can meet the second."""
import time
from datetime import timedelta

import eventlet
import pytest

from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.standins import free_port
from services.routing.service import RoutingService
from tests.fixtures import wait_for
from tests.integration.test_routing import dispatch, submitted

pytestmark = pytest.mark.integration


@pytest.fixture
def timed_config(service_config, web_config):
    return dict(service_config, **web_config, SLA_SCAN_INTERVAL_SECONDS=60, SLA_FIRST_RESPONSE_SECONDS=2,
                ESCALATION_STEP_SECONDS=3600, OUTBOX_RELAY_INTERVAL_SECONDS=1)


def start_replicas(container_factory, config, count):
    for _ in range(count):
        container_factory(RoutingService, dict(config, WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}")).start()


def test_a_breach_escalates_within_a_second_exactly_once_with_two_replicas(
        container_factory, timed_config, record_events):
    heard = record_events(ev.CASE_ESCALATED)
    start_replicas(container_factory, timed_config, 2)
    event = submitted()
    dispatch(timed_config, ev.CASE_SUBMITTED, event)
    due_at = ev.load(ev.CASE_SUBMITTED, event)["submitted_at"] + timedelta(seconds=2)

    escalated = wait_for(lambda: heard.of_type(ev.CASE_ESCALATED), timeout=10, what="case_escalated")[0]
    heard_at = utcnow()
    assert abs(escalated["due_at"] - due_at) < timedelta(milliseconds=1)  # stored to the millisecond
    assert timedelta(0) <= escalated["escalated_at"] - escalated["due_at"] < timedelta(seconds=1)
    assert heard_at - escalated["due_at"] < timedelta(seconds=1.5)  # published and received too
    assert escalated["reason"] == "first_response"
    eventlet.sleep(2)  # a second replica's copy would show up by now
    assert len(heard.of_type(ev.CASE_ESCALATED)) == 1


def test_a_deadline_missed_while_routing_was_down_fires_once_at_start(
        container_factory, timed_config, record_events, mongo_client, mongo_prefix):
    """The case is routed, routing stops before its deadline and starts again after it:
    the first read of the index finds it overdue and it escalates at once, once."""
    heard = record_events(ev.CASE_ESCALATED)
    first = container_factory(RoutingService, dict(timed_config, WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}"))
    first.start()
    event = submitted()
    dispatch(timed_config, ev.CASE_SUBMITTED, event)
    cases = mongo_client[f"{mongo_prefix}_routing"]["cases"]
    wait_for(lambda: cases.find_one({"_id": event["case_id"]}), what="routed case")
    first.stop()
    time.sleep(3)  # the deadline passes with no routing running
    assert heard.of_type(ev.CASE_ESCALATED) == []

    started = utcnow()
    start_replicas(container_factory, timed_config, 2)
    escalated = wait_for(lambda: heard.of_type(ev.CASE_ESCALATED), timeout=10, what="case_escalated")[0]
    assert escalated["escalated_at"] - started < timedelta(seconds=2)  # the first read, not the scan
    eventlet.sleep(2)
    assert len(heard.of_type(ev.CASE_ESCALATED)) == 1
