"""The bus's failure handling, with a test service whose handler fails on purpose."""
import pytest
from kombu import Connection
from nameko.standalone.events import event_dispatcher

from closeloop_shared import bus
from closeloop_shared.bus import event_handler
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration


class Flaky:
    name = "flaky"
    calls = []
    failures_left = 0

    @event_handler("upstream", "thing_happened")
    def on_thing(self, payload):
        Flaky.calls.append(payload)
        if Flaky.failures_left:
            Flaky.failures_left -= 1
            raise ConnectionError("storage blinked")


@pytest.fixture
def flaky(container_factory, service_config, monkeypatch):
    monkeypatch.setattr(bus, "retry_pause", lambda attempt: 0.05)
    Flaky.calls = []
    container_factory(Flaky, service_config).start()
    return event_dispatcher(service_config)


def test_a_transient_failure_is_retried_until_it_succeeds(flaky, amqp_bus):
    Flaky.failures_left = 2
    flaky("upstream", "thing_happened", {"n": 1})
    wait_for(lambda: len(Flaky.calls) == 3, what="third attempt")
    assert amqp_bus.dead_letters() == []
    with Connection(amqp_bus.amqp_uri) as connection:  # the wait happened in the broker
        name, messages, _ = connection.default_channel.queue_declare(
            bus.delay_queue(0.05).name, passive=True)
    assert name == "closeloop.retry.50ms" and messages == 0


def test_a_message_failing_every_time_is_dead_lettered_after_the_last_attempt(flaky, amqp_bus):
    Flaky.failures_left = 100
    flaky("upstream", "thing_happened", {"n": 2})
    letter = wait_for(amqp_bus.dead_letters, what="dead letter")[0]
    assert len(Flaky.calls) == bus.MAX_ATTEMPTS
    assert letter["headers"]["x-closeloop-reason"].startswith(f"failed {bus.MAX_ATTEMPTS} times")
    assert "ConnectionError: storage blinked" in letter["headers"]["x-closeloop-reason"]
