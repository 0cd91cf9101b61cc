"""The compose deployment's RabbitMQ users, proven on the real broker (127.0.0.1:5672,
management API on 15672 with guest/guest).

The users, permissions and password hashes are exactly what `python -m deploy.secrets`
writes for the broker to load at boot (deploy/broker_users.definitions), imported here
through the management API into a throwaway vhost, under throwaway user names: so the
definitions format, the password hashes and every permission regex are checked by
RabbitMQ itself. Publishes use publisher confirms, so a refusal surfaces at publish."""
import secrets
import uuid
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import requests
from amqp.exceptions import AccessRefused, PreconditionFailed
from kombu import Connection, Exchange, Queue
from nameko.amqp.publish import Publisher

from closeloop_shared import events as ev
from closeloop_shared.bus import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    FEEDBACK_SUBMITTED_KEY,
    INBOUND_EXCHANGE,
    INBOUND_QUEUE,
    DeclareQueues,
    delay_queue,
    retry_pause,
)
from closeloop_shared.config import AMQP_URI
from deploy import broker_users

pytestmark = pytest.mark.integration

BROKER = "127.0.0.1:5672"
API = "http://127.0.0.1:15672/api"
ADMIN = ("guest", "guest")
USERS = {user.name: user for user in broker_users.users()}


def api(method, path, **kwargs):
    response = requests.request(method, f"{API}/{path}", auth=ADMIN, timeout=10, **kwargs)
    response.raise_for_status()
    return response


class Deployment:
    """The deployment's users in vhost `vhost`, each named `prefix + name`."""

    def __init__(self, vhost, prefix, passwords):
        self.vhost, self.prefix, self.passwords = vhost, prefix, passwords

    def name(self, user):
        return self.prefix + user

    def uri(self, user):
        password = self.passwords[USERS[user].password_variable]
        return f"amqp://{quote(self.name(user), safe='')}:{password}@{BROKER}/{quote(self.vhost, safe='')}"

    def connection(self, user):
        return Connection(self.uri(user), transport_options={"confirm_publish": True})

    def publish(self, user, exchange, routing_key, **properties):
        """Publish one message as `user` (confirmed); raises what the broker refuses."""
        with self.connection(user) as connection:
            connection.Producer().publish(b"{}", exchange=exchange, routing_key=routing_key,
                                          content_type="application/json", retry=False, **properties)

    def declare(self, user, *entities):
        with self.connection(user) as connection:
            channel = connection.channel()
            for entity in entities:
                entity(channel).declare()


@pytest.fixture(scope="module")
def deployment():
    try:
        api("GET", "overview")
    except requests.RequestException as exc:
        pytest.skip(f"no RabbitMQ management API at {API}: {exc}")
    tag = uuid.uuid4().hex[:8]
    vhost, prefix = f"closeloop-permissions-{tag}", f"test-{tag}-"
    passwords = {user.password_variable: secrets.token_urlsafe(24) for user in broker_users.users()}
    definitions = broker_users.definitions(passwords, vhost=vhost)
    for entry in definitions["users"]:
        entry["name"] = prefix + entry["name"]
    for section in ("permissions", "topic_permissions"):
        for entry in definitions[section]:
            entry["user"] = prefix + entry["user"]
    try:
        api("POST", "definitions", json=definitions)
        yield Deployment(vhost, prefix, passwords)
    finally:
        for entry in definitions["users"]:
            requests.delete(f"{API}/users/{quote(entry['name'], safe='')}", auth=ADMIN, timeout=10)
        requests.delete(f"{API}/vhosts/{quote(vhost, safe='')}", auth=ADMIN, timeout=10)


def test_the_imported_users_are_the_deployments(deployment):
    users = {u["name"]: u for u in api("GET", "users").json() if u["name"].startswith(deployment.prefix)}
    assert set(users) == {deployment.name(u.name) for u in broker_users.users()}
    assert users[deployment.name("ops")]["tags"] in (["administrator"], "administrator")
    assert not users[deployment.name("routing")]["tags"]


def test_each_password_logs_in_against_its_hash(deployment):
    for user in broker_users.users():
        with deployment.connection(user.name) as connection:
            connection.connect()
    with pytest.raises(AccessRefused):
        with Connection(deployment.uri("routing").replace(
                deployment.passwords["RABBITMQ_ROUTING_PASSWORD"], "wrong"), connect_timeout=5) as connection:
            connection.connect()


def test_routing_publishes_its_own_events(deployment):
    deployment.publish("routing", broker_users.event_exchange(ev.ROUTING), ev.CASE_ROUTED)


def test_routing_may_not_publish_intakes_events(deployment):
    with pytest.raises(AccessRefused) as refused:
        deployment.publish("routing", broker_users.event_exchange(ev.INTAKE), ev.CASE_SUBMITTED)
    assert refused.value.code == 403


@pytest.mark.parametrize("service", broker_users.SERVICES)
def test_no_service_may_publish_to_the_inbound_exchange(deployment, service):
    with pytest.raises(AccessRefused):
        deployment.publish(service, INBOUND_EXCHANGE.name, FEEDBACK_SUBMITTED_KEY)


def test_an_integration_publishes_feedback_to_the_inbound_exchange_only(deployment):
    # The definitions declared the bus: feedback is queued before intake ever started.
    deployment.publish("pos", INBOUND_EXCHANGE.name, FEEDBACK_SUBMITTED_KEY)
    queue = api("GET", f"queues/{quote(deployment.vhost, safe='')}/{INBOUND_QUEUE.name}").json()
    assert queue["durable"] is True
    with pytest.raises(AccessRefused) as refused:
        deployment.publish("pos", broker_users.event_exchange(ev.ROUTING), ev.CASE_ROUTED)
    assert refused.value.code == 403
    with pytest.raises(AccessRefused):  # the topic permission: only feedback.submitted
        deployment.publish("pos", INBOUND_EXCHANGE.name, "something.else")
    with pytest.raises(AccessRefused):  # declares nothing
        deployment.declare("pos", Queue("pos-own-queue", durable=True))
    with pytest.raises(AccessRefused):  # reads nothing
        with deployment.connection("pos") as connection:
            connection.default_channel.basic_get("intake.feedback_submitted")


def test_the_broker_refuses_a_user_id_that_is_not_the_connections_user(deployment):
    deployment.publish("pos", INBOUND_EXCHANGE.name, FEEDBACK_SUBMITTED_KEY, user_id=deployment.name("pos"))
    with pytest.raises(PreconditionFailed) as refused:
        deployment.publish("pos", INBOUND_EXCHANGE.name, FEEDBACK_SUBMITTED_KEY,
                           user_id=deployment.name("intake"))
    assert refused.value.code == 406


@pytest.mark.parametrize("service", broker_users.SERVICES)
def test_a_service_declares_binds_and_uses_its_bus(deployment, service):
    uri = deployment.uri(service)
    # What every service does at start: the real DeclareQueues, as this user.
    declare = DeclareQueues()
    declare.container = SimpleNamespace(config={AMQP_URI: uri})
    declare.setup()
    # Its event handlers' queues and, for intake, the inbound queue: it may consume them.
    with deployment.connection(service) as connection:
        channel = connection.channel()
        for name in broker_users.consumed_queues(service):
            channel.basic_get(name)
    # A failed message waits in a delay queue (the bus's own publisher, its user_id),
    # or goes to the dead letters.
    delay = delay_queue(retry_pause(1))
    Publisher(uri).publish(b"{}", exchange=delay.exchange, routing_key="some.queue", declare=[delay],
                           user_id=deployment.name(service), retry=False)
    Publisher(uri).publish(b"{}", exchange=DEAD_LETTER_EXCHANGE, routing_key=f"{service}.x",
                           declare=[DEAD_LETTER_QUEUE], retry=False)
    # Its own events: nameko's dispatcher declares the exchange and publishes.
    own = Exchange(broker_users.event_exchange(service), type="topic", durable=True)
    Publisher(uri).publish(b"{}", exchange=own, routing_key="anything", declare=[own], retry=False)


@pytest.mark.parametrize("service", broker_users.SERVICES)
def test_a_service_may_not_consume_another_services_queues(deployment, service):
    others = [name for other in broker_users.SERVICES if other != service
              for name in broker_users.consumed_queues(other)]
    assert others
    for name in others:
        with pytest.raises(AccessRefused):
            with deployment.connection(service) as connection:
                connection.default_channel.basic_get(name)


def test_a_service_may_not_publish_straight_into_a_queue(deployment):
    # The default exchange routes to any queue by name: no write there for anyone but ops.
    with pytest.raises(AccessRefused):
        deployment.publish("routing", "", INBOUND_QUEUE.name)


def test_a_new_queue_may_not_dead_letter_into_the_default_exchange(deployment):
    # Why the definitions declare the delay queues: creating one needs write on its
    # dead-letter exchange (the default one), which services do not have.
    new_delay = delay_queue(0.123)
    with pytest.raises(AccessRefused):
        deployment.declare("routing", new_delay)


def test_binding_needs_read_on_the_exchange(deployment):
    # routing may write (bind) its queue, but may not read amq.topic: no binding there.
    queue = Queue("evt-intake-case_submitted--routing.on_case_submitted", durable=True,
                  exchange=Exchange("amq.topic", type="topic", durable=True, passive=True),
                  routing_key="#")
    with pytest.raises(AccessRefused):
        deployment.declare("routing", queue)
