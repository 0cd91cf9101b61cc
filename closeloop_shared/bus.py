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

None of this may kill the service: when the broker goes away while a handler finishes
(a restart, a network cut), acking, rejecting, republishing to a delay queue or
dead-lettering fails with a connection error. That is logged and left to the broker,
which redelivers every unacked message once the consumer reconnects (kombu's consumer
loop reconnects by itself); every consumer is idempotent. A message is acked only after
its republication or dead letter was confirmed, so a failure there never loses it.
"""
import contextlib
import copy
import logging
import time
from functools import partial

from kombu import Connection, Exchange, Queue
from marshmallow import ValidationError
from nameko.amqp.publish import Publisher
from nameko.exceptions import ContainerBeingKilled
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer, QueueConsumer
from nameko.standalone.events import get_event_exchange
from nameko.timer import Timer

from closeloop_shared.config import AMQP_URI, BUS_QUEUE_TYPE, setting
from closeloop_shared.events import EMITTERS, SUBSCRIPTIONS
from closeloop_shared.metrics import DEAD_LETTERS

log = logging.getLogger(__name__)

INBOUND_EXCHANGE = Exchange("closeloop.inbound", type="topic", durable=True)
FEEDBACK_SUBMITTED_KEY = "feedback.submitted"
INBOUND_QUEUE = Queue("intake.feedback_submitted", exchange=INBOUND_EXCHANGE,
                      routing_key=FEEDBACK_SUBMITTED_KEY, durable=True)
# A till or booking system reports a completed visit (member, store, spend): followup's
# customer history and tiers (services/followup/schemas.py VisitCompletedIn).
VISIT_COMPLETED_KEY = "visit.completed"
VISIT_COMPLETED_QUEUE = Queue("followup.visit_completed", exchange=INBOUND_EXCHANGE,
                              routing_key=VISIT_COMPLETED_KEY, durable=True)
# Booking systems' appointments (services/followup/schemas.py AppointmentIn, AppointmentCancelledIn).
APPOINTMENT_BOOKED_KEY, APPOINTMENT_CHANGED_KEY = "appointment.booked", "appointment.changed"
APPOINTMENT_CANCELLED_KEY = "appointment.cancelled"
APPOINTMENT_QUEUES = {key: Queue(f"followup.{key.replace('.', '_')}", exchange=INBOUND_EXCHANGE,
                                 routing_key=key, durable=True)
                      for key in (APPOINTMENT_BOOKED_KEY, APPOINTMENT_CHANGED_KEY, APPOINTMENT_CANCELLED_KEY)}

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


# BUS_QUEUE_TYPE: the type of the bus's work queues (the inbound queues and every event
# subscriber queue). "quorum" replicates them over a RabbitMQ cluster (README "Scaling
# out"). The broker refuses to redeclare a queue with another type (PRECONDITION_FAILED),
# so every declaration of a work queue (DeclareQueues, each consumer and event handler,
# the broker definitions of deploy/broker_users.py) goes through with_queue_type. The
# dead-letter and retry delay queues stay classic: they are declared by tools that know
# no configuration (deploy/dead_letters.py), and a message waits in a delay queue seconds.
QUEUE_TYPES = ("classic", "quorum")


def queue_type_arguments(queue_type):
    """The x-queue-type argument of a work queue: none for classic (as before the setting
    existed, so an existing deployment's queues stay equivalent), "quorum" for quorum."""
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"{BUS_QUEUE_TYPE} must be one of {', '.join(QUEUE_TYPES)}, not {queue_type!r}")
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


def with_queue_type(queue, queue_type):
    """`queue` as declared in a bus of work queues of `queue_type`."""
    arguments = {k: v for k, v in (queue.queue_arguments or {}).items() if k != "x-queue-type"}
    arguments.update(queue_type_arguments(queue_type))
    typed = copy.copy(queue)  # every other attribute as it was; the module's queues unchanged
    typed.queue_arguments = arguments or None
    return typed


class Unprocessable(Exception):
    """A message that is well-formed but can never be processed (e.g. unknown store)."""


# Headers a dead letter carries (deploy/dead_letters.py filters and replays by them).
REASON_HEADER, SERVICE_HEADER = "x-closeloop-reason", "x-closeloop-service"
EXCHANGE_HEADER, ROUTING_KEY_HEADER = "x-closeloop-exchange", "x-closeloop-routing-key"
DEAD_LETTERED_AT_HEADER = "x-closeloop-dead-lettered-at"  # Unix time, seconds
USER_ID_HEADER = "x-closeloop-user-id"  # the broker-validated publisher of the original
# A pause before requeueing a message whose republication failed, so that a broker that
# refuses publishes but still delivers does not turn into a hot loop.
REQUEUE_PAUSE_SECONDS = 1.0


def amqp_user(amqp_uri):
    return Connection(amqp_uri).userid


def origin_user(message, amqp_uri):
    """Who first published `message`, as the broker validated it (AMQP user_id). A
    message we republished ourselves (a retry) carries our own user_id, and the
    original one in USER_ID_HEADER; a header from anyone else is not trusted."""
    user_id = (getattr(message, "properties", None) or {}).get("user_id")
    if user_id and user_id == amqp_user(amqp_uri):
        return (message.headers or {}).get(USER_ID_HEADER) or user_id
    return user_id


def settle(action, message, what):
    """Ack or requeue (`action`), or, if the connection is gone, log it and leave the
    message to the broker: an unacked message is redelivered once we reconnect."""
    try:
        action(message)
        return True
    except Exception as exc:  # ConnectionResetError, BrokenPipeError, amqp errors...
        log.warning("could not %s a message; the broker will redeliver it", what, extra={
            "error": f"{type(exc).__name__}: {str(exc)[:200]}",
            "routing_key": (message.delivery_info or {}).get("routing_key")})
        return False


def dead_letter(amqp_uri, service, message, reason):
    """Park a message in closeloop.dead_letter (publisher confirms), keeping its body
    and headers and saying why. Raises if the broker did not take it."""
    delivery_info = message.delivery_info
    properties = getattr(message, "properties", None) or {}
    headers = {
        **{k: v for k, v in (message.headers or {}).items() if k != ATTEMPTS_HEADER},
        REASON_HEADER: reason[:1000],
        SERVICE_HEADER: service,
        EXCHANGE_HEADER: delivery_info.get("exchange", ""),
        ROUTING_KEY_HEADER: delivery_info.get("routing_key", ""),
        DEAD_LETTERED_AT_HEADER: time.time(),
    }
    origin = origin_user(message, amqp_uri)
    if origin:
        headers[USER_ID_HEADER] = origin
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
    inside the consumer and take the whole service down), and reconnects quickly after
    a broker restart (every 0.5-2 s, not kombu's 2, 4, 6 ... 30 s back-off)."""

    @contextlib.contextmanager
    def establish_connection(self):
        with self.create_connection() as connection:
            connection.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                         interval_start=0.5, interval_step=0.5, interval_max=2)
            yield connection

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for consumer in consumers:
            consumer.on_decode_error = self.on_decode_error
        return consumers

    def on_decode_error(self, message, exc):
        try:
            dead_letter(setting(self.container.config, AMQP_URI), self.container.service_name,
                        message, f"undecodable body: {exc}")
        except Exception as error:  # runs in the consumer loop: never let it escape
            log.warning("could not dead-letter an undecodable message; it stays queued",
                        extra={"error": f"{type(error).__name__}: {str(error)[:200]}"})
            settle(lambda m: m.requeue(), message, "requeue")
            return
        settle(lambda m: m.ack(), message, "ack")


class _DeadLetteringMixin:
    queue_consumer = DeadLetteringQueueConsumer()

    def setup(self):
        super().setup()  # nameko's EventHandler builds its queue here; a Consumer was given one
        self.queue = with_queue_type(self.queue, setting(self.container.config, BUS_QUEUE_TYPE))

    def _ack(self, message):
        settle(self.queue_consumer.ack_message, message, "ack")

    def handle_message_processed(self, message, result=None, exc_info=None):
        # Runs in the worker thread: an exception escaping from here kills the container.
        if exc_info is None:
            self._ack(message)
            return
        try:
            self._park(message, exc_info[1])
        except Exception as exc:  # the broker did not confirm: keep the message
            log.warning("could not park a failed message for retry; requeueing it", extra={
                "error": f"{type(exc).__name__}: {str(exc)[:200]}", "queue": self.queue.name})
            time.sleep(REQUEUE_PAUSE_SECONDS)
            settle(self.queue_consumer.requeue_message, message, "requeue")
            return
        self._ack(message)

    def _park(self, message, error):
        """Republish a failed message to a delay queue, or dead-letter it (both confirmed)."""
        amqp_uri = setting(self.container.config, AMQP_URI)
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 1))
        if isinstance(error, (ValidationError, Unprocessable)):
            reason = f"{type(error).__name__}: {getattr(error, 'messages', None) or error}"
        elif attempts >= MAX_ATTEMPTS:
            reason = f"failed {attempts} times, last: {type(error).__name__}: {error}"
        else:
            delay = delay_queue(retry_pause(attempts))
            headers = {k: v for k, v in (message.headers or {}).items() if k != USER_ID_HEADER}
            headers[ATTEMPTS_HEADER] = attempts + 1
            origin = origin_user(message, amqp_uri)
            if origin:  # the retry is ours (user_id), the submitter stays known (header)
                headers[USER_ID_HEADER] = origin
            Publisher(amqp_uri).publish(
                message.body, exchange=delay.exchange, routing_key=self.queue.name, declare=[delay],
                headers=headers, user_id=amqp_user(amqp_uri),
                content_type=message.content_type, content_encoding=message.content_encoding)
            return
        dead_letter(amqp_uri, self.container.service_name, message, reason)


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


class AttributedConsumer(ReliableConsumer):
    """A consumer of other systems' messages whose handler also receives `publisher`:
    the AMQP user the broker validated (the `user_id` property; RabbitMQ refuses a
    message whose user_id is not the connection's user) of the original message, even
    after a retry or a replay (origin_user), or None when it was not set."""

    def handle_message(self, body, message):
        context_data = self.unpack_message_headers(message)
        try:
            publisher = origin_user(message, setting(self.container.config, AMQP_URI))
            self.container.spawn_worker(
                self, (body,), {"publisher": publisher},
                context_data=context_data, handle_result=partial(self.handle_result, message))
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)


event_handler = ReliableEventHandler.decorator
consume = ReliableConsumer.decorator
consume_attributed = AttributedConsumer.decorator
timer = ConfiguredTimer.decorator


def subscriber_queues(config):
    """Every event queue of the system, named, bound and typed exactly as our
    @event_handler declares it (SERVICE_POOL handlers, reliable delivery, BUS_QUEUE_TYPE)."""
    queue_type = setting(config, BUS_QUEUE_TYPE)
    return [
        with_queue_type(Queue(f"evt-{EMITTERS[event_type]}-{event_type}--{service}.{method}",
                              exchange=get_event_exchange(EMITTERS[event_type], config), routing_key=event_type,
                              durable=True, auto_delete=False, exclusive=False), queue_type)
        for event_type, consumers in SUBSCRIPTIONS.items() for service, method in consumers
    ]


def inbound_queues(config):
    """The queues on closeloop.inbound (intake's feedback, followup's visits and
    appointments), typed as BUS_QUEUE_TYPE says."""
    queue_type = setting(config, BUS_QUEUE_TYPE)
    return [with_queue_type(queue, queue_type)
            for queue in (INBOUND_QUEUE, VISIT_COMPLETED_QUEUE, *APPOINTMENT_QUEUES.values())]


def startup_queues(config):
    """Every queue a service declares when it starts (DeclareQueues)."""
    return [*inbound_queues(config), DEAD_LETTER_QUEUE, *subscriber_queues(config)]


class DeclareQueues(DependencyProvider):
    """Declares every queue of the bus when a service starts, whichever starts first:
    the inbound queue, the dead-letter queue and all subscriber queues. Events and
    feedback published before their consumer's very first start then wait for it."""

    def setup(self):
        config = self.container.config
        with Connection(setting(config, AMQP_URI)) as connection:
            channel = connection.default_channel
            for queue in startup_queues(config):
                queue(channel).declare()
