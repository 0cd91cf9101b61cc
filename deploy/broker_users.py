"""Who may do what on the bus: the RabbitMQ users of a compose deployment and their
permissions on the vhost "/". The one source for `python -m deploy.secrets` (which
writes them, with password hashes, into secrets/rabbitmq-definitions.json, loaded by
the broker at every start) and for the tests (tests/integration/test_bus_permissions.py
proves them on a real broker).

RabbitMQ matches each permission regex against the name of the queue or exchange an
operation touches (https://www.rabbitmq.com/docs/access-control#permissions):

    exchange.declare, queue.declare, *.delete   configure on that exchange / queue
    queue.bind, queue.unbind                    write on the queue, read on the exchange
    basic.publish                               write on the exchange
    basic.consume, basic.get, queue.purge       read on the queue
    passive declares                            nothing

So, for the five services (every one declares, and binds, all the bus's queues when it
starts: closeloop_shared.bus.DeclareQueues):
    configure  every exchange and queue of the bus (inbound, dead letter, retry delay
               queues, every event exchange and every subscriber queue);
    write      its own event exchange `<service>.events`, the retry and dead-letter
               exchanges (it republishes failed messages there) and the queues it binds;
               no other service's events, and not closeloop.inbound;
    read       the queues it consumes and the exchanges it binds queues to.
An integration (pos) may only publish to closeloop.inbound, with the routing keys
feedback.submitted, visit.completed and appointment.booked|changed|cancelled (a topic
permission). ops (administrator) has everything: the
management UI and the dead-letter tool, which replays to any exchange.

Permissions cannot tell a queue from an exchange of the same name: the dead-letter and
retry queues share their exchanges' names, so read on those exchanges (needed to bind)
also lets a service read those queues.

The definitions also declare the bus's topology (`topology()`: every exchange, queue and
binding the services declare at start, and the retry delay queues), so that:
- creating a queue with a dead-letter exchange needs write on that exchange, and the
  delay queues dead-letter to the default exchange: write there would let a service put
  a message into any queue. Declared by the broker at boot, the delay queues already
  exist when a service (re)declares them, and that check only applies to new queues;
- an integration, which may declare nothing, can publish before intake first started.
The services still declare everything (idempotent), as they do without these users.

Every name comes from closeloop_shared.bus / closeloop_shared.events: a new event or
subscription changes the users' permissions here by itself; re-run
`python -m deploy.secrets init` and restart rabbitmq to load them.
"""
import base64
import hashlib
import os
import re
import secrets
from dataclasses import dataclass

from closeloop_shared import bus
from closeloop_shared import events as ev
from closeloop_shared.bus import (
    DEAD_LETTER_EXCHANGE,
    FEEDBACK_SUBMITTED_KEY,
    INBOUND_EXCHANGE,
    INBOUND_QUEUE,
    VISIT_COMPLETED_QUEUE,
    APPOINTMENT_QUEUES,
    MAX_ATTEMPTS,
    delay_queue,
    retry_pause,
    subscriber_queues,
)
from closeloop_shared.config import BUS_QUEUE_TYPE, DEFAULTS
from nameko.standalone.events import get_event_exchange

VHOST = "/"
SERVICES = (ev.INTAKE, ev.ROUTING, ev.FOLLOWUP, ev.NOTIFY, ev.REPORTING)
INTEGRATIONS = ("pos",)  # systems that feed closeloop.inbound; add one per system
OPS = "ops"
NOTHING = "^$"  # matches no queue or exchange (RabbitMQ's "no permission")
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"

# The retry delay queues are named by bus.delay_queue: closeloop.retry.<ms>ms (each
# also names its fanout exchange).
_RETRY_PREFIX = os.path.commonprefix([delay_queue(1).name, delay_queue(2).name])
RETRY_PATTERN = re.escape(_RETRY_PREFIX) + r"[0-9]+ms"


# followup's queues on closeloop.inbound, and every routing key an integration may publish
FOLLOWUP_INBOUND_QUEUES = (VISIT_COMPLETED_QUEUE, *APPOINTMENT_QUEUES.values())
INBOUND_KEYS = (FEEDBACK_SUBMITTED_KEY, *(queue.routing_key for queue in FOLLOWUP_INBOUND_QUEUES))


def event_exchange(service):
    """The nameko event exchange `service` publishes to: `<service>.events`."""
    return get_event_exchange(service, {}).name


def startup_queues(queue_type=DEFAULTS[BUS_QUEUE_TYPE]):
    """The queues every service declares (and binds) when it starts, as
    closeloop_shared.bus.DeclareQueues does, the work queues of type `queue_type`."""
    return bus.startup_queues({BUS_QUEUE_TYPE: queue_type})


def consumed_queues(service):
    """The queues `service` consumes: its event handlers' queues (named
    `evt-<emitter>-<event>--<service>.<method>`), and intake's inbound queue."""
    own = [queue.name for queue in subscriber_queues({})
           if queue.name.partition("--")[2].partition(".")[0] == service]
    if service == ev.INTAKE:
        own.append(INBOUND_QUEUE.name)
    if service == ev.FOLLOWUP:  # visits and appointments from tills and booking systems
        own += [queue.name for queue in FOLLOWUP_INBOUND_QUEUES]
    return own


def retry_queues():
    """The delay queues a failed message waits in, one per attempt before the last
    (closeloop_shared.bus: attempt n waits retry_pause(n), then goes back)."""
    return [delay_queue(retry_pause(attempt)) for attempt in range(1, MAX_ATTEMPTS)]


def bus_exchanges():
    """Every exchange the services declare or bind from (the retry exchanges aside)."""
    emitters = sorted(set(ev.EMITTERS.values()))
    return [INBOUND_EXCHANGE.name, DEAD_LETTER_EXCHANGE.name, *map(event_exchange, emitters)]


def pattern(names=(), patterns=()):
    """A regex matching exactly these names (escaped) or these regexes."""
    parts = sorted(set(map(re.escape, names))) + list(patterns)
    return "^(" + "|".join(parts) + ")$" if parts else NOTHING


@dataclass(frozen=True)
class TopicPermission:
    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class BrokerUser:
    name: str
    configure: str
    write: str
    read: str
    tags: tuple = ()
    topic_permissions: tuple = ()

    @property
    def password_variable(self):
        """The .env variable holding this user's password."""
        return f"RABBITMQ_{self.name.upper()}_PASSWORD"


def service_user(service):
    queues = [queue.name for queue in startup_queues()]
    exchanges = bus_exchanges()
    return BrokerUser(
        name=service,
        configure=pattern([*exchanges, event_exchange(service), *queues], [RETRY_PATTERN]),
        write=pattern([event_exchange(service), DEAD_LETTER_EXCHANGE.name, *queues], [RETRY_PATTERN]),
        read=pattern([*consumed_queues(service), *exchanges], [RETRY_PATTERN]),
    )


def integration_user(name):
    return BrokerUser(
        name=name, configure=NOTHING, write=pattern([INBOUND_EXCHANGE.name]), read=NOTHING,
        topic_permissions=(TopicPermission(INBOUND_EXCHANGE.name,
                                           write=pattern(INBOUND_KEYS), read=NOTHING),))


def ops_user():
    return BrokerUser(name=OPS, configure=".*", write=".*", read=".*", tags=("administrator",))


def users():
    """Every broker user of a deployment: ops, the five services, the integrations."""
    return [ops_user(), *map(service_user, SERVICES), *map(integration_user, INTEGRATIONS)]


# -- the definitions file the broker loads at boot -----------------------------------------

def password_hash(password, salt=None):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)),
    with a random 4-byte salt."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode()


def check_password(password, password_hash_b64):
    """Whether `password` is the one `password_hash_b64` was made from."""
    raw = base64.b64decode(password_hash_b64)
    return password_hash(password, salt=raw[:4]) == password_hash_b64


def topology(vhost=VHOST, queue_type=DEFAULTS[BUS_QUEUE_TYPE]):
    """The bus's exchanges, queues and bindings in definitions form: what the services
    declare at start (startup_queues and their exchanges) and the retry delay queues,
    with the same properties (the deployment's BUS_QUEUE_TYPE), so that the services' own
    declarations are equivalent."""
    queues = [*startup_queues(queue_type), *retry_queues()]
    exchanges = {queue.exchange.name: queue.exchange for queue in queues}
    return {
        "exchanges": [{"name": exchange.name, "vhost": vhost, "type": exchange.type,
                       "durable": bool(exchange.durable), "auto_delete": bool(exchange.auto_delete),
                       "internal": False, "arguments": dict(exchange.arguments or {})}
                      for exchange in exchanges.values()],
        "queues": [{"name": queue.name, "vhost": vhost, "durable": bool(queue.durable),
                    "auto_delete": bool(queue.auto_delete), "arguments": dict(queue.queue_arguments or {})}
                   for queue in queues],
        "bindings": [{"source": queue.exchange.name, "vhost": vhost, "destination": queue.name,
                      "destination_type": "queue", "routing_key": queue.routing_key or "",
                      "arguments": dict(queue.binding_arguments or {})}
                     for queue in queues],
    }


def definitions(passwords, vhost=VHOST, queue_type=DEFAULTS[BUS_QUEUE_TYPE]):
    """RabbitMQ definitions for a deployment: the vhost, `users()` with their password
    hashes and permissions, and the bus's `topology()` with work queues of `queue_type`;
    `passwords` maps each user's password_variable to its password."""
    everyone = users()
    return {
        "vhosts": [{"name": vhost}],
        "users": [{"name": user.name, "password_hash": password_hash(passwords[user.password_variable]),
                   "hashing_algorithm": HASHING_ALGORITHM, "tags": list(user.tags)}
                  for user in everyone],
        "permissions": [{"user": user.name, "vhost": vhost, "configure": user.configure,
                         "write": user.write, "read": user.read} for user in everyone],
        "topic_permissions": [{"user": user.name, "vhost": vhost, "exchange": topic.exchange,
                               "write": topic.write, "read": topic.read}
                              for user in everyone for topic in user.topic_permissions],
        **topology(vhost, queue_type),
    }
