"""Fault run: the five services under a supervisor that restarts them (as compose's
restart policy does), N feedback messages published with confirms at a fixed rate, and
while they flow every service SIGKILLed several times and RabbitMQ's application
restarted several times. Then it waits for the system to settle and prints what
survived, read from MongoDB and the SMTP sink directly (not over HTTP):

    .venv/bin/python -m bench.faults [--n 2000] [--rate 50] [--kills 3] [--broker-restarts 3]
    make faults                      # N=2000; FAULTS_ARGS="--n 10000" for the full run

confirmed     messages the broker confirmed (only those are promised; a publish that
              failed is retried with the same external reference until confirmed)
cases, routed, acknowledged, reported
              of the confirmed messages, how many became an intake case, a routed case,
              an acknowledgement e-mail in the sink, a row in reporting's read model;
              lost = confirmed minus each
duplicates    logical notifications (same case, kind, recipient) that reached the sink
              more than once, whether the copies share one Message-ID, and whether
              notify flagged them (possible_repeat); escalations recorded twice for one
              case and rung (every case's first-response clock runs out during the run,
              so every case escalates once: --sla-first-response)
dead letters  messages in closeloop.dead_letter
recovery      per fault: seconds from the SIGKILL until the service is healthy and
              consuming all its queues again (restarted by the supervisor); for a broker
              restart, from `rabbitmqctl start_app` returning until every service consumes
              all its queues again (the outage itself is printed beside it)
ack wait      the longest time from a message's first publish attempt to its
              acknowledgement e-mail arriving in the sink

Isolation as in bench/throughput.py (own vhost, stand-in MongoDB unless MONGO_URI is set,
SMTP sink, database prefix). Restarting RabbitMQ's application affects every vhost on
the broker: do not run it beside anything that needs the broker. Exit status 1 if
anything confirmed was lost or a notification was repeated without being flagged.
"""
from bench.throughput import (  # noqa: I001  (monkey-patches eventlet first)
    CHANNELS, CHINA, COMPLAINTS as ALL_COMPLAINTS, STORES, bench_databases, mongo_server,
    queue_state, rabbit_vhost, smtp_server)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import email.parser  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

from kombu import Connection  # noqa: E402

from bench import figures as figures_file  # noqa: E402
from closeloop_shared import bus  # noqa: E402
from closeloop_shared.events import EMITTERS, SUBSCRIPTIONS  # noqa: E402
from closeloop_shared.mongo import connect  # noqa: E402
from closeloop_shared.standins import free_port  # noqa: E402
from deploy import local  # noqa: E402

# The bench's complaints that no severity rule makes critical (no 消协 threat): each case
# then climbs the ladder only as its first-response clock runs out, once per rung.
COMPLAINTS = ALL_COMPLAINTS[:4]


def service_queues(name):
    """The queues a service consumes from."""
    queues = [bus.INBOUND_QUEUE.name] if name == "intake" else []
    for event_type, consumers in SUBSCRIPTIONS.items():
        queues += [f"evt-{EMITTERS[event_type]}-{event_type}--{service}.{method}"
                   for service, method in consumers if service == name]
    return queues


def feedback(tag, i):
    return {
        "store_id": STORES[i % len(STORES)], "channel": CHANNELS[i % len(CHANNELS)],
        "customer": {"name": "王女士", "phone": f"139{i:08d}", "email": f"c{i}@{tag}.example.com"},
        "content": COMPLAINTS[i % len(COMPLAINTS)],
        "occurred_at": (datetime.now(CHINA) - timedelta(hours=1)).isoformat(timespec="seconds"),
        "external_ref": {"source": tag, "id": str(i)}, "locale": "zh-CN",
    }


# --- the supervisor ------------------------------------------------------------------------

class Supervisor:
    """Starts the five services and restarts any that exits, as compose does."""

    def __init__(self, env, work):
        self.env, self.work = env, work
        self.commands = local.compose_services()
        self.ports = {name: free_port() for name in self.commands}
        self.processes, self.restarts, self.stopping = {}, Counter(), False
        self._thread = None

    def start_one(self, name):
        command, _ = self.commands[name]
        log = open(self.work / f"{name}.log", "ab")
        self.processes[name] = local.start_service(name, command, self.ports[name], self.env, log)

    def start(self, timeout=90):
        for name in self.commands:
            self.start_one(name)
        for name in self.commands:
            local.wait_healthy(name, self.processes[name], self.ports[name], timeout)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self.stopping:
            for name, process in list(self.processes.items()):
                if process.poll() is not None and not self.stopping:
                    self.restarts[name] += 1
                    if process.returncode != -signal.SIGKILL:
                        print(f"  supervisor: {name} exited on its own ({local.exit_reason(process.returncode)}),"
                              " restarting", flush=True)
                    self.start_one(name)
            time.sleep(0.1)

    def kill(self, name):
        self.processes[name].send_signal(signal.SIGKILL)

    def running(self, name):
        return self.processes[name].poll() is None

    def stop(self):
        self.stopping = True
        if self._thread:
            self._thread.join()
        local.stop_all(list(self.processes.values()))


# --- publishing ----------------------------------------------------------------------------

class Publisher:
    """Publishes messages 0..n-1 at `rate`/s with confirms; a message whose publish
    failed (broker away) is retried, same body, until the broker confirms it."""

    def __init__(self, amqp_uri, tag, n, rate):
        self.amqp_uri, self.tag, self.n, self.rate = amqp_uri, tag, n, rate
        self.first_attempt, self.confirmed, self.failures = {}, set(), 0
        self.user = Connection(amqp_uri).userid
        self.done = threading.Event()

    def run(self):
        started = time.monotonic()
        i, connection, producer = 0, None, None
        while i < self.n:
            wait = started + i / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.first_attempt.setdefault(i, time.time())
            try:
                if producer is None:
                    connection = Connection(self.amqp_uri, connect_timeout=2, transport_options={
                                            "confirm_publish": True, "max_retries": 1})
                    producer = connection.Producer()
                body = json.dumps(feedback(self.tag, i), ensure_ascii=False).encode()
                producer.publish(body, exchange=bus.INBOUND_EXCHANGE, routing_key=bus.FEEDBACK_SUBMITTED_KEY,
                                 declare=[bus.INBOUND_EXCHANGE], content_type="application/json",
                                 content_encoding="utf-8", delivery_mode=2, user_id=self.user,
                                 retry=False)
                self.confirmed.add(i)
                i += 1
            except Exception:
                self.failures += 1
                with contextlib.suppress(Exception):
                    connection.release()
                connection = producer = None
                time.sleep(0.5)
        with contextlib.suppress(Exception):
            connection.release()
        self.done.set()


# --- faults ----------------------------------------------------------------------------------

def consuming(amqp_uri, queues):
    return all(queue_state(amqp_uri, queue)[1] >= 1 for queue in queues)


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=180)


class Faults:
    def __init__(self, supervisor, amqp_uri, kills, broker_restarts, broker_down_s, kill_together=False):
        self.supervisor, self.amqp_uri = supervisor, amqp_uri
        names = list(supervisor.commands)
        if kill_together:  # every service at once, `kills` times
            plan = [("kill", "+".join(names)) for _ in range(kills)]
        else:
            plan = [("kill", name) for _ in range(kills) for name in names]
        # broker restarts spread evenly among the kills
        for k in range(broker_restarts):
            plan.insert(round((k + 0.5) * len(plan) / max(broker_restarts, 1)) + k, ("broker", "rabbitmq"))
        self.plan, self.broker_down_s, self.log = plan, broker_down_s, []

    def recovered(self, names):
        """Every service running again and consuming all its queues. (Not its HTTP /health:
        a service working off the backlog a fault left may answer that late, busy but
        recovered; the run's figures say what was lost or doubled meanwhile.)"""
        return (all(self.supervisor.running(name) for name in names)
                and consuming(self.amqp_uri, [q for name in names for q in service_queues(name)]))

    def wait_recovered(self, names, since, timeout=120):
        while time.monotonic() - since < timeout:
            if self.recovered(names):
                return time.monotonic() - since
            time.sleep(0.2)
        return None

    def run(self, window_s):
        """Spread the faults over `window_s` seconds, one at a time."""
        spacing = window_s / (len(self.plan) + 1) if self.plan else 0
        started = time.monotonic()
        for k, (kind, target) in enumerate(self.plan):
            wait = started + (k + 1) * spacing - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            at = time.monotonic()
            if kind == "kill":
                for name in target.split("+"):
                    self.supervisor.kill(name)
                time.sleep(0.3)  # let the supervisor see it die before probing
                recovery = self.wait_recovered(target.split("+"), at)
                detail = ""
            else:
                rabbitmqctl("stop_app")
                down = time.monotonic()
                time.sleep(self.broker_down_s)
                rabbitmqctl("start_app")
                up = time.monotonic()
                outage = self.wait_recovered(list(self.supervisor.commands), at)
                # the services' recovery: from the broker being back to all of them consuming
                recovery = None if outage is None else outage - (up - at)
                detail = (f" (after start_app returned; stop_app took {down - at:.1f} s, down "
                          f"{self.broker_down_s:.0f} s, start_app {up - down - self.broker_down_s:.1f} s, "
                          f"{'-' if outage is None else f'{outage:.1f}'} s from stop_app to all consuming)")
            self.log.append({"fault": kind, "target": target, "at_s": round(at - started, 1),
                             "recovery_s": None if recovery is None else round(recovery, 1),
                             "detail": detail.strip(" ()")})
            print(f"  fault {k + 1}/{len(self.plan)}: {kind} {target}: recovered in "
                  f"{'NOT RECOVERED' if recovery is None else f'{recovery:.1f} s'}{detail}", flush=True)


# --- results ---------------------------------------------------------------------------------

def sink_messages(maildir):
    """[(headers, arrival time)] of every message the SMTP sink stored."""
    parser = email.parser.BytesHeaderParser()
    found = []
    for sub in ("new", "cur"):
        for path in (Path(maildir) / sub).iterdir():
            with open(path, "rb") as file:
                headers = parser.parse(file)
            found.append((headers, path.stat().st_mtime))
    return found


def collect(dbs, maildir, amqp_uri, publisher, tag):
    confirmed = publisher.confirmed
    cases = {}
    for doc in dbs["intake"]["cases"].find({"external_ref.source": tag}, {"external_ref": 1}):
        cases.setdefault(int(doc["external_ref"]["id"]), []).append(doc["_id"])
    case_ids = {ids[0] for ids in cases.values()}
    routed, escalations = set(), Counter()
    for doc in dbs["routing"]["cases"].find({"routed_at": {"$exists": True}}, {"timeline": 1}):
        routed.add(doc["_id"])
        for entry in doc.get("timeline", []):
            if entry.get("action") == "escalated":
                escalations[(doc["_id"], entry.get("rung"))] += 1
    reported = {doc["_id"] for doc in dbs["reporting"]["case_facts"].find(
        {"submitted_at": {"$exists": True}}, {"_id": 1})}
    flagged = {(d["case_id"], d["kind"], step["address"]) for d in dbs["notify"]["deliveries"].find(
        {"possible_repeat": True}, {"case_id": 1, "kind": 1, "route": 1})
        for step in d.get("route", []) if step["channel"] == "email"}  # the sink sees e-mail addresses

    copies = defaultdict(list)  # (case, kind, recipient) -> [(message id, arrival)]
    for headers, arrived in sink_messages(maildir):
        case_id, _, kind = (headers.get("X-Closeloop-Key") or "").partition(":")
        if case_id not in case_ids:
            continue  # another run's mail in a shared sink
        copies[(case_id, kind, headers.get("To"))].append((headers.get("Message-ID"), arrived))
    acked = {key[0]: min(t for _, t in sent) for key, sent in copies.items() if key[1] == "acknowledgement"}
    repeated = {key: sent for key, sent in copies.items() if len(sent) > 1}

    by_ref = {i: cases[i][0] for i in confirmed if i in cases}
    ack_waits = [acked[case_id] - publisher.first_attempt[i] for i, case_id in by_ref.items() if case_id in acked]
    stage = {"cases": len(by_ref), "routed": sum(c in routed for c in by_ref.values()),
             "acknowledged": sum(c in acked for c in by_ref.values()),
             "reported": sum(c in reported for c in by_ref.values())}
    return {
        "published": len(publisher.first_attempt), "confirmed": len(confirmed),
        "publish_failures_retried": publisher.failures,
        **stage, "lost": {name: len(confirmed) - count for name, count in stage.items()},
        "cases_per_ref_max": max((len(v) for v in cases.values()), default=0),
        "notifications": sum(len(v) for v in copies.values()),
        "notifications_logical": len(copies),
        "repeated_notifications": len(repeated),
        "repeats_same_message_id": sum(len({mid for mid, _ in sent}) == 1 for sent in repeated.values()),
        "repeats_flagged": sum(key in flagged for key in repeated),
        "deliveries_flagged_possible_repeat": len(flagged),
        "escalations": sum(escalations.values()),
        "escalated_twice_same_rung": sum(1 for n in escalations.values() if n > 1),
        "dead_letters": queue_state(amqp_uri, bus.DEAD_LETTER_QUEUE.name)[0],
        "longest_ack_wait_s": round(max(ack_waits), 1) if ack_waits else None,
        "case_ids": len(case_ids),
    }


def quick_progress(dbs, tag):
    return (dbs["intake"]["cases"].count_documents({"external_ref.source": tag}),
            dbs["routing"]["cases"].count_documents({}),
            dbs["notify"]["deliveries"].count_documents({"kind": "acknowledgement", "status": "sent"}),
            dbs["reporting"]["case_facts"].count_documents({}))


def waiting(amqp_uri):
    """{queue: messages} of the services' queues that are not empty."""
    queues = [q for name in SERVICES for q in service_queues(name)]
    return {q: n for q in queues if (n := queue_state(amqp_uri, q)[0])}


SERVICES = local.SERVICES


def settle(dbs, amqp_uri, tag, publisher, expect_escalations, timeout, poll_s=5):
    """Wait until every confirmed message went all the way, queues are empty and, if
    escalations are expected, every case escalated; give up after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # polled gently: these counts scan, and the MongoDB stand-in is the run's bottleneck
        intake, routed, acked, reported = quick_progress(dbs, tag)
        escalated = (dbs["routing"]["cases"].count_documents({"timeline.action": "escalated"})
                     if expect_escalations and min(intake, routed) >= len(publisher.confirmed) else None)
        n = len(publisher.confirmed)
        print(f"  settling: cases {intake}, routed {routed}, acknowledged {acked}, reported {reported}"
              + (f", escalated {escalated}" if escalated is not None else "") + f" of {n}", flush=True)
        if min(intake, routed, acked, reported) >= n and (not expect_escalations or (escalated or 0) >= n):
            left = waiting(amqp_uri)
            if not left:
                return True
            print(f"  still queued: {left}", flush=True)
        time.sleep(poll_s)
    return False


def run_faults(amqp_uri, mongo_uri, smtp_port, maildir, prefix, work, *, n, rate, kills, broker_restarts,
               broker_down_s=3.0, sla_first_response=60, timeout=900, quiet_s=8, kill_together=False):
    """The whole fault run against given infrastructure; returns the figures."""
    tag = f"faults{uuid.uuid4().hex[:6]}"
    env = {"AMQP_URI": amqp_uri, "MONGO_URI": mongo_uri, "MONGO_DB_PREFIX": prefix,
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "LOG_LEVEL": "WARNING",
           "OUTBOX_RELAY_INTERVAL_SECONDS": "2", "SLA_SCAN_INTERVAL_SECONDS": "1",
           "SLA_FIRST_RESPONSE_SECONDS": str(sla_first_response),
           "NOTIFY_RETRY_INTERVAL_SECONDS": "5",
           "NOTIFY_QUIET_HOURS": "off"}  # runs at any hour: no acknowledgement waits for the morning
    client = connect(mongo_uri)
    dbs = {name: client[f"{prefix}_{name}"] for name in SERVICES}
    supervisor = Supervisor(env, work)
    try:
        print("starting the five services under the supervisor ...", flush=True)
        supervisor.start()
        deadline = time.monotonic() + 60
        while not consuming(amqp_uri, [q for s in SERVICES for q in service_queues(s)]):
            if time.monotonic() > deadline:
                raise TimeoutError("services not consuming after 60 s")
            time.sleep(0.2)
        publisher = Publisher(amqp_uri, tag, n, rate)
        faults = Faults(supervisor, amqp_uri, kills, broker_restarts, broker_down_s, kill_together)
        print(f"publishing {n} at {rate}/s; {len(faults.plan)} faults while they flow", flush=True)
        started = time.time()
        publishing = threading.Thread(target=publisher.run, daemon=True)
        publishing.start()
        faults.run(window_s=n / rate)
        publishing.join()
        print(f"published and confirmed {len(publisher.confirmed)} in {time.time() - started:.0f} s"
              f" ({publisher.failures} publish attempts failed and were retried)", flush=True)
        settled = settle(dbs, amqp_uri, tag, publisher, sla_first_response is not None, timeout,
                         poll_s=2 if n <= 1000 else 5)
        time.sleep(quiet_s)  # late repeats (a takeover after a lease ran out) show up too
        figures = collect(dbs, maildir, amqp_uri, publisher, tag)
        figures.update(n=n, rate=rate, kills_per_service=kills, broker_restarts=broker_restarts,
                       settled=settled, faults=faults.log, restarts=dict(supervisor.restarts),
                       max_recovery_s=max((f["recovery_s"] or float("inf") for f in faults.log), default=None),
                       elapsed_s=round(time.time() - started, 1))
        return figures
    finally:
        supervisor.stop()
        client.close()


def print_figures(f):
    lost = f["lost"]
    print()
    print(f"N {f['n']} at {f['rate']}/s, {f['kills_per_service']} SIGKILLs per service, "
          f"{f['broker_restarts']} broker restarts, {f['elapsed_s']:.0f} s"
          + ("" if f["settled"] else "  (NOT SETTLED before the timeout)"))
    print(f"confirmed            {f['confirmed']}  (published {f['published']}, "
          f"{f['publish_failures_retried']} failed attempts retried)")
    print(f"cases                {f['cases']}   lost {lost['cases']}   (most cases for one reference: "
          f"{f['cases_per_ref_max']})")
    print(f"routed               {f['routed']}   lost {lost['routed']}")
    print(f"acknowledged (sink)  {f['acknowledged']}   lost {lost['acknowledged']}")
    print(f"counted in reporting {f['reported']}   lost {lost['reported']}")
    print(f"notifications        {f['notifications']} e-mails for {f['notifications_logical']} logical "
          f"notifications; {f['repeated_notifications']} sent more than once "
          f"({f['repeats_same_message_id']} with one Message-ID, {f['repeats_flagged']} flagged possible_repeat;"
          f" {f['deliveries_flagged_possible_repeat']} deliveries flagged in all)")
    print(f"escalations          {f['escalations']}; twice for one case and rung: {f['escalated_twice_same_rung']}")
    print(f"dead letters         {f['dead_letters']}")
    recoveries = ", ".join(f"{x['fault'] if x['fault'] == 'broker' else x['target']} "
                           f"{'-' if x['recovery_s'] is None else x['recovery_s']}" for x in f["faults"])
    print(f"recovery (s)         {recoveries}")
    print(f"                     longest {f['max_recovery_s']} s; restarts by the supervisor {f['restarts']}")
    print(f"longest ack wait     {f['longest_ack_wait_s']} s (first publish attempt -> e-mail in the sink)")


def failed(f):
    """Why the run fails its targets, or [] if it meets them."""
    reasons = [f"lost {count} at {stage}" for stage, count in f["lost"].items() if count]
    if f["repeated_notifications"] > f["repeats_same_message_id"]:
        reasons.append("a repeated notification with a new Message-ID")
    if f["repeated_notifications"] > f["repeats_flagged"]:
        reasons.append("a repeated notification not flagged possible_repeat")
    if f["escalated_twice_same_rung"]:
        reasons.append("an escalation twice for one rung")
    if f["cases_per_ref_max"] > 1:
        reasons.append("two cases for one external reference")
    if not f["settled"]:
        reasons.append("did not settle")
    return reasons


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per service")
    parser.add_argument("--broker-restarts", type=int, default=3)
    parser.add_argument("--broker-down", type=float, default=3.0, help="seconds between stop_app and start_app")
    parser.add_argument("--sla-first-response", type=float, default=60,
                        help="seconds; every case escalates once when it runs out")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the system to settle")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="closeloop-faults-"))
    print(f"logs: {work}", flush=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with contextlib.ExitStack() as stack:
            amqp_uri = stack.enter_context(rabbit_vhost())
            mongo_uri, _ = stack.enter_context(mongo_server(work))
            smtp_port = stack.enter_context(smtp_server(work))
            prefix = f"faults{uuid.uuid4().hex[:8]}"
            stack.enter_context(bench_databases(mongo_uri, prefix))
            figures = run_faults(amqp_uri, mongo_uri, smtp_port, work / "Maildir", prefix, work,
                                 n=args.n, rate=args.rate, kills=args.kills,
                                 broker_restarts=args.broker_restarts, broker_down_s=args.broker_down,
                                 sla_first_response=args.sla_first_response, timeout=args.timeout)
    except KeyboardInterrupt:
        print("interrupted; cleaned up")
        return 130
    print_figures(figures)
    figures_file.save(figures, "faults")
    reasons = failed(figures)
    print("RESULT: " + ("all targets met" if not reasons else "; ".join(reasons)))
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
