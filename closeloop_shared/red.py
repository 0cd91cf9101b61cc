"""Every service's RED metrics (rate, errors, duration) per entrypoint, and the heartbeats
of its timers: one dependency provider (`EntrypointMetrics`, on closeloop_shared.ops's
OpsEndpoints, so every service has it) that nameko calls around each worker.

- closeloop_entrypoint_calls_total{service, entrypoint, kind}: every call (the rate)
- closeloop_entrypoint_errors_total{service, entrypoint, kind}: calls that failed: an
  exception (an event handler's message then goes to retry or the dead letters) or an
  HTTP answer of 5xx; a 4xx is the caller's mistake, not the service's
- closeloop_entrypoint_duration_seconds{service, entrypoint, kind}: how long the worker ran
- closeloop_timer_last_success_timestamp_seconds{service, entrypoint, kind}: when a timer or
  due timer last finished without an exception (0: not since start): routing's deadline
  scan `check_deadlines` stalled shows here
- closeloop_due_timer_last_read_timestamp_seconds{service, collection}: when a due timer last
  read its index (0: not yet), read at scrape time: the precise deadline timers stalled

A request refused before any worker runs (401, 403: closeloop_shared.http checks the
credential first) is not a call here. `entrypoint` is the method's name and `kind` one of
http, event, consumer, timer, due_timer, rpc: labels the code bounds, never a path
argument, case or store. Every series is created when the container starts, so the first
call after a restart counts in `increase()` and in alerts."""
import time

from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer
from nameko.rpc import Rpc
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from prometheus_client import Counter, Gauge, Histogram

from closeloop_shared.due import DueTimer
from closeloop_shared.http import HttpError

LABELS = ["service", "entrypoint", "kind"]
CALLS = Counter("closeloop_entrypoint_calls_total", "Entrypoint calls (HTTP routes, event handlers, timers, RPC)",
                LABELS)
ERRORS = Counter("closeloop_entrypoint_errors_total",
                 "Entrypoint calls that failed: an exception, or an HTTP 5xx answer", LABELS)
DURATION = Histogram("closeloop_entrypoint_duration_seconds", "How long an entrypoint's worker ran", LABELS,
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
TIMER_SUCCESS = Gauge("closeloop_timer_last_success_timestamp_seconds",
                      "When a timer or due timer last finished without an exception (0: not since start)", LABELS)
DUE_TIMER_READ = Gauge("closeloop_due_timer_last_read_timestamp_seconds",
                       "When a due timer last read its index of due items (0: not yet)", ["service", "collection"])

TIMER_KINDS = ("timer", "due_timer")
# most specific first: an EventHandler is a Consumer, a DueTimer is no nameko Timer
KINDS = ((HttpRequestHandler, "http"), (EventHandler, "event"), (Consumer, "consumer"),
         (DueTimer, "due_timer"), (Timer, "timer"), (Rpc, "rpc"))


def kind_of(entrypoint):
    for cls, kind in KINDS:
        if isinstance(entrypoint, cls):
            return kind
    return type(entrypoint).__name__.lower()


def failed(result, exc_info):
    """A call counts as an error when the service failed, not when the caller did."""
    if exc_info is not None:
        error = exc_info[1]
        return not (isinstance(error, HttpError) and error.status < 500)
    status = getattr(result, "status_code", None)  # an HTTP handler's werkzeug Response
    if status is None and isinstance(result, tuple) and result and isinstance(result[0], int):
        status = result[0]  # nameko's (status, body) answer
    return status is not None and status >= 500


def read_timestamp(timer):
    """The due timer's last index read as a Unix time, 0 before the first one."""
    age = timer.read_age() if hasattr(timer, "timers") else None  # None: not set up yet
    return 0.0 if age is None else time.time() - age


class EntrypointMetrics(DependencyProvider):
    """Counts and times every worker of the container (nameko's worker hooks)."""

    def setup(self):
        self.started = {}  # worker_ctx -> perf_counter at worker_setup
        service = self.container.service_name
        for entrypoint in self.container.entrypoints:
            labels = (service, entrypoint.method_name, kind_of(entrypoint))
            CALLS.labels(*labels)
            ERRORS.labels(*labels)
            DURATION.labels(*labels)
            if labels[2] in TIMER_KINDS:
                TIMER_SUCCESS.labels(*labels).set(0)
            if isinstance(entrypoint, DueTimer):
                DUE_TIMER_READ.labels(service, entrypoint.collection).set_function(
                    lambda timer=entrypoint: read_timestamp(timer))

    def worker_setup(self, worker_ctx):
        self.started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self.started.pop(worker_ctx, None)
        entrypoint = worker_ctx.entrypoint
        labels = (self.container.service_name, entrypoint.method_name, kind_of(entrypoint))
        CALLS.labels(*labels).inc()
        if started is not None:
            DURATION.labels(*labels).observe(time.perf_counter() - started)
        if failed(result, exc_info):
            ERRORS.labels(*labels).inc()
        elif labels[2] in TIMER_KINDS:
            TIMER_SUCCESS.labels(*labels).set(time.time())

    def worker_teardown(self, worker_ctx):
        self.started.pop(worker_ctx, None)  # a worker whose result hook never ran
