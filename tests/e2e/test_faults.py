"""The fault run (bench/faults.py) at CI size, asserting what the full run is held to:
nothing confirmed is lost at any stage, no side effect doubled (a repeat only with the
same Message-ID and flagged), nothing dead-lettered. Plus clean shutdown under repeated
signals. Results are read from MongoDB and the SMTP sink, not over HTTP."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bench import faults
from closeloop_shared.standins import free_port
from deploy import local
from tests.fixtures import wait_for

pytestmark = pytest.mark.e2e
needs_rabbitmqctl = pytest.mark.skipif(not shutil.which("rabbitmqctl"),
                                       reason="needs rabbitmqctl to restart the broker")


@needs_rabbitmqctl
@pytest.mark.slow  # some 100 s: `make test-slow` (CI's 15 minutes have no room for it)
def test_kills_and_a_broker_restart_lose_nothing_and_double_nothing(
        rabbit_config, mongo_uri, mongo_prefix, smtp_sink, tmp_path):
    figures = faults.run_faults(
        rabbit_config["AMQP_URI"], mongo_uri, smtp_sink.port, smtp_sink.maildir, mongo_prefix, tmp_path,
        n=50, rate=25, kills=1, kill_together=True, broker_restarts=1, broker_down_s=1,
        # every case's first response runs out once the faults are over and recovered: a
        # burst of 50 escalations on the MongoDB stand-in keeps every
        # routing worker busy, /health included, and would be measured as slow recovery
        sla_first_response=30, timeout=240, quiet_s=3)
    faults.print_figures(figures)
    from tests.integration.test_bus_faults import management_answers
    wait_for(management_answers, timeout=60, what="management API back for the next tests")
    assert figures["settled"]
    assert figures["confirmed"] == 50
    assert figures["lost"] == {"cases": 0, "routed": 0, "acknowledged": 0, "reported": 0}
    assert figures["cases_per_ref_max"] == 1
    assert figures["escalations"] == 50 and figures["escalated_twice_same_rung"] == 0
    assert figures["repeated_notifications"] == figures["repeats_same_message_id"] == figures["repeats_flagged"]
    assert figures["dead_letters"] == 0
    assert all(fault["recovery_s"] is not None for fault in figures["faults"])
    assert sum(figures["restarts"].values()) == len(local.SERVICES)  # killed once each, none died otherwise


def test_repeated_signals_to_the_process_and_its_group_stop_a_service_within_the_grace_period(
        stack_env, tmp_path):
    command, _ = local.compose_services()["notify"]
    port = free_port()
    env = dict(os.environ, **stack_env, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", EVENTLET_TESTS="1",
               SERVE_GRACE_SECONDS="5")
    with open(tmp_path / "notify.log", "wb") as log:
        process = subprocess.Popen(local.local_argv(command), cwd=local.ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # its own group
    try:
        # started: its HTTP port may answer before every entrypoint has started
        wait_for(lambda: b"serve: started" in (tmp_path / "notify.log").read_bytes(), timeout=60, what="notify up")
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)  # a supervisor signalling the group ...
        process.send_signal(signal.SIGTERM)     # ... and the process
        os.killpg(process.pid, signal.SIGINT)   # and Ctrl-C on top
        assert process.wait(timeout=5 + 3) == 0
        assert time.monotonic() - started < 5 + 2
    finally:
        if process.poll() is None:
            process.kill()
    text = (tmp_path / "notify.log").read_text(errors="replace")
    assert "already stopping" in text and "re-send() an already-triggered event" not in text


def test_make_run_says_which_process_died_and_why(tmp_path):
    (tmp_path / "notify.log").write_text("line one\nTraceback: boom\n")
    assert local.exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert local.exit_reason(1) == "exit code 1"
    assert local.log_tail(tmp_path / "notify.log", 1) == ["Traceback: boom"]


def test_stop_all_survives_a_second_signal_and_leaves_nothing_running(capsys):
    import eventlet
    sleepers = [subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
                for _ in range(2)]
    time.sleep(0.3)
    eventlet.spawn_after(0.3, os.kill, os.getpid(), signal.SIGINT)  # Ctrl-C again while stopping
    local.stop_all(sleepers, grace=1)  # they ignore SIGTERM: killed after the grace period
    assert all(p.poll() is not None for p in sleepers)
    assert "already stopping" in capsys.readouterr().out
