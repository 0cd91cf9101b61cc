"""closeloop_shared.ops.Readiness: /health/ready fails, and says why, when MongoDB or
RabbitMQ does not answer or a due-work timer (routing's deadline scan) stopped reading."""
import re
from datetime import timedelta
from types import SimpleNamespace

from closeloop_shared.clock import utcnow
from closeloop_shared.due import DueTimer
from closeloop_shared.ops import Readiness
from closeloop_shared.standins import free_port


class Admin:
    def __init__(self, error=None):
        self.error = error

    def command(self, name):
        if self.error:
            raise self.error
        return {"ok": 1}


def timer(read_seconds_ago, refresh_every=5.0):
    due = DueTimer.__new__(DueTimer)
    due.collection, due.refresh_every = "cases", refresh_every
    read_at = None if read_seconds_ago is None else utcnow() - timedelta(seconds=read_seconds_ago)
    due.timers = SimpleNamespace(read_at=read_at)
    return due


def readiness(mongo_error=None, amqp_uri="amqp://guest:guest@127.0.0.1:5672/", entrypoints=()):
    ready = Readiness.__new__(Readiness)
    ready.client = SimpleNamespace(admin=Admin(mongo_error))
    ready.amqp_uri = amqp_uri
    ready.container = SimpleNamespace(entrypoints=list(entrypoints))
    return ready


def test_a_stalled_or_never_run_deadline_scan_is_not_ready():
    unreachable = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    problems = readiness(amqp_uri=unreachable, entrypoints=[timer(None)]).problems()
    assert problems["due_timer:cases"] == "never read its index"
    assert "rabbitmq" in problems
    problems = readiness(amqp_uri=unreachable, entrypoints=[timer(120)]).problems()
    assert re.fullmatch(r"index last read 12\d s ago", problems["due_timer:cases"])
    assert "due_timer:cases" not in readiness(amqp_uri=unreachable, entrypoints=[timer(2)]).problems()


def test_mongo_down_is_not_ready():
    problems = readiness(mongo_error=OSError("connection refused"), amqp_uri=f"amqp://127.0.0.1:{free_port()}/").problems()
    assert problems["mongo"] == "connection refused"
