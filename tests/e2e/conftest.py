"""Start the five services as processes, with the commands docker-compose.yml gives
them, through the same functions `make run` uses (deploy/local.py)."""
import itertools
from datetime import timedelta

import pytest
import requests

from closeloop_shared.standins import free_port, start_smtp_sink
from deploy import local
from tests.fixtures import SmtpSink, new_mongo_prefix

pytestmark = pytest.mark.e2e


class Stack:
    def __init__(self, env, log_dir, headers):
        self.env, self.log_dir, self.headers = env, log_dir, headers
        self.processes, self.urls = [], {}
        self._ids = itertools.count()

    def start(self, replicas=None):
        replicas = replicas or {}
        started = []
        for name, (command, _compose_port) in local.compose_services().items():
            for replica in range(replicas.get(name, 1)):
                port = free_port()
                log = open(self.log_dir / f"{name}-{replica}.log", "ab")
                process = local.start_service(name, command, port, self.env, log)
                self.processes.append(process)
                started.append((name, process, port))
                self.urls.setdefault(name, []).append(f"http://127.0.0.1:{port}")
        for name, process, port in started:
            local.wait_healthy(name, process, port, timeout=60)
        return self

    def url(self, service, replica=0):
        return self.urls[service][replica]

    def get(self, service, path, **kwargs):
        return requests.get(self.url(service) + path, timeout=10, headers=self.headers, **kwargs)

    def post(self, service, path, body):
        return requests.post(self.url(service) + path, json=body, timeout=10, headers=self.headers)

    def stop(self):
        local.stop_all(self.processes)


def start_sink(directory):
    """(the sink, its process): a mail sink writing into directory/Maildir."""
    port = free_port()
    process = start_smtp_sink(port, directory / "Maildir", open(directory / "smtp.log", "ab"))
    return SmtpSink(port, directory / "Maildir"), process


@pytest.fixture
def smtp_sink(tmp_path):
    """Each end-to-end test its own mail sink: every test's databases are new, so case
    numbers start again at 000001 and a shared sink would mix two tests' mails."""
    sink, process = start_sink(tmp_path)
    yield sink
    process.terminate()
    process.wait(10)


def services_env(rabbit_config, mongo_uri, mongo_prefix, smtp_sink, token_keys):
    return {
        "AUTH_PUBLIC_KEYS_FILE": str(token_keys.jwks_path),
        "AUTH_SIGNING_KEY_FILE": str(token_keys.private_path),
        "AMQP_URI": rabbit_config["AMQP_URI"], "MONGO_URI": mongo_uri,
        "MONGO_DB_PREFIX": mongo_prefix, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_sink.port),
        "LOG_LEVEL": "INFO",
        "NOTIFY_QUIET_HOURS": "off",  # tests run at any hour; a notify test sets its own
    }


@pytest.fixture
def stack_env(rabbit_config, mongo_uri, mongo_prefix, smtp_sink, token_keys):
    return services_env(rabbit_config, mongo_uri, mongo_prefix, smtp_sink, token_keys)


def stack_starter(env, log_dir, token_keys, stacks):
    def start(overrides=None, replicas=None):
        # HTTP calls are made by the customer-service department (the whole brand)
        started = Stack(dict(env, **{k: str(v) for k, v in (overrides or {}).items()}), log_dir,
                        token_keys.headers("cs-001", ttl=timedelta(hours=1)))
        stacks.append(started)
        return started.start(replicas)
    return start


@pytest.fixture
def stack(stack_env, tmp_path, token_keys):
    """stack(overrides, replicas={"routing": 2}) -> a running Stack."""
    stacks = []
    yield stack_starter(stack_env, tmp_path, token_keys, stacks)
    for started in stacks:
        started.stop()


@pytest.fixture(scope="module")
def shared_stack(fresh_rabbit_config, mongo_uri, token_keys, tmp_path_factory):
    """shared_stack() -> the module's one Stack with the default settings (its own vhost,
    databases and mail sink), started when first asked for: for tests that need nothing
    of a stack but their own cases, each submitting its own (a stack costs 5-15 s to
    start and stop). A test that changes what other cases would see (calendars, the
    organisation, settings) or counts what the stack holds takes `stack` instead."""
    directory = tmp_path_factory.mktemp("shared-stack")
    sink, sink_process = start_sink(directory)
    env = services_env(fresh_rabbit_config(), mongo_uri, new_mongo_prefix(), sink, token_keys)
    stacks = []
    start = stack_starter(env, directory, token_keys, stacks)

    def running():
        return stacks[0] if stacks else start()
    yield running
    for started in stacks:
        started.stop()
    sink_process.terminate()
    sink_process.wait(10)
