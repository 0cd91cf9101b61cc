"""pytest fixtures for tests that talk to real infrastructure: the MongoDB-protocol
server (or MONGO_URI), RabbitMQ through nameko's per-test vhost (`rabbit_config`),
an SMTP sink, the bus helpers to publish raw messages and read dead letters, and a
recorder service standing in for the consumers of chosen events."""
import contextlib
import email
import email.policy
import json
import mailbox
import os
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from kombu import Connection
from nameko.containers import get_container_cls
from nameko.events import event_handler

from closeloop_shared import bus
from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.config import (
    AUTH_PUBLIC_KEYS_FILE,
    AUTH_SIGNING_KEY_FILE,
    MONGO_DB_PREFIX,
    MONGO_URI,
    ORG_SEED_PATH,
    SMTP_HOST,
    SMTP_PORT,
)
from closeloop_shared.mongo import connect
from closeloop_shared.tokens import Signer, write_key_pair
from closeloop_shared.standins import (
    free_port,
    standin_mongo_uri,
    start_mongo_standin,
    start_smtp_sink,
)

ROOT = Path(__file__).resolve().parent.parent
# Stores open all day, for a stack whose satisfaction revisits must fall due within
# seconds whatever the hour the test runs (they wait for store hours).
ALWAYS_OPEN = {"CALENDAR_DEFAULT_HOURS": "00:00-24:00"}
# Phones as people mistype them, with the message every service refuses each with.
INVALID_PHONES = [
    ("12345", "not a valid phone number"),
    ("1381234567", "not a valid phone number"),     # one digit short
    ("138123456789", "not a valid phone number"),   # one digit too many
    ("not a number", "not a phone number"),
    ("", "not a phone number"),
]


def feedback_body(**overrides):
    """A valid POST /v1/feedback body (a real zh-CN complaint), with overrides."""
    body = {
        "store_id": "SH-XH-001",
        "channel": "hotline",
        "customer": {"name": "刘女士", "phone": "13812345678", "email": "liu@example.com"},
        "content": "做完面部护理后脸上红肿刺痛,美容师手法太重",
        "occurred_at": "2026-11-23T15:00:00+08:00",
    }
    body.update(overrides)
    return body


@pytest.fixture
def feedback():
    return feedback_body


def wait_for(probe, timeout=15.0, interval=0.1, what="condition"):
    """Poll `probe` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    port = free_port()
    log = open(tmp_path_factory.mktemp("mongo") / "secantus.log", "ab")
    process = start_mongo_standin(port, ":memory:", log)
    yield standin_mongo_uri(port)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def mongo_prefix():
    return new_mongo_prefix()


def new_mongo_prefix():
    """Database names no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mongo_client(mongo_uri):
    client = connect(mongo_uri)
    yield client
    client.close()


class SmtpSink:
    def __init__(self, port, maildir):
        self.port, self.maildir = port, maildir

    def messages(self):
        box = mailbox.Maildir(self.maildir, factory=None, create=False)
        return [email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
                for m in box]

    def to(self, recipient):
        return [m for m in self.messages() if m["To"] == recipient]


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory):
    directory = tmp_path_factory.mktemp("smtp")
    port = free_port()
    process = start_smtp_sink(port, directory / "Maildir", open(directory / "smtp.log", "ab"))
    yield SmtpSink(port, directory / "Maildir")
    process.terminate()
    process.wait(10)


class TokenMinter:
    """Staff tokens for tests, signed with the test key pair routing also uses, as if
    the person had logged in (or with any claims, to test what is refused)."""

    def __init__(self, private_path, jwks_path):
        self.private_path, self.jwks_path = private_path, jwks_path
        self.signer = Signer.from_file(private_path)

    def token(self, staff_id, ttl=timedelta(minutes=15), now=None, **claims):
        return self.signer.sign({"sub": staff_id, **claims}, now or utcnow(), ttl)

    def headers(self, staff_id, **kwargs):
        return {"Authorization": f"Bearer {self.token(staff_id, **kwargs)}"}


@pytest.fixture(scope="session")
def token_keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    write_key_pair(directory / "signing.pem", directory / "public.jwks.json")
    return TokenMinter(directory / "signing.pem", directory / "public.jwks.json")


def nameko_config(rabbit_config, mongo_uri, mongo_prefix, smtp_sink, token_keys):
    """nameko config on the given vhost (rabbit_config) and databases (mongo_prefix)."""
    return dict(rabbit_config, **{
        MONGO_URI: mongo_uri,
        MONGO_DB_PREFIX: mongo_prefix,
        ORG_SEED_PATH: str(ROOT / "deploy" / "seeds" / "org.yaml"),
        SMTP_HOST: "127.0.0.1",
        SMTP_PORT: smtp_sink.port,
        # tests run at any hour: notify's quiet hours only where a test sets them; no
        # routing runs beside notify here, so acknowledgements do not wait for its deadlines
        "NOTIFY_QUIET_HOURS": "off", "NOTIFY_ACK_WAIT_SECONDS": 0,
        AUTH_PUBLIC_KEYS_FILE: str(token_keys.jwks_path),
        AUTH_SIGNING_KEY_FILE: str(token_keys.private_path),
    })


@pytest.fixture
def service_config(rabbit_config, mongo_uri, mongo_prefix, smtp_sink, token_keys):
    """nameko config for one test: its own vhost and its own databases."""
    return nameko_config(rabbit_config, mongo_uri, mongo_prefix, smtp_sink, token_keys)


@pytest.fixture(scope="module")
def fresh_rabbit_config(request, vhost_pipeline):
    """fresh_rabbit_config() -> a rabbit_config on a new vhost, deleted when the module is
    done: for containers a module's tests share (a container costs about a second to start)."""
    amqp = urlparse(request.config.getoption("RABBIT_AMQP_URI"))
    with contextlib.ExitStack() as vhosts:
        def fresh():
            vhost = vhosts.enter_context(vhost_pipeline.get())
            return {"AMQP_URI": f"{amqp.scheme}://{amqp.netloc}/{vhost}", "username": amqp.username,
                    "vhost": vhost}
        yield fresh


@pytest.fixture(scope="module")
def module_container_factory():
    """nameko's container_factory, its containers killed when the module is done."""
    containers = []

    def make(service_class, config):
        container = get_container_cls(config)(service_class, config)
        containers.append(container)
        return container
    yield make
    for container in containers:
        container.kill()


class Bus:
    """Raw access to the broker, as another system (or an operator) would have it."""

    def __init__(self, amqp_uri):
        self.amqp_uri = amqp_uri

    def publish_feedback(self, body, content_type="application/json", attributed=True,
                         routing_key=bus.FEEDBACK_SUBMITTED_KEY):
        """As another system publishes (feedback.submitted unless `routing_key` says
        otherwise): with user_id set to its AMQP user (the broker checks it), unless
        `attributed` is False."""
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        with Connection(self.amqp_uri) as conn:
            properties = {"user_id": conn.userid} if attributed else {}
            conn.Producer().publish(
                raw, exchange=bus.INBOUND_EXCHANGE, routing_key=routing_key,
                content_type=content_type, content_encoding="utf-8",
                declare=[bus.INBOUND_EXCHANGE], delivery_mode=2, **properties)

    def dead_letters(self):
        """Every message waiting in the dead-letter queue, taken off it."""
        taken = []
        with Connection(self.amqp_uri) as conn:
            queue = bus.DEAD_LETTER_QUEUE(conn.default_channel)
            queue.declare()
            while (message := queue.get(no_ack=True)) is not None:
                body = message.body
                taken.append({"body": body.encode() if isinstance(body, str) else body,
                              "headers": message.headers})
        return taken


@pytest.fixture
def amqp_bus(rabbit_config):
    return Bus(rabbit_config["AMQP_URI"])


class EventLog:
    """What a recorder service heard: (event type, payload as its schema loads it)."""

    def __init__(self):
        self.received = []

    def of_type(self, event_type):
        return [data for kind, data in self.received if kind == event_type]


def recorder_service(log, *event_types):
    """A nameko service class that records the given events into `log`, standing in
    for their real consumers."""
    def handler(event_type):
        @event_handler(ev.EMITTERS[event_type], event_type)
        def handle(self, payload):
            log.received.append((event_type, ev.load(event_type, payload)))
        return handle
    return type("Recorder", (), {"name": "recorder", **{f"on_{t}": handler(t) for t in event_types}})


@pytest.fixture
def record_events(container_factory, service_config):
    """record_events(*event_types) -> an EventLog filled by a running recorder."""
    def start(*event_types):
        log = EventLog()
        container_factory(recorder_service(log, *event_types), service_config).start()
        return log
    return start
