"""Run the whole Closeloop system on this machine (`make run`).

Starts what is missing (the MongoDB-protocol stand-in when MONGO_URI is unset, an SMTP
sink when SMTP_HOST is unset), then the five services with exactly the commands
docker-compose.yml gives them, each on its compose host port. Ctrl-C (or SIGTERM, once
or repeatedly, to this process or its whole group) stops everything it started; if one
process exits on its own, it says which and why, then stops the rest. Services are also
told to stop if this process dies (Linux parent-death signal), so none is left behind.
The end-to-end tests start services through the same functions."""
import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from pathlib import Path

import yaml

from closeloop_shared import org
from closeloop_shared.clock import utcnow
from closeloop_shared.config import DEFAULTS, MONGO_DB_PREFIX, ORG_SEED_PATH
from closeloop_shared.mongo import connect
from closeloop_shared.standins import (
    die_with_parent, port_open, standin_mongo_uri, start_mongo_standin, start_smtp_sink, wait_until)
from closeloop_shared.tokens import write_key_pair
from services.routing.accounts import hash_password
from services.routing.repository import AccountRepository

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "routing", "followup", "notify", "reporting")
BIN = Path(sys.executable).parent


def compose_services(path=ROOT / "docker-compose.yml"):
    """{name: (command, host_port)} for the five services, read from docker-compose.yml."""
    services = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["services"]
    found = {}
    for name in SERVICES:
        spec = services[name]
        host_port = int(spec["ports"][0].split(":")[0].split("-")[0])  # a range's first port
        found[name] = (list(spec["command"]), host_port)
    return found


CONSOLE = "console"


def console_service(path=ROOT / "docker-compose.yml"):
    """(command, host_port) of the staff console, read from docker-compose.yml."""
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["services"][CONSOLE]
    return list(spec["command"]), int(spec["ports"][0].split(":")[0])


def console_env(urls):
    """The console calls the services where this run put them: {name: base URL}."""
    return {f"CONSOLE_{name.upper()}_URL": url for name, url in urls.items()}


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
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent())


def exit_reason(returncode):
    """'exit code 1' or 'killed by SIGKILL'."""
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def log_tail(path, lines=12):
    try:
        with open(path, "rb") as file:
            return [line.decode("utf-8", "replace").rstrip() for line in deque(file, lines)]
    except OSError:
        return []


def stop_all(processes, grace=15):
    """SIGTERM each live process once, wait up to `grace` seconds, SIGKILL what is left.
    Further SIGINT/SIGTERM while stopping are ignored, so a second Ctrl-C cannot cut
    the stop short and leave a service behind."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _already_stopping)
        except ValueError:  # not the main thread: signals are someone else's business
            pass
    try:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _already_stopping(signum, frame):
    print(f"{signal.Signals(signum).name}: already stopping everything", flush=True)


class Stop(Exception):
    pass


def _stop_requested(signum, frame):
    raise Stop(signal.Signals(signum).name)


DEMO_PASSWORD = "closeloop-demo"


def local_signing_keys(directory):
    """The staff-token key pair of the local run (made once, kept in var/keys), unless
    the environment names its own."""
    if os.environ.get("AUTH_PUBLIC_KEYS_FILE"):
        return {}
    private, public = directory / "signing.pem", directory / "public.jwks.json"
    if not private.exists():
        print(f"Tokens: a new signing key in {directory}")
        write_key_pair(private, public)
    return {"AUTH_PUBLIC_KEYS_FILE": str(public), "AUTH_SIGNING_KEY_FILE": str(private)}


def set_demo_passwords(mongo_uri):
    """Give every person of the seed who has no login yet the demo password. Only the
    local run does this; compose has no demo passwords (python -m deploy.identity)."""
    client = connect(mongo_uri)
    try:
        db = client[f"{os.environ.get('MONGO_DB_PREFIX') or DEFAULTS[MONGO_DB_PREFIX]}_routing"]
        accounts = AccountRepository(db)
        demo_hash = None  # one argon2 hash serves them all: each costs ~50 ms
        for staff_id in org.load(ROOT / DEFAULTS[ORG_SEED_PATH]).staff:
            if accounts.get(staff_id) is None:
                demo_hash = demo_hash or hash_password(DEMO_PASSWORD)
                accounts.set_password(staff_id, demo_hash, utcnow())
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var", default=str(ROOT / "var"), help="data and logs (default: var/)")
    args = parser.parse_args()
    var = Path(args.var)
    (var / "log").mkdir(parents=True, exist_ok=True)
    started, env = {}, {}  # name -> (process, log path)
    # SIGTERM (a supervisor, `kill`) and SIGINT (Ctrl-C) stop the children too, even mid-start.
    signal.signal(signal.SIGTERM, _stop_requested)
    signal.signal(signal.SIGINT, _stop_requested)

    def log_file(name):
        return open(var / "log" / f"{name}.log", "ab")

    try:
        if not os.environ.get("MONGO_URI"):
            if port_open(27017):
                print("MongoDB: using the server already on 127.0.0.1:27017")
            else:
                print("MongoDB: starting the stand-in (secantusdb) on 127.0.0.1:27017, data in var/mongo")
                started["mongo"] = (start_mongo_standin(27017, var / "mongo", log_file("mongo")), None)
            env["MONGO_URI"] = standin_mongo_uri(27017)
        if not os.environ.get("SMTP_HOST"):
            if not port_open(1025):
                print("SMTP: starting a mail sink on 127.0.0.1:1025, mail in var/mail")
                started["smtp"] = (start_smtp_sink(1025, var / "mail", log_file("smtp")), None)
        env.update(local_signing_keys(var / "keys"))
        services = {}
        for name, (command, port) in compose_services().items():
            print(f"{name}: {' '.join(command)}  (http://127.0.0.1:{port}, log var/log/{name}.log)")
            started[name] = (start_service(name, command, port, env, log_file(name)), port)
            services[name] = started[name]
        for name, (process, port) in services.items():
            wait_healthy(name, process, port)
            print(f"  {name} is up")
        set_demo_passwords(env.get("MONGO_URI") or os.environ["MONGO_URI"])
        command, console_port = console_service()
        urls = {name: f"http://127.0.0.1:{port}" for name, (_, port) in services.items()}
        started[CONSOLE] = (start_service(CONSOLE, command, console_port, {**env, **console_env(urls)},
                                          log_file(CONSOLE)), console_port)
        wait_healthy(CONSOLE, started[CONSOLE][0], console_port)
        print(f"Staff console: http://127.0.0.1:{console_port}/  (log var/log/{CONSOLE}.log); demo logins, "
              f"password {DEMO_PASSWORD!r}:\n"
              f"  sh-xh-s1 (store staff, 上海徐汇店), sh-xh-sv (supervisor), sh-xh-mg (store manager),\n"
              f"  hz-xh-s1 (store staff, 杭州西湖店), rm-east (regional manager), cs-001 (customer service), "
              f"gm-001 (general manager)")
        print(f"Log in (local run only; every person of deploy/seeds/org.yaml has the password "
              f"{DEMO_PASSWORD!r}):\n"
              f"  curl -s -X POST http://127.0.0.1:{services['routing'][1]}/v1/auth/login "
              f"-H 'Content-Type: application/json' "
              f"-d '{{\"staff_id\": \"sh-xh-mg\", \"password\": \"{DEMO_PASSWORD}\"}}'\n"
              f"  then send Authorization: Bearer <token> to any service. Admin: ops-admin.")
        print("Closeloop is running. Try: make demo    (Ctrl-C stops everything)", flush=True)
        while True:
            for name, (process, _) in started.items():
                if process.poll() is not None:
                    print(f"{name} exited ({exit_reason(process.returncode)}); stopping the rest. "
                          f"Last lines of var/log/{name}.log:")
                    for line in log_tail(var / "log" / f"{name}.log"):
                        print(f"  | {line}")
                    return 1
            time.sleep(1)
    except Stop as stop:
        print(f"{stop}: stopping everything", flush=True)
        return 0
    except RuntimeError as failed:  # a service exited before it was healthy
        print(failed)
        for name, (process, _) in started.items():
            if process.poll() is not None:
                print(f"{name}: {exit_reason(process.returncode)}; last lines of var/log/{name}.log:")
                for line in log_tail(var / "log" / f"{name}.log"):
                    print(f"  | {line}")
        return 1
    finally:
        # services first, then the stand-ins they use: a service whose database went
        # away first would wait on it and outlast its grace period
        stop_all([p for name, (p, _) in started.items() if name not in ("mongo", "smtp")])
        stop_all([p for name, (p, _) in started.items() if name in ("mongo", "smtp")])
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
