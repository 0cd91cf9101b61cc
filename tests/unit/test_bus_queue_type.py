"""BUS_QUEUE_TYPE: every declaration of a work queue (the inbound queues and every event
subscriber queue) carries the same x-queue-type, since RabbitMQ refuses to redeclare a
queue with another type (tests/integration/test_quorum_queues.py proves it on a broker).
No broker here: the entrypoints are set up, not started."""
import pytest
from nameko.containers import ServiceContainer

from closeloop_shared import bus
from closeloop_shared.bus import (
    DEAD_LETTER_QUEUE,
    INBOUND_QUEUE,
    VISIT_COMPLETED_QUEUE,
    consume,
    consume_attributed,
    delay_queue,
    event_handler,
)
from closeloop_shared.config import AMQP_URI, BUS_QUEUE_TYPE, DEFAULTS
from closeloop_shared import events as ev

QUORUM = {"x-queue-type": "quorum"}


class Service:
    """One entrypoint of each kind that consumes a work queue."""
    name = ev.ROUTING

    @event_handler(ev.INTAKE, ev.CASE_SUBMITTED)
    def on_case_submitted(self, payload):
        return payload

    @consume_attributed(INBOUND_QUEUE)
    def on_feedback_submitted(self, body, publisher):
        return body

    @consume(VISIT_COMPLETED_QUEUE)
    def on_visit_completed(self, body):
        return body


def entrypoint_queues(queue_type):
    config = {AMQP_URI: "memory://", **({BUS_QUEUE_TYPE: queue_type} if queue_type else {})}
    container = ServiceContainer(Service, config)
    for entrypoint in container.entrypoints:
        entrypoint.setup()  # nameko's EventHandler builds its queue here; ours types it
    return config, {entrypoint.method_name: entrypoint.queue for entrypoint in container.entrypoints}


def test_classic_is_the_default_and_declares_no_queue_type():
    assert DEFAULTS[BUS_QUEUE_TYPE] == "classic"
    config, queues = entrypoint_queues(None)
    # as the queues were declared before the setting existed: an existing deployment's stay equivalent
    assert all(not queue.queue_arguments for queue in queues.values())
    assert all(not queue.queue_arguments for queue in bus.startup_queues(config))


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_consumers_event_handlers_and_the_startup_declaration_agree(queue_type):
    config, queues = entrypoint_queues(queue_type)
    declared = {queue.name: queue for queue in bus.startup_queues(config)}
    for method, queue in queues.items():
        # the same name, binding, durability and arguments: kombu's Queue equality
        assert declared[queue.name] == queue, method
        assert queue.durable and not queue.auto_delete and not queue.exclusive  # what quorum queues need
        assert (queue.queue_arguments or {}) == (QUORUM if queue_type == "quorum" else {}), method


def test_quorum_types_the_inbound_and_event_queues_and_leaves_dead_letters_and_retries_classic():
    config = {BUS_QUEUE_TYPE: "quorum"}
    queues = bus.startup_queues(config)
    work = [queue for queue in queues if queue.name != DEAD_LETTER_QUEUE.name]
    assert {queue.name for queue in bus.inbound_queues(config)} >= {INBOUND_QUEUE.name, VISIT_COMPLETED_QUEUE.name}
    assert len(work) == len(bus.inbound_queues(config)) + len(bus.subscriber_queues(config))
    assert all(queue.queue_arguments == QUORUM for queue in work)
    (dead_letters,) = [queue for queue in queues if queue.name == DEAD_LETTER_QUEUE.name]
    assert not dead_letters.queue_arguments
    assert "x-queue-type" not in delay_queue(1).queue_arguments
    # the module's own queues, which other code declares as they are, are left alone
    assert not INBOUND_QUEUE.queue_arguments


def test_an_unknown_queue_type_is_refused():
    with pytest.raises(ValueError, match="BUS_QUEUE_TYPE"):
        bus.startup_queues({BUS_QUEUE_TYPE: "stream"})
