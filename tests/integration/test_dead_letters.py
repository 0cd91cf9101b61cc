"""deploy/dead_letters.py against RabbitMQ: filters, dry run, and nothing leaves the
dead-letter queue before its replay is confirmed and routed."""
import json
import time
from types import SimpleNamespace

import pytest
from kombu import Connection, Exchange, Queue

from closeloop_shared import bus
from deploy import dead_letters
from deploy.dead_letters import Filters

pytestmark = pytest.mark.integration

UPSTREAM = Exchange("upstream.events", type="topic", durable=True)
TARGET = Queue("replay-target", exchange=UPSTREAM, routing_key="thing_happened", durable=True)


def park(amqp_uri, service, reason, body, routing_key="thing_happened", exchange="upstream.events"):
    """A message as a service's handler would have dead-lettered it."""
    message = SimpleNamespace(
        body=json.dumps(body).encode(), headers={"nameko.call_id_stack": ["x"]},
        delivery_info={"exchange": exchange, "routing_key": routing_key},
        content_type="application/json", content_encoding="utf-8", properties={})
    bus.dead_letter(amqp_uri, service, message, reason)


@pytest.fixture
def broker(rabbit_config):
    amqp_uri = rabbit_config["AMQP_URI"]
    with Connection(amqp_uri) as connection:
        TARGET(connection.default_channel).declare()
    return amqp_uri


def received(amqp_uri):
    taken = []
    with Connection(amqp_uri) as connection:
        queue = TARGET(connection.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            taken.append((json.loads(message.body), message.headers))
    return taken


def parked(amqp_uri):
    lines = []
    dead_letters.show(amqp_uri, out=lines.append)
    return lines


def test_replay_by_service_sends_back_body_and_headers_and_keeps_the_rest(broker):
    park(broker, "followup", "ValidationError: bad", {"n": 1})
    park(broker, "reporting", "failed 6 times", {"n": 2})
    assert dead_letters.replay(broker, filters=Filters(service="followup")) == 1
    [(body, headers)] = received(broker)
    assert body == {"n": 1} and headers["nameko.call_id_stack"] == ["x"]
    assert bus.REASON_HEADER not in headers and dead_letters.REPLAYED_AT_HEADER in headers
    [left] = parked(broker)
    assert left.startswith("reporting")


def test_dry_run_changes_nothing(broker):
    park(broker, "followup", "ValidationError: bad", {"n": 1})
    said = []
    assert dead_letters.replay(broker, dry_run=True, out=said.append) == 1
    assert "would replay" in said[0] and "upstream.events / thing_happened" in said[0]
    assert received(broker) == [] and len(parked(broker)) == 1


def test_filters_by_reason_and_age(broker):
    park(broker, "intake", "Unprocessable: unknown store 'XX'", {"n": 1})
    park(broker, "intake", "ValidationError: {'customer': ...}", {"n": 2})
    assert dead_letters.replay(broker, filters=Filters(reason="UNKNOWN STORE", older_than=3600)) == 0
    assert dead_letters.replay(broker, filters=Filters(reason="unknown store", newer_than=3600)) == 1
    assert [b for b, _ in received(broker)] == [{"n": 1}]
    time.sleep(1.1)
    assert dead_letters.replay(broker, filters=Filters(older_than=1)) == 1
    assert parked(broker) == []


def test_a_message_nobody_would_receive_is_kept(broker):
    park(broker, "notify", "failed 6 times", {"n": 3}, routing_key="nobody_listens")
    outcome = dead_letters.replay_letters(broker, out=lambda line: None)
    assert (outcome.replayed, outcome.unroutable) == (0, 1)
    assert len(parked(broker)) == 1  # still there, to replay once a consumer exists


def test_cli_exit_status_and_summary(broker, capsys):
    park(broker, "notify", "failed 6 times", {"n": 3}, routing_key="nobody_listens")
    assert dead_letters.main(["replay", "--amqp-uri", broker]) == 1
    assert "1 unroutable" in capsys.readouterr().out
    assert dead_letters.main(["list", "--amqp-uri", broker, "--service", "notify"]) == 0
