"""closeloop_shared.red: every entrypoint's rate, errors and duration, and the timers'
heartbeats, with every series there (zero) from the container's start. No infrastructure:
the container is built, never started; nameko's worker hooks are called as it would."""
import sys

import pytest
from nameko.containers import ServiceContainer, WorkerContext
from prometheus_client import REGISTRY
from werkzeug.wrappers import Response

from closeloop_shared.bus import event_handler, timer
from closeloop_shared.due import due_timer
from closeloop_shared.http import PUBLIC, HttpError, http, json_response
from closeloop_shared.red import EntrypointMetrics, kind_of


class RedProbe:
    name = "red_probe"
    red = EntrypointMetrics()

    @http("GET", "/v1/things/<string:thing_id>", access=PUBLIC)
    def get_thing(self, request, thing_id):
        return json_response(200, {})

    @event_handler("intake", "case_submitted")
    def on_case_submitted(self, payload):
        pass

    @timer("SLA_SCAN_INTERVAL_SECONDS")
    def check_deadlines(self):
        pass

    @due_timer("cases", "next_check_at")
    def check_case_due(self, case_id):
        pass


@pytest.fixture
def red():
    container = ServiceContainer(RedProbe, {"AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/"})  # never connects
    (provider,) = [d for d in container.dependencies if isinstance(d, EntrypointMetrics)]
    provider.setup()
    entrypoints = {e.method_name: e for e in container.entrypoints}
    return container, provider, entrypoints


def sample(name, entrypoint, kind):
    return REGISTRY.get_sample_value(name, {"service": "red_probe", "entrypoint": entrypoint, "kind": kind})


def run(container, provider, entrypoint, result=None, error=None):
    worker_ctx = WorkerContext(container, RedProbe(), entrypoint)
    provider.worker_setup(worker_ctx)
    exc_info = None
    if error is not None:
        try:
            raise error
        except Exception:
            exc_info = sys.exc_info()
    provider.worker_result(worker_ctx, result, exc_info)
    provider.worker_teardown(worker_ctx)


def test_every_entrypoint_has_its_series_at_start_with_a_low_cardinality_kind(red):
    container, _, entrypoints = red
    kinds = {name: kind_of(e) for name, e in entrypoints.items()}
    assert kinds == {"get_thing": "http", "on_case_submitted": "event", "check_deadlines": "timer",
                     "check_case_due": "due_timer"}
    for name, kind in kinds.items():
        assert sample("closeloop_entrypoint_calls_total", name, kind) is not None, name
        assert sample("closeloop_entrypoint_errors_total", name, kind) is not None, name
        assert sample("closeloop_entrypoint_duration_seconds_count", name, kind) is not None, name
    # timers' heartbeats exist (0: not since start); other kinds have none
    assert sample("closeloop_timer_last_success_timestamp_seconds", "check_deadlines", "timer") == 0
    assert sample("closeloop_timer_last_success_timestamp_seconds", "check_case_due", "due_timer") == 0
    assert sample("closeloop_timer_last_success_timestamp_seconds", "get_thing", "http") is None
    # the due timer has not read its index (it was never started)
    assert REGISTRY.get_sample_value("closeloop_due_timer_last_read_timestamp_seconds",
                                     {"service": "red_probe", "collection": "cases"}) is not None


def test_calls_errors_and_durations_are_counted_per_entrypoint(red):
    container, provider, entrypoints = red
    http_entry, handler = entrypoints["get_thing"], entrypoints["on_case_submitted"]
    before = {name: (sample("closeloop_entrypoint_calls_total", name, kind),
                     sample("closeloop_entrypoint_errors_total", name, kind),
                     sample("closeloop_entrypoint_duration_seconds_count", name, kind))
              for name, kind in (("get_thing", "http"), ("on_case_submitted", "event"))}
    run(container, provider, http_entry, result=json_response(200, {}))
    run(container, provider, http_entry, error=HttpError(404, "not_found", "no such thing"))  # the caller's
    run(container, provider, http_entry, result=Response("{}", status=503))  # the service's
    run(container, provider, http_entry, error=RuntimeError("boom"))
    run(container, provider, handler, error=ValueError("bad payload"))
    calls, errors, timed = before["get_thing"]
    assert sample("closeloop_entrypoint_calls_total", "get_thing", "http") == calls + 4
    assert sample("closeloop_entrypoint_errors_total", "get_thing", "http") == errors + 2
    assert sample("closeloop_entrypoint_duration_seconds_count", "get_thing", "http") == timed + 4
    calls, errors, timed = before["on_case_submitted"]
    assert sample("closeloop_entrypoint_calls_total", "on_case_submitted", "event") == calls + 1
    assert sample("closeloop_entrypoint_errors_total", "on_case_submitted", "event") == errors + 1


def test_a_timer_beats_only_when_it_finishes_without_an_exception(red):
    container, provider, entrypoints = red
    scan = entrypoints["check_deadlines"]
    run(container, provider, scan, error=RuntimeError("mongo down"))
    assert sample("closeloop_timer_last_success_timestamp_seconds", "check_deadlines", "timer") == 0
    run(container, provider, scan)
    beat = sample("closeloop_timer_last_success_timestamp_seconds", "check_deadlines", "timer")
    assert beat > 1.7e9  # a Unix time: now
