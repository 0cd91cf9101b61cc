"""The bus under a broker restart: a handler finishing while RabbitMQ is away must not
take its service down (acking on a dead channel is logged and left to redelivery),
and the container reconnects and consumes again once the broker is back.

Restarts RabbitMQ's application (`rabbitmqctl stop_app` / `start_app`): skipped where
rabbitmqctl is not available."""
import shutil
import subprocess
import time

import eventlet
import pytest
from kombu import Connection
from nameko.standalone.events import event_dispatcher

from closeloop_shared.bus import event_handler
from tests.fixtures import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl to restart the broker"),
]


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def management_answers():
    """The management API (nameko's per-test vhosts are made through it) is back too."""
    import requests
    try:
        return requests.get("http://127.0.0.1:15672/api/overview", auth=("guest", "guest"), timeout=2).ok
    except requests.RequestException:
        return False


def broker_answers(amqp_uri):
    try:
        with Connection(amqp_uri, connect_timeout=1) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


class Slow:
    name = "slow"
    handled = []
    pause = 0.0

    @event_handler("upstream", "thing_happened")
    def on_thing(self, payload):
        eventlet.sleep(Slow.pause)  # still working when the broker goes away
        Slow.handled.append(payload["n"])


@pytest.fixture
def restart_broker(rabbit_config):
    """Stops RabbitMQ's application; returns a function that starts it again. Always
    started again at the end, whatever the test did."""
    amqp_uri = rabbit_config["AMQP_URI"]
    stopped = []

    def stop():
        rabbitmqctl("stop_app")
        stopped.append(True)

    def start():
        rabbitmqctl("start_app")
        stopped.clear()
        wait_for(lambda: broker_answers(amqp_uri), timeout=60, what="broker back")
        wait_for(management_answers, timeout=60, what="management API back")

    yield stop, start
    if stopped:
        start()


def test_a_handler_finishing_during_a_broker_restart_leaves_the_service_running(
        container_factory, service_config, restart_broker, caplog):
    stop_broker, start_broker = restart_broker
    Slow.handled, Slow.pause = [], 3.0
    container = container_factory(Slow, service_config)
    container.start()
    dispatch = event_dispatcher(service_config)
    dispatch("upstream", "thing_happened", {"n": 1})
    time.sleep(0.5)  # the handler has the message and is working on it

    stop_broker()  # the ack after the handler returns now meets a dead connection
    wait_for(lambda: 1 in Slow.handled, timeout=10, what="handler to finish")
    time.sleep(1)
    assert container._died.ready() is False, "the container died on a failed ack"

    start_broker()
    Slow.pause = 0.0
    deadline = time.monotonic() + 60
    while True:  # the dispatcher may meet the broker before the service has reconnected
        try:
            event_dispatcher(service_config)("upstream", "thing_happened", {"n": 2})
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    wait_for(lambda: 2 in Slow.handled, timeout=60, what="consuming again after the restart")
    if any("could not ack" in record.getMessage() for record in caplog.records):
        # the ack met the dead connection: the broker kept the message and redelivers it
        # (whether the ack raced the broker's closing depends on how fast stop_app is)
        wait_for(lambda: Slow.handled.count(1) >= 2, timeout=30, what="redelivery of the unacked message")
    assert not container._died.ready()


def test_a_connection_error_while_acking_is_logged_not_fatal(container_factory, service_config, monkeypatch):
    """What a restart under load looks like to the worker: the socket is gone before
    the consumer noticed, and ack() raises ConnectionResetError (or BrokenPipeError)."""
    from kombu.message import Message

    real_ack, failures = Message.ack, []

    def ack_on_a_dead_socket(message, *args, **kwargs):
        if not failures:
            failures.append(message.delivery_tag)
            raise ConnectionResetError(104, "Connection reset by peer")
        return real_ack(message, *args, **kwargs)

    monkeypatch.setattr(Message, "ack", ack_on_a_dead_socket)
    Slow.handled, Slow.pause = [], 0.0
    container = container_factory(Slow, service_config)
    container.start()
    dispatch = event_dispatcher(service_config)
    dispatch("upstream", "thing_happened", {"n": 1})
    wait_for(lambda: failures, what="the failed ack")
    dispatch("upstream", "thing_happened", {"n": 2})
    wait_for(lambda: 2 in Slow.handled, what="the next message")
    assert not container._died.ready()
