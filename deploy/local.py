"""Run the whole Closeloop system on this machine (`make run`).

Starts what is missing (the MongoDB-protocol stand-in when MONGO_URI is unset, an SMTP
sink when SMTP_HOST is unset), then the five services with exactly the commands
docker-compose.yml gives them, each on its compose host port. Ctrl-C stops everything.
The end-to-end tests start services through the same functions."""
import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from closeloop_shared.standins import (
    port_open, standin_mongo_uri, start_mongo_standin, start_smtp_sink, wait_until)

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "routing", "followup", "notify", "reporting")
BIN = Path(sys.executable).parent


def compose_services(path=ROOT / "docker-compose.yml"):
    """{name: (command, host_port)} for the five services, read from docker-compose.yml."""
    services = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["services"]
    found = {}
    for name in SERVICES:
        spec = services[name]
        host_port = int(spec["ports"][0].split(":")[0])
        found[name] = (list(spec["command"]), host_port)
    return found


def local_argv(command):
    """The compose command, with its programs taken from this virtualenv."""
    program = BIN / command[0]
    return [str(program) if program.exists() else command[0], *command[1:]]


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_healthy(name, process, port, timeout=90):
    wait_until(lambda: process.poll() is not None or healthy(port), timeout, name)
    if process.poll() is not None:
        raise RuntimeError(f"{name} exited with {process.returncode} before it was healthy")


def start_service(name, command, port, env, log):
    service_env = dict(os.environ, **env, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
                       EVENTLET_TESTS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(local_argv(command), cwd=ROOT, env=service_env,
                            stdout=log, stderr=subprocess.STDOUT)


def stop_all(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var", default=str(ROOT / "var"), help="data and logs (default: var/)")
    args = parser.parse_args()
    var = Path(args.var)
    (var / "log").mkdir(parents=True, exist_ok=True)
    processes, env = [], {}
    # SIGTERM (from a supervisor or `kill`) stops the children too, even mid-start.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def log_file(name):
        return open(var / "log" / f"{name}.log", "ab")

    try:
        if not os.environ.get("MONGO_URI"):
            if port_open(27017):
                print("MongoDB: using the server already on 127.0.0.1:27017")
            else:
                print("MongoDB: starting the stand-in (secantusdb) on 127.0.0.1:27017, data in var/mongo")
                processes.append(start_mongo_standin(27017, var / "mongo", log_file("mongo")))
            env["MONGO_URI"] = standin_mongo_uri(27017)
        if not os.environ.get("SMTP_HOST"):
            if not port_open(1025):
                print("SMTP: starting a mail sink on 127.0.0.1:1025, mail in var/mail")
                processes.append(start_smtp_sink(1025, var / "mail", log_file("smtp")))
        started = {}
        for name, (command, port) in compose_services().items():
            print(f"{name}: {' '.join(command)}  (http://127.0.0.1:{port}, log var/log/{name}.log)")
            started[name] = (start_service(name, command, port, env, log_file(name)), port)
            processes.append(started[name][0])
        for name, (process, port) in started.items():
            wait_healthy(name, process, port)
            print(f"  {name} is up")
        print("Closeloop is running. Try: make demo    (Ctrl-C stops everything)")
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print("a process exited; stopping the rest (see var/log/)")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(processes)


if __name__ == "__main__":
    sys.exit(main())
