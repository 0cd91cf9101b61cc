"""Breach detection with three routing replicas: how late the escalation of a breached
deadline leaves routing, whether any breach escalates twice, and what the replicas cost
while idle with 100,000 open cases.

    .venv/bin/python -m bench.deadlines [--cases 100000] [--breaches 1000] [--spread 90]
    make deadline-bench                  # DEADLINE_ARGS="--cases 10000 --breaches 200" for a quick run

What it does, isolated as bench/throughput.py is (own vhost, MongoDB stand-in unless
MONGO_URI is set, own database prefix):
1. builds open cases with routing's own code, whatever shape they take: one routing
   process routes one case_submitted per store x channel x complaint (none critical:
   those escalate at once) and stops; every bench case is one of these templates moved
   in time (each datetime in it shifted alike) so that its next deadline check, the
   first escalation of a new case, falls where the bench wants it. The documents go
   into routing's `cases` collection with insert_many, as already routed (their events
   long published), and routing's indexes are built after the bulk load;
2. seeds --cases minus --breaches cases whose first deadline is days away, starts three
   routing processes (deploy/serve.py, as compose runs them) and listens to
   case_escalated on the bus;
3. seeds the --breaches cases that fall due over --spread seconds, starting after the
   idle measurement: each routing process's CPU (from /proc/<pid>/stat) over --idle
   seconds with all cases open and nothing due;
4. waits for the escalations, then a few seconds more for any duplicate, and prints
   breaches measured, lag p50/p99/max, duplicates (same case, clock and rung more
   than once; must be 0), what noticed each breach (the precise timer or the safety-net
   scan, from each replica's /metrics), the idle CPU, the breach rate (--breaches over
   --spread: 1,000 over 90 s is ~11/s, every one an escalation to write and publish) and
   the CPU the replicas and the stand-in used while breaching (the stand-in, one Python
   process, is what runs out first: ~60% of a core at ~11 escalations/s). Lag is measured from the
   deadline (case_escalated.due_at) to the moment the bench RECEIVED the event: the
   publication plus the broker's hop, an upper bound of "deadline -> published".
Targets: p99 <= 1 s, 0 duplicates. Figures also go to bench/results/deadlines-<time>.json.
"""
from bench.throughput import (  # noqa: I001  (monkey-patches eventlet first)
    CHANNELS, COMPLAINTS as ALL_COMPLAINTS, STORES, cpu_seconds, percentile, rabbit_vhost, wait_for_consumers)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import bson  # noqa: E402
from bson.codec_options import CodecOptions  # noqa: E402
from kombu import Connection, Queue  # noqa: E402
from nameko.standalone.events import event_dispatcher, get_event_exchange  # noqa: E402

from bench import figures as figures_file  # noqa: E402
from closeloop_shared import events as ev  # noqa: E402
from closeloop_shared.mongo import connect  # noqa: E402
from closeloop_shared.standins import free_port, standin_mongo_uri, start_mongo_standin  # noqa: E402
from deploy import local  # noqa: E402
from services.routing import duplicates  # noqa: E402
from services.routing.repository import CaseRepository  # noqa: E402

REPLICAS = 3
COMPLAINTS = ALL_COMPLAINTS[:4]  # no 消协 threat: none is critical (critical ones escalate at routing)
BATCH = 2000
ROUTING_INBOX = f"evt-{ev.INTAKE}-{ev.CASE_SUBMITTED}--{ev.ROUTING}.on_case_submitted"
SETTLE_SECONDS = 5  # after the last escalation, for any duplicate to arrive
AWARE = CodecOptions(tz_aware=True)  # datetimes as routing reads them


def submissions(now):
    """One case_submitted per store, channel and complaint, as intake publishes them, each
    from a customer of its own: with one customer for all, routing rightly linked every
    template to the other ~15 of its store as duplicates, and each bench case carried
    those links (11-28 KB instead of ~3 KB: 100,000 of them overflowed the stand-in's
    cache, and every write of a case cost several times what a real one does)."""
    return [ev.dump(ev.CASE_SUBMITTED, {
        "case_id": uuid.uuid4().hex, "case_number": f"CL-TEMPLATE-{i:04d}", "store_id": store,
        "store_name": store, "channel": channel,
        "customer": {"name": "王女士", "phone": f"+86138{i:08d}", "email": "c@example.com"},
        "content": content, "occurred_at": now, "submitted_at": now, "locale": "zh-CN"})
        for i, (store, channel, content) in enumerate(
            (s, c, t) for s in STORES for c in CHANNELS for t in COMPLAINTS)]


def templates(env, work, cases):
    """Open cases exactly as routing makes them: one routing process routes the
    submissions (on a vhost of its own, so that nothing it leaves queued, a retry say,
    reaches the replicas measured later), then stops; the routed cases that did not
    escalate at once become the templates (and leave the collection)."""
    processes = []
    with rabbit_vhost() as amqp_uri:
        try:
            start_replicas(dict(env, AMQP_URI=amqp_uri), work, processes, count=1)
            wait_for_consumers(amqp_uri, [ROUTING_INBOX])
            sent = submissions(datetime.now(timezone.utc))
            dispatch = event_dispatcher({"AMQP_URI": amqp_uri})
            for payload in sent:
                dispatch(ev.INTAKE, ev.CASE_SUBMITTED, payload)
            deadline = time.monotonic() + 60
            while cases.count_documents({}) < len(sent):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"routing routed {cases.count_documents({})} of {len(sent)} templates")
                time.sleep(0.5)
        finally:
            local.stop_all(processes)
    routed = list(cases.find({}))
    cases.delete_many({})
    return [Template(case) for case in routed
            if case.get("next_check_at") and not any(e["action"] == "escalated" for e in case["timeline"])]


def datetime_paths(value, path=()):
    """The paths (keys and indexes) of every datetime in a document."""
    if isinstance(value, datetime):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from datetime_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from datetime_paths(item, (*path, index))


class Template:
    """A routed case, copied fast (BSON, decoded in C) and moved in time: every
    datetime in it shifted alike, as if it had been submitted that much later."""

    def __init__(self, case):
        self.raw = bson.encode(case)
        self.next_check_at = bson.decode(self.raw, AWARE)["next_check_at"]  # as stored: to the ms
        self.paths = list(datetime_paths(case))

    def case(self, number, due_at):
        """A new open case whose next deadline check is `due_at`, its events published."""
        case, by = bson.decode(self.raw, AWARE), due_at - self.next_check_at
        for *parents, last in self.paths:
            holder = case
            for key in parents:
                holder = holder[key]
            holder[last] += by
        case.update(_id=uuid.uuid4().hex, case_number=f"CL-BENCH-{number:07d}", outbox=[], outbox_pending=False)
        case["customer"]["phone"] = f"+86139{number:08d}"
        case["customer_keys"] = duplicates.customer_keys(case["customer"])  # one customer per case
        return case


def seed(collection, made, due_times, first_number, what):
    """insert_many the cases, one per due time, showing progress; their ids."""
    started, total, ids = time.monotonic(), len(due_times), set()
    for offset in range(0, total, BATCH):
        chunk = [made[(first_number + offset + i) % len(made)].case(first_number + offset + i, due)
                 for i, due in enumerate(due_times[offset:offset + BATCH])]
        collection.insert_many(chunk, ordered=False)
        ids.update(case["_id"] for case in chunk)
        rate = len(ids) / max(1e-9, time.monotonic() - started)
        print(f"\r  seeding {what}: {len(ids):,}/{total:,} ({rate:,.0f} cases/s)", end="", flush=True)
    print()
    return ids


class Listener:
    """case_escalated as routing publishes it, on a queue of our own; each with the
    time we received it."""

    def __init__(self, amqp_uri):
        self.amqp_uri, self.heard, self.ready = amqp_uri, [], threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise TimeoutError("could not bind the listener's queue")

    def _listen(self):
        queue = Queue(f"bench-deadlines-{uuid.uuid4().hex[:8]}", exchange=get_event_exchange(ev.ROUTING, {}),
                      routing_key=ev.CASE_ESCALATED, exclusive=True, auto_delete=True)
        with Connection(self.amqp_uri) as conn, conn.Consumer(queue, callbacks=[self._on_message],
                                                              accept=["json"]):
            self.ready.set()
            while not self.stopping:
                with contextlib.suppress(socket.timeout, TimeoutError):
                    conn.drain_events(timeout=0.5)

    def _on_message(self, body, message):
        self.heard.append((time.time(), ev.load(ev.CASE_ESCALATED, body)))
        message.ack()

    def stop(self):
        self.stopping = True
        self.thread.join(5)


def start_replicas(env, work, processes, count=REPLICAS):
    command, _ = local.compose_services()["routing"]
    started = []
    for n in range(count):
        port = free_port()
        process = local.start_service("routing", command, port, env, open(work / f"routing-{n}.log", "ab"))
        processes.append(process)
        started.append((process, port))
    for process, port in started:
        local.wait_healthy("routing", process, port, timeout=120)
    return started


def detections(port):
    """{detector: count} of the breach-detection lag histogram of one replica ({} if it
    does not answer in time)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'^closeloop_breach_detection_lag_seconds_count\{detected_by="(\w+)"\} (\S+)$', text, re.M)}


def wait_for_escalations(listener, expected, until):
    """Until every expected case escalated (then SETTLE_SECONDS more) or `until`."""
    while time.time() < until:
        got = {payload["case_id"] for _, payload in listener.heard} & expected
        print(f"\r  escalations heard: {len(got):,}/{len(expected):,}", end="", flush=True)
        if len(got) == len(expected):
            break
        time.sleep(1)
    print()
    time.sleep(SETTLE_SECONDS)


@contextlib.contextmanager
def mongo_server(work):
    """MONGO_URI if set, else a stand-in keeping its data in `work` (in its ':memory:'
    mode all data lives in a 1 GB cache, which 100,000 cases and their indexes overflow)."""
    if os.environ.get("MONGO_URI"):
        print("MongoDB: using MONGO_URI")
        yield os.environ["MONGO_URI"], None
        return
    port = free_port()
    process = start_mongo_standin(port, work / "mongo-data", open(work / "mongo.log", "ab"))
    print(f"MongoDB: stand-in on 127.0.0.1:{port}, data in {work / 'mongo-data'}")
    try:
        yield standin_mongo_uri(port), process
    finally:
        local.stop_all([process])
        shutil.rmtree(work / "mongo-data", ignore_errors=True)  # ~2 GB at 100,000 cases; the logs stay


def drop_quietly(client, name):
    with contextlib.suppress(Exception):
        client.drop_database(name)


def run(args, work):
    with contextlib.ExitStack() as stack:
        amqp_uri = stack.enter_context(rabbit_vhost())
        mongo_uri, mongo_process = stack.enter_context(mongo_server(work))
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        client = connect(mongo_uri)
        stack.callback(client.close)
        stack.callback(drop_quietly, client, f"{prefix}_routing")  # matters only for a real MONGO_URI
        database = client[f"{prefix}_routing"]
        cases = database["cases"]

        env = {"AMQP_URI": amqp_uri, "MONGO_URI": mongo_uri, "MONGO_DB_PREFIX": prefix, "LOG_LEVEL": "WARNING"}
        print("routing the template cases ...", flush=True)
        made = templates(env, work, cases)
        case_bytes = sum(len(t.raw) for t in made) / max(1, len(made))
        print(f"{len(made)} case templates, as routing made them ({case_bytes / 1024:.1f} KB each on average)")
        cases.drop_indexes()  # bulk-loaded first, indexed after
        now = datetime.now(timezone.utc)
        far = args.cases - args.breaches
        rng = random.Random(7)
        seed(cases, made, [now + timedelta(days=rng.uniform(2, 30)) for _ in range(far)], 0,
             "open cases due in 2-30 days")
        started = time.monotonic()  # indexing once after the bulk load is ~6x faster than during it
        CaseRepository.ensure_indexes(database)
        print(f"  routing's indexes built in {time.monotonic() - started:.1f} s", flush=True)

        processes = []
        stack.callback(local.stop_all, processes)
        print(f"starting {REPLICAS} routing replicas ...", flush=True)
        replicas = start_replicas(env, work, processes)
        listener = Listener(amqp_uri)
        stack.callback(listener.stop)

        # the due cases' first deadline leaves room to insert them (at 100/s, a loaded
        # stand-in's rate with every index) and to measure idle CPU before it
        first_due = time.time() + args.breaches / 100 + args.idle + args.lead
        due_times = [datetime.fromtimestamp(first_due + args.spread * i / max(1, args.breaches - 1), timezone.utc)
                     for i in range(args.breaches)]
        due_ids = seed(cases, made, due_times, far, f"cases falling due over {args.spread:.0f} s")
        open_cases = cases.estimated_document_count()  # counting 100,000 documents takes the stand-in minutes

        idle = max(0.0, min(args.idle, first_due - args.lead / 2 - time.time()))
        print(f"idle: measuring CPU for {idle:.0f} s with {open_cases:,} open cases, nothing due ...", flush=True)
        before = [cpu_seconds(process.pid) for process, _ in replicas]
        time.sleep(idle)
        after = [cpu_seconds(process.pid) for process, _ in replicas]
        idle_cpu = [(b2 - b1) / idle * 100 if idle else None for b1, b2 in zip(before, after)]
        heard_while_idle = len(listener.heard)

        print(f"breaches: {args.breaches:,} deadlines from now + {first_due - time.time():.0f} s "
              f"over {args.spread:.0f} s", flush=True)
        # what the breaches cost: CPU of the replicas and of the stand-in, first deadline to last escalation
        watched = [process.pid for process, _ in replicas] + ([mongo_process.pid] if mongo_process else [])
        time.sleep(max(0.0, first_due - time.time()))
        busy_from, cpu_from = time.monotonic(), [cpu_seconds(pid) for pid in watched]
        wait_for_escalations(listener, due_ids, first_due + args.spread + args.timeout)
        busy_s = time.monotonic() - busy_from - SETTLE_SECONDS
        busy_cpu = [(b - a) / busy_s * 100 if a is not None and b is not None else None
                    for a, b in zip(cpu_from, [cpu_seconds(pid) for pid in watched])]
        figures = measure(list(listener.heard), due_ids)
        figures.update({
            "open_cases": open_cases, "breaches_armed": args.breaches, "heard_while_idle": heard_while_idle,
            "detected_by": [detections(port) for _, port in replicas], "idle_cpu_percent": idle_cpu,
            "idle_seconds": idle, "spread_s": args.spread, "nproc": os.cpu_count(),
            "breach_rate_per_s": args.breaches / args.spread if args.spread else None, "case_kb": case_bytes / 1024,
            "busy_seconds": busy_s, "busy_cpu_percent_replicas": busy_cpu[:REPLICAS],
            "busy_cpu_percent_mongo": busy_cpu[REPLICAS] if mongo_process else None,
            "load_avg_at_start": args.load_avg, "mongo": "MONGO_URI" if os.environ.get("MONGO_URI") else "stand-in",
        })
        print_figures(figures)
        figures_file.save(figures, "deadlines")
        lag = figures["lag_s"]
        ok = lag and lag["p99"] <= 1.0 and figures["duplicates"] == 0 and figures["missing"] == 0
        return 0 if ok else 1


def measure(heard, due_ids):
    """Lag, duplicates and the rest from what the listener heard: [(received, payload)].

    An escalation is one write: (case, reason, rung, escalated_at). The same write heard
    twice is a re-sent copy (the outbox relay publishes again what a slow writer had not
    yet cleared: at-least-once, consumers deduplicate); the same case, clock and rung
    escalated by two writes is a duplicate escalation, the failure this bench looks for."""
    first_heard = {}
    for received, p in heard:
        first_heard.setdefault((p["case_id"], p["reason"], p["rung"], p["escalated_at"]), (received, p))
    writes = Counter(key[:3] for key in first_heard)
    lags = sorted(received - p["due_at"].timestamp()
                  for received, p in first_heard.values() if p["case_id"] in due_ids)
    return {
        "breaches_measured": len(lags),
        "missing": len(due_ids - {p["case_id"] for _, p in heard}),
        "unexpected": sum(1 for _, p in first_heard.values() if p["case_id"] not in due_ids),
        "duplicates": sum(n - 1 for n in writes.values() if n > 1),
        "resent_copies": len(heard) - len(first_heard),
        "reasons": dict(Counter(p["reason"] for _, p in first_heard.values())),
        "lag_s": ({"p50": percentile(lags, 50), "p99": percentile(lags, 99), "max": lags[-1]} if lags else None),
    }


def print_figures(f):
    print()
    print(f"open cases           {f['open_cases']:,} of {f['case_kb']:.1f} KB  (nproc {f['nproc']}, Mongo {f['mongo']}, "
          f"load avg at start {f['load_avg_at_start']:.2f})")
    print(f"breaches measured    {f['breaches_measured']:,} of {f['breaches_armed']:,} armed over "
          f"{f['spread_s']:.0f} s = {f['breach_rate_per_s'] or 0:.1f}/s  (missing {f['missing']}, unexpected escalations {f['unexpected']}, "
          f"during the idle window {f['heard_while_idle']}; reasons {f['reasons']})")
    if f["lag_s"]:
        lag = f["lag_s"]
        print(f"lag                  p50 {lag['p50']:.3f} s  p99 {lag['p99']:.3f} s  max {lag['max']:.3f} s"
              "  (deadline -> case_escalated received by the bench)")
    print(f"duplicates           {f['duplicates']}  (same case, clock and rung escalated by two writes; "
          f"re-sent copies of one write: {f['resent_copies']})")
    detected = "  ".join(f"#{n}: timer {d.get('timer', 0)}, scan {d.get('scan', 0)}"
                         for n, d in enumerate(f["detected_by"]))
    print(f"detected by          {detected}")
    cpu = "  ".join(f"#{n} {pct:.1f}%" for n, pct in enumerate(f["idle_cpu_percent"]) if pct is not None)
    print(f"idle CPU             {cpu}  (of one core, over {f['idle_seconds']:.0f} s, nothing due)")
    busy = "  ".join(f"#{n} {pct:.0f}%" for n, pct in enumerate(f["busy_cpu_percent_replicas"]) if pct is not None)
    mongo = f"  stand-in {f['busy_cpu_percent_mongo']:.0f}%" if f["busy_cpu_percent_mongo"] is not None else ""
    print(f"CPU while breaching  {busy}{mongo}  (of one core, first deadline to last escalation, "
          f"{f['busy_seconds']:.0f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="open cases in all (default 100000)")
    parser.add_argument("--breaches", type=int, default=1000, help="of them, falling due in the run (default 1000)")
    parser.add_argument("--spread", type=float, default=90, help="seconds the breaches spread over (default 90)")
    parser.add_argument("--idle", type=float, default=20, help="seconds of idle CPU measurement (default 20)")
    parser.add_argument("--lead", type=float, default=10,
                        help="seconds between the idle window's end and the first deadline (default 10)")
    parser.add_argument("--timeout", type=float, default=60,
                        help="seconds to wait after the last deadline (default 60)")
    args = parser.parse_args(argv)
    if not 0 < args.breaches <= args.cases:
        parser.error("need 0 < --breaches <= --cases")
    args.load_avg = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="closeloop-deadlines-"))
    print(f"logs: {work}  (1-min load average {args.load_avg:.2f} on {os.cpu_count()} CPUs)")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args, work)
    except KeyboardInterrupt:
        print("interrupted; cleaned up")
        return 130


if __name__ == "__main__":
    sys.exit(main())
