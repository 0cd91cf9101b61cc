"""Run one nameko service as `nameko run` does, but stop cleanly however often it is
told to: the command every service runs with (docker-compose.yml, hence `make run`).

    python -m deploy.serve --config deploy/nameko.yml services.intake.service:IntakeService

`nameko run` reacts to every SIGTERM/SIGINT by stopping its runner again; a second
signal during shutdown (a supervisor that signals the process and its group, Ctrl-C
pressed twice) raises `AssertionError: Trying to re-send() an already-triggered event`
and can leave the process hanging with its port held. Here the first SIGTERM or SIGINT
starts a graceful stop; later ones are noted and ignored. If the graceful stop takes
longer than the grace period (SERVE_GRACE_SECONDS, default 8, below compose's 10 s),
the containers are killed; a watchdog on a real OS thread ends the process even if the
event loop itself is stuck. Exit status: 0 after a requested stop, 1 when a service
died on its own (its error is logged first), 2 on a bad command line."""
import os

os.environ.setdefault("EVENTLET_TESTS", "1")  # silences eventlet's deprecation banner
import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import errno  # noqa: E402
import logging  # noqa: E402
import logging.config  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import yaml  # noqa: E402
from eventlet import patcher  # noqa: E402
from nameko.cli.main import setup_yaml_parser  # noqa: E402
from nameko.cli.run import import_service  # noqa: E402
from nameko.runners import ServiceRunner  # noqa: E402

from closeloop_shared import mongo_metrics  # noqa: E402

log = logging.getLogger("closeloop.serve")
real_threading = patcher.original("threading")
real_time = patcher.original("time")


def grace_seconds():
    return float(os.environ.get("SERVE_GRACE_SECONDS", "8"))


def load_config(path):
    setup_yaml_parser()  # ${VAR:default} substitution, as nameko run does it
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file)


def watchdog(seconds, code):
    """Ends the process after `seconds`, whatever the event loop is doing."""
    def run():
        real_time.sleep(seconds)
        sys.stderr.write(f"serve: still running {seconds:.0f}s after the stop signal; exiting hard\n")
        sys.stderr.flush()
        os._exit(code)
    real_threading.Thread(target=run, name="serve-watchdog", daemon=True).start()


class Serve:
    def __init__(self, runner, grace):
        self.runner, self.grace = runner, grace
        self.stop_requested = False
        self.started = eventlet.event.Event()

    def on_signal(self, signum, frame):
        # Runs in the main loop: no eventlet primitives here, only a spawn.
        name = signal.Signals(signum).name
        if self.stop_requested:
            sys.stderr.write(f"serve: {name} again; already stopping\n")
            return
        self.stop_requested = True
        sys.stderr.write(f"serve: {name}; stopping (grace {self.grace:.0f}s)\n")
        watchdog(self.grace + 2, 143)
        eventlet.spawn_n(self.stop)

    def stop(self):
        if not self.started.ready():  # a signal during start-up: nothing to stop gracefully
            os._exit(143)
        try:
            with eventlet.Timeout(self.grace):
                self.runner.stop()
        except eventlet.Timeout:
            log.warning("graceful stop took longer than %ss; killing", self.grace)
            self.runner.kill()
        except Exception:
            log.exception("error while stopping; killing")
            self.runner.kill()

    def run(self):
        self.runner.start()
        self.started.send(True)
        sys.stderr.write("serve: started\n")  # from here on a stop signal stops gracefully
        waiter = eventlet.spawn(self.runner.wait)
        while True:
            try:
                waiter.wait()
                return 0 if self.stop_requested else 1
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue  # a signal arrived while the hub waited on a socket
                raise
            except KeyboardInterrupt:  # only if SIGINT's handler was replaced under us
                self.on_signal(signal.SIGINT, None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("services", nargs="+", help="module:Class")
    args = parser.parse_args(argv)
    if "." not in sys.path:
        sys.path.insert(0, ".")
    config = load_config(args.config)
    mongo_metrics.install()  # before any service makes its MongoClient
    if "LOGGING" in config:
        logging.config.dictConfig(config["LOGGING"])
    else:
        logging.basicConfig(level=logging.INFO)
    runner = ServiceRunner(config)
    for path in args.services:
        for service_cls in import_service(path):
            runner.add_service(service_cls)
    serve = Serve(runner, grace_seconds())
    signal.signal(signal.SIGTERM, serve.on_signal)
    signal.signal(signal.SIGINT, serve.on_signal)
    try:
        code = serve.run()
    except Exception:
        log.exception("service died")
        code = 1
    if code and not serve.stop_requested:
        log.error("service stopped without being asked to (see the error above)")
    return code


if __name__ == "__main__":
    sys.exit(main())
