"""BUS_QUEUE_TYPE=quorum on the real broker (RabbitMQ >= 3.10 has quorum queues with
message TTL; a single node is a cluster of one): a service declares the bus's work queues
as quorum queues at start, its consumers and event handlers declare theirs identically
(the broker would refuse otherwise), and messages flow through them. A classic queue
cannot be redeclared as a quorum one: the switch-over the README describes."""
import json

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection
from nameko.standalone.events import event_dispatcher

from closeloop_shared import bus
from closeloop_shared import events as ev
from closeloop_shared.bus import (
    DEAD_LETTER_QUEUE,
    FEEDBACK_SUBMITTED_KEY,
    INBOUND_EXCHANGE,
    INBOUND_QUEUE,
    DeclareQueues,
    consume_attributed,
    event_handler,
    with_queue_type,
)
from closeloop_shared.config import BUS_QUEUE_TYPE
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration
received = []


class ReportingLike:
    """Consumes one event queue and the inbound queue, and declares the whole bus."""
    name = ev.REPORTING
    bus_queues = DeclareQueues()

    @event_handler(ev.INTAKE, ev.CASE_SUBMITTED)
    def on_case_submitted(self, payload):
        received.append(("event", payload["case_id"]))

    @consume_attributed(INBOUND_QUEUE)
    def on_feedback_submitted(self, body, publisher):
        received.append(("inbound", body["n"]))


def queue_types(rabbit_manager, vhost):
    return {queue["name"]: queue.get("type", "classic") for queue in rabbit_manager.get_queues(vhost)}


def test_a_service_declares_and_consumes_quorum_work_queues(container_factory, rabbit_config, rabbit_manager):
    received.clear()
    config = dict(rabbit_config, **{BUS_QUEUE_TYPE: "quorum"})
    container_factory(ReportingLike, config).start()  # refused at start if any declaration disagreed

    types = queue_types(rabbit_manager, rabbit_config["vhost"])
    work = [queue.name for queue in bus.startup_queues(config) if queue.name != DEAD_LETTER_QUEUE.name]
    assert {name: types[name] for name in work} == {name: "quorum" for name in work}
    assert types[DEAD_LETTER_QUEUE.name] == "classic"

    event_dispatcher(rabbit_config)(ev.INTAKE, ev.CASE_SUBMITTED, {"case_id": "c-1"})
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        connection.Producer().publish(json.dumps({"n": 1}), exchange=INBOUND_EXCHANGE,
                                      routing_key=FEEDBACK_SUBMITTED_KEY, content_type="application/json")
    wait_for(lambda: len(received) == 2, timeout=15, what="the event and the inbound message")
    assert sorted(received) == [("event", "c-1"), ("inbound", 1)]


def test_a_classic_queue_is_not_redeclared_as_quorum(rabbit_config):
    with Connection(rabbit_config["AMQP_URI"]) as connection:
        INBOUND_QUEUE(connection.channel()).declare()
        with pytest.raises(PreconditionFailed, match="x-queue-type"):
            with_queue_type(INBOUND_QUEUE, "quorum")(connection.channel()).declare()
