"""Bus plumbing every service shares: the inbound exchange other systems publish to,
the dead-letter exchange, and entrypoints that never drop a message silently.

nameko acks and drops a message whose handler raised. Ours instead:
- undecodable bodies and payloads that fail their schema (marshmallow ValidationError,
  or Unprocessable for a domain-level refusal) go to the dead-letter queue with the
  reason in headers: retrying can never make them succeed;
- any other failure (Mongo briefly down, or a bug) is retried: the message waits in a
  broker-side delay queue (no worker is held while it waits), comes back to its own
  queue with an attempt count, and is dead-lettered once MAX_ATTEMPTS is reached, so a
  poison message cannot loop forever.
"""
import logging

from kombu import Connection, Exchange, Queue
from marshmallow import ValidationError
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer, QueueConsumer
from nameko.standalone.events import get_event_exchange
from nameko.timer import Timer

from closeloop_shared.config import AMQP_URI, setting
from closeloop_shared.events import EMITTERS, SUBSCRIPTIONS
from closeloop_shared.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)

INBOUND_EXCHANGE = Exchange("closeloop.inbound", type="topic", durable=True)
FEEDBACK_SUBMITTED_KEY = "feedback.submitted"
INBOUND_QUEUE = Queue("intake.feedback_submitted", exchange=INBOUND_EXCHANGE,
                      routing_key=FEEDBACK_SUBMITTED_KEY, durable=True)

DEAD_LETTER_EXCHANGE = Exchange("closeloop.dead_letter", type="topic", durable=True)
DEAD_LETTER_QUEUE = Queue("closeloop.dead_letter", exchange=DEAD_LETTER_EXCHANGE,
                          routing_key="#", durable=True)
MAX_ATTEMPTS = 6
ATTEMPTS_HEADER = "x-closeloop-attempts"


def retry_pause(attempt):
    """Seconds to wait before attempt `attempt + 1`: 1, 2, 4, 8, 16 (about 30 s in all)."""
    return float(2 ** (attempt - 1))


def delay_queue(seconds):
    """A queue where messages wait `seconds`, then expire back to the default exchange
    under their own routing key: the name of the queue they came from."""
    name = f"closeloop.retry.{int(seconds * 1000)}ms"
    return Queue(name, exchange=Exchange(name, type="fanout", durable=True), durable=True,
                 queue_arguments={"x-message-ttl": int(seconds * 1000), "x-dead-letter-exchange": ""})


class Unprocessable(Exception):
    """A message that is well-formed but can never be processed (e.g. unknown store)."""


def dead_letter(amqp_uri, service, message, reason):
    """Park a message in closeloop.dead_letter, keeping its body and saying why."""
    delivery_info = message.delivery_info
    headers = {
        "x-closeloop-reason": reason[:1000],
        "x-closeloop-service": service,
        "x-closeloop-exchange": delivery_info.get("exchange", ""),
        "x-closeloop-routing-key": delivery_info.get("routing_key", ""),
    }
    Publisher(amqp_uri).publish(
        message.body, exchange=DEAD_LETTER_EXCHANGE,
        routing_key=f"{service}.{delivery_info.get('routing_key', '')}",
        headers=headers, declare=[DEAD_LETTER_QUEUE],
        content_type=message.content_type or "application/octet-stream",
        content_encoding=message.content_encoding or "binary",
    )
    DEAD_LETTERS.labels(service).inc()
    log.warning("dead-lettered message", extra={
        "service": service, "reason": reason[:200], "routing_key": delivery_info.get("routing_key")})


class DeadLetteringQueueConsumer(QueueConsumer):
    """Dead-letters bodies that cannot even be decoded (kombu would otherwise raise
    inside the consumer and take the whole service down)."""

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for consumer in consumers:
            consumer.on_decode_error = self.on_decode_error
        return consumers

    def on_decode_error(self, message, exc):
        dead_letter(setting(self.container.config, AMQP_URI), self.container.service_name,
                    message, f"undecodable body: {exc}")
        message.ack()


class _DeadLetteringMixin:
    queue_consumer = DeadLetteringQueueConsumer()

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return
        error = exc_info[1]
        amqp_uri = setting(self.container.config, AMQP_URI)
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 1))
        if isinstance(error, (ValidationError, Unprocessable)):
            reason = f"{type(error).__name__}: {getattr(error, 'messages', None) or error}"
        elif attempts >= MAX_ATTEMPTS:
            reason = f"failed {attempts} times, last: {type(error).__name__}: {error}"
        else:
            delay = delay_queue(retry_pause(attempts))
            Publisher(amqp_uri).publish(
                message.body, exchange=delay.exchange, routing_key=self.queue.name, declare=[delay],
                headers=dict(message.headers or {}, **{ATTEMPTS_HEADER: attempts + 1}),
                content_type=message.content_type, content_encoding=message.content_encoding)
            self.queue_consumer.ack_message(message)
            return
        dead_letter(amqp_uri, self.container.service_name, message, reason)
        self.queue_consumer.ack_message(message)


class ReliableEventHandler(_DeadLetteringMixin, EventHandler):
    pass


class ReliableConsumer(_DeadLetteringMixin, Consumer):
    pass


class ConfiguredTimer(Timer):
    """nameko's @timer with its interval read from config at start-up.

    It fires in every running replica: handlers must claim due work atomically."""

    def __init__(self, interval_key, **kwargs):
        self.interval_key = interval_key
        super().__init__(interval=None, **kwargs)

    def setup(self):
        self.interval = float(setting(self.container.config, self.interval_key))
        super().setup()


event_handler = ReliableEventHandler.decorator
consume = ReliableConsumer.decorator
timer = ConfiguredTimer.decorator


def subscriber_queues(config):
    """Every event queue of the system, named and bound exactly as nameko's
    @event_handler declares it (SERVICE_POOL handlers, reliable delivery)."""
    return [
        Queue(f"evt-{EMITTERS[event_type]}-{event_type}--{service}.{method}",
              exchange=get_event_exchange(EMITTERS[event_type], config), routing_key=event_type,
              durable=True, auto_delete=False, exclusive=False)
        for event_type, consumers in SUBSCRIPTIONS.items() for service, method in consumers
    ]


class DeclareQueues(DependencyProvider):
    """Declares every queue of the bus when a service starts, whichever starts first:
    the inbound queue, the dead-letter queue and all subscriber queues. Events and
    feedback published before their consumer's very first start then wait for it."""

    def setup(self):
        config = self.container.config
        with Connection(setting(config, AMQP_URI)) as connection:
            channel = connection.default_channel
            for queue in [INBOUND_QUEUE, DEAD_LETTER_QUEUE, *subscriber_queues(config)]:
                queue(channel).declare()
