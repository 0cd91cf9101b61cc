"""End-to-end throughput of Closeloop, next to the raw nameko event rate measured in the
same run on the same broker.

    .venv/bin/python -m bench.throughput [--n 500] [--concurrency 10] [--timeout 300] [--soak 100000]
    make bench

What it does, all isolated from anything else running on the machine:
1. creates a RabbitMQ vhost (management API), a MongoDB stand-in (unless MONGO_URI is
   set), an SMTP sink and a fresh MONGO_DB_PREFIX;
2. reference: a one-handler nameko service in this process; N events dispatched with
   nameko's standalone dispatcher (publisher confirms on); handled events/s from the
   first dispatch to the last handled event;
3. the system: the five services started as deploy/local.py starts them; N zh-CN feedback
   messages published to closeloop.inbound / feedback.submitted, as another system would.
   A case is done when routing has routed it (routing `cases`.routed_at) and notify has
   sent its acknowledgement (notify `deliveries`, kind acknowledgement, status sent);
4. prints cases/s end to end, latency percentiles (publish -> max(routed_at, sent_at)),
   the reference rate and the ratio; writes them to bench/results/throughput-<time>.json.

--concurrency is nameko's max_workers (MAX_WORKERS) for every service and for the
reference service. Everything is torn down at the end, also on failure or Ctrl-C.
"""
import os

os.environ.setdefault("EVENTLET_TESTS", "1")  # silences eventlet's deprecation banner
import eventlet  # noqa: E402

eventlet.monkey_patch()  # the in-process reference service needs it before other imports

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote  # noqa: E402

import requests  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from kombu import Connection  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.events import event_handler  # noqa: E402
from nameko.standalone.events import event_dispatcher  # noqa: E402

from bench import figures as figures_file  # noqa: E402
from closeloop_shared import bus  # noqa: E402
from closeloop_shared import events as ev  # noqa: E402
from closeloop_shared.mongo import connect  # noqa: E402
from closeloop_shared.standins import (  # noqa: E402
    free_port, standin_mongo_uri, start_mongo_standin, start_smtp_sink)
from deploy import local  # noqa: E402
from services.reporting.repository import WAITING  # noqa: E402

RABBIT_API = os.environ.get("BENCH_RABBIT_API", "http://127.0.0.1:15672/api")
RABBIT_AUTH = ("guest", "guest")
AMQP_BASE = os.environ.get("BENCH_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672")
CHINA = timezone(timedelta(hours=8))

# The queues that must have consumers before the first message is published: a message
# sent before its queue exists is dropped (events are published with mandatory=False).
READY_QUEUES = (
    "intake.feedback_submitted",
    "evt-intake-case_submitted--routing.on_case_submitted",
    "evt-intake-case_submitted--notify.on_case_submitted",
    "evt-routing-case_routed--notify.on_case_routed",
)
STORES = ("SH-XH-001", "HZ-XH-002", "GZ-TH-003")
CHANNELS = ("in_store", "hotline", "wechat", "web", "survey")
COMPLAINTS = (
    "做完面部护理后脸上红肿刺痛，到现在还没消，希望门店给个说法。",
    "预约了下午三点，到店后等了四十分钟才有人接待，体验很差。",
    "美容师全程推销办卡，态度不耐烦，我说不需要还给脸色看。",
    "包间毛巾有异味，床单上还有头发，卫生太差了。",
    "疗程做了五次一点效果都没有，要求退款，否则去消协投诉。",
    "仪器做到一半坏了，技师说换一台，结果又等了半小时。",
)
NAMES = ("王女士", "李先生", "张女士", "陈女士", "刘先生", "杨女士")


# --- isolation -------------------------------------------------------------------------

@contextlib.contextmanager
def rabbit_vhost():
    """A fresh vhost for this run; yields its AMQP URI."""
    name = f"closeloop-bench-{uuid.uuid4().hex[:8]}"
    url = f"{RABBIT_API}/vhosts/{quote(name, safe='')}"
    requests.put(url, auth=RABBIT_AUTH, timeout=10).raise_for_status()
    try:
        requests.put(f"{RABBIT_API}/permissions/{quote(name, safe='')}/guest", auth=RABBIT_AUTH,
                     json={"configure": ".*", "write": ".*", "read": ".*"},
                     timeout=10).raise_for_status()
        print(f"RabbitMQ vhost: {name}")
        yield f"{AMQP_BASE}/{quote(name, safe='')}"
    finally:
        requests.delete(url, auth=RABBIT_AUTH, timeout=30)


@contextlib.contextmanager
def mongo_server(work):
    """MONGO_URI if set, else a fresh in-memory stand-in; yields (URI, process or None)."""
    if os.environ.get("MONGO_URI"):
        print("MongoDB: using MONGO_URI")
        yield os.environ["MONGO_URI"], None
        return
    port = free_port()
    process = start_mongo_standin(port, ":memory:", open(work / "mongo.log", "ab"))
    print(f"MongoDB: stand-in on 127.0.0.1:{port}")
    try:
        yield standin_mongo_uri(port), process
    finally:
        local.stop_all([process])


@contextlib.contextmanager
def smtp_server(work):
    port = free_port()
    process = start_smtp_sink(port, work / "Maildir", open(work / "smtp.log", "ab"))
    try:
        yield port
    finally:
        local.stop_all([process])


@contextlib.contextmanager
def bench_databases(mongo_uri, prefix):
    """Drops this run's databases at the end (matters only for a real MONGO_URI)."""
    client = connect(mongo_uri)
    try:
        yield {name: client[f"{prefix}_{name}"] for name in local.SERVICES}
    finally:
        with contextlib.suppress(Exception):
            for name in local.SERVICES:
                client.drop_database(f"{prefix}_{name}")
        client.close()


# --- reference: raw nameko event rate ---------------------------------------------------

class Counter:
    handled = 0
    last = None


class ReferenceService:
    name = "bench_reference"

    @event_handler("bench_source", "ping")
    def on_ping(self, payload):
        Counter.handled += 1
        Counter.last = time.monotonic()


def measure_reference(amqp_uri, n, concurrency, timeout=120):
    """Events/s through nameko alone: dispatch n events, count them in one handler."""
    config = {"AMQP_URI": amqp_uri, "max_workers": concurrency}
    container = ServiceContainer(ReferenceService, config)
    container.start()  # returns once the handler's queue is declared and consumed
    try:
        dispatch = event_dispatcher(config)
        Counter.handled, Counter.last = 0, None
        started = time.monotonic()
        for i in range(n):
            dispatch("bench_source", "ping", {"i": i})
        deadline = time.monotonic() + timeout
        while Counter.handled < n and time.monotonic() < deadline:
            time.sleep(0.01)
        if Counter.handled < n:
            raise RuntimeError(f"reference: only {Counter.handled} of {n} events handled")
        return n / (Counter.last - started)
    finally:
        container.stop()


# --- the system --------------------------------------------------------------------------

def start_system(env, work, processes):
    """The five services as deploy/local.py starts them; appends to `processes` as it
    goes so that the caller can stop whatever was started, even on failure."""
    started = []
    for name, (command, _compose_port) in local.compose_services().items():
        port = free_port()
        process = local.start_service(name, command, port, env, open(work / f"{name}.log", "ab"))
        processes.append(process)
        started.append((name, process, port))
    for name, process, port in started:
        local.wait_healthy(name, process, port, timeout=90)
    return {name: process for name, process, _ in started}, {name: port for name, _, port in started}


def queue_state(amqp_uri, queue):
    """(messages, consumers) of a queue; (0, 0) when it is not declared (yet)."""
    try:
        with Connection(amqp_uri) as conn:
            state = conn.default_channel.queue_declare(queue, passive=True)
            return state.message_count, state.consumer_count
    except Exception:
        return 0, 0


def wait_for_consumers(amqp_uri, queues, timeout=60):
    deadline = time.monotonic() + timeout
    for queue in queues:
        while queue_state(amqp_uri, queue)[1] < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no consumer on queue {queue} after {timeout}s")
            time.sleep(0.2)


def feedback(i):
    """One realistic zh-CN complaint, as a store system would send it."""
    return {
        "store_id": STORES[i % len(STORES)],
        "channel": CHANNELS[i % len(CHANNELS)],
        "customer": {"name": NAMES[i % len(NAMES)], "phone": f"139{i:08d}",
                     "email": f"customer{i}@example.com"},
        "content": COMPLAINTS[i % len(COMPLAINTS)],
        "occurred_at": (datetime.now(CHINA) - timedelta(hours=2)).isoformat(timespec="seconds"),
        "external_ref": {"source": "bench", "id": str(i)},
        "locale": "zh-CN",
    }


def publish_feedback(amqp_uri, n, first=0, rate=None):
    """Publishes submissions first .. first+n-1 (persistent, confirmed), at `rate` a second
    when given (else as fast as confirms allow); returns {i: publish wall time}."""
    published = {}
    started = time.monotonic()
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()  # attributed to its AMQP user, as intake requires
        for i in range(first, first + n):
            if rate:
                time.sleep(max(0.0, started + (i - first) / rate - time.monotonic()))
            body = json.dumps(feedback(i), ensure_ascii=False).encode()
            published[i] = time.time()
            producer.publish(body, exchange=bus.INBOUND_EXCHANGE,
                             routing_key=bus.FEEDBACK_SUBMITTED_KEY, declare=[bus.INBOUND_EXCHANGE],
                             content_type="application/json", content_encoding="utf-8",
                             delivery_mode=2, user_id=conn.userid)
    return published


def progress(dbs):
    routed = dbs["routing"]["cases"].count_documents({"routed_at": {"$exists": True}})
    acked = dbs["notify"]["deliveries"].count_documents(
        {"kind": "acknowledgement", "status": "sent"})
    counted = dbs["reporting"]["reporting_events"].count_documents({"type": ev.CASE_ROUTED})
    return routed, acked, counted


def folded(dbs):
    """Nothing waits in reporting to be folded into its buckets."""
    return dbs["reporting"]["reporting_events"].find_one(WAITING, {"_id": 1}) is None


def wait_until_done(dbs, amqp_uri, n, first_publish, timeout):
    """Polls twice a second; the moment n cases were seen routed, acknowledged and counted
    by reporting (its read model has their case_routed and, polled closely then, nothing
    waits to be folded into its buckets); None after `timeout` or as soon as anything was
    dead-lettered (it will never be done)."""
    last_print = 0.0
    while time.time() - first_publish <= timeout:
        polled = time.monotonic()
        routed, acked, counted = progress(dbs)
        if min(routed, acked, counted) >= n:
            while not folded(dbs):
                if time.time() - first_publish > timeout:
                    return None
                time.sleep(0.02)
            done_at = time.time()
            print(f"published {n}, routed, acknowledged and counted by reporting: all, "
                  f"{done_at - first_publish:.1f} s", flush=True)
            return done_at
        if polled - last_print >= 1:
            print(f"published {n}, routed {routed}, acknowledged {acked}, counted by reporting {counted}, "
                  f"{time.time() - first_publish:.1f} s", flush=True)
            last_print = polled
        if queue_state(amqp_uri, bus.DEAD_LETTER_QUEUE.name)[0]:
            return None
        time.sleep(max(0.0, 0.5 - (time.monotonic() - polled)))
    return None


def completion_times(dbs):
    """{external ref id: (case_id, routed_at, ack sent_at, counted_at)} with None for what
    is missing; counted_at is when reporting received the case's case_routed."""
    cases = {doc["external_ref"]["id"]: doc["_id"] for doc in dbs["intake"]["cases"].find(
        {"external_ref.source": "bench"}, {"external_ref": 1})}
    routed = {doc["_id"]: doc["routed_at"] for doc in dbs["routing"]["cases"].find(
        {"routed_at": {"$exists": True}}, {"routed_at": 1})}
    acked = {doc["case_id"]: doc["sent_at"] for doc in dbs["notify"]["deliveries"].find(
        {"kind": "acknowledgement", "status": "sent"}, {"case_id": 1, "sent_at": 1})}
    counted = {doc["payload"]["case_id"]: doc["received_at"] for doc in dbs["reporting"]["reporting_events"].find(
        {"type": ev.CASE_ROUTED}, {"payload.case_id": 1, "received_at": 1})}
    return {ref: (case_id, routed.get(case_id), acked.get(case_id), counted.get(case_id))
            for ref, case_id in cases.items()}


def report_missing(amqp_uri, published, times):
    missing = {"not accepted by intake": [], "not routed": [], "not acknowledged": [],
               "not counted by reporting": []}
    for i in published:
        case_id, routed_at, sent_at, counted_at = times.get(str(i), (None, None, None, None))
        if case_id is None:
            missing["not accepted by intake"].append(i)
            continue
        if routed_at is None:
            missing["not routed"].append(i)
        if sent_at is None:
            missing["not acknowledged"].append(i)
        if counted_at is None:
            missing["not counted by reporting"].append(i)
    for what, refs in missing.items():
        if refs:
            print(f"  {what}: {len(refs)} (bench ids {refs[:10]}{' ...' if len(refs) > 10 else ''})")
    print(f"  dead-lettered messages: {queue_state(amqp_uri, bus.DEAD_LETTER_QUEUE.name)[0]}")


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def cpu_seconds(pid):
    """User + system CPU time of a live process so far, or None."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def memory_mb(pid, field):
    """A memory figure of a live process in MB (`field` of /proc/<pid>/status: VmHWM the
    peak resident, VmRSS the resident now), or None."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return None


def queued_messages(amqp_uri):
    """Messages waiting or unacknowledged in every queue of this run's vhost (RabbitMQ's
    management statistics; they lag a few seconds)."""
    vhost = quote(amqp_uri.rsplit("/", 1)[1], safe="")
    queues = requests.get(f"{RABBIT_API}/queues/{vhost}", auth=RABBIT_AUTH, timeout=10).json()
    return sum(q.get("messages", 0) for q in queues if q["name"] != bus.DEAD_LETTER_QUEUE.name)


def soak(amqp_uri, dbs, services, first, count, rate, every, timeout):
    """Publishes `count` cases at `rate`/s in steps of `every`; after each step waits until
    every queue is empty and reporting has folded all, then samples each service's
    resident memory. Counting cases by query would scan ever larger collections on the
    stand-in: the queues say when the system has caught up. Returns [(cases, {service: MB})]."""
    samples, done = [], 0
    while done < count:
        step = min(every, count - done)
        publish_feedback(amqp_uri, step, first=first + done, rate=rate)
        done += step
        deadline = time.monotonic() + timeout
        while queued_messages(amqp_uri) or not folded(dbs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"soak: the system had not caught up {timeout:.0f} s after {done} cases")
            time.sleep(1)
        time.sleep(6)  # the broker's statistics lag: make sure nothing arrived meanwhile
        while queued_messages(amqp_uri) or not folded(dbs):
            time.sleep(1)
        samples.append((done, {name: memory_mb(process.pid, "VmRSS") for name, process in services.items()}))
        print(f"soak: {done:,} of {count:,} cases; RSS MB " + "  ".join(
            f"{name} {mb:.0f}" for name, mb in samples[-1][1].items() if mb is not None), flush=True)
    return samples


def soak_summary(samples):
    """{service: {first, last, max, growth_per_10k}}: RSS after the first step, after the
    last, the highest seen, and the least-squares slope per 10,000 cases."""
    summary = {}
    for name in samples[0][1]:
        points = [(cases, rss[name]) for cases, rss in samples if rss.get(name) is not None]
        xs, ys = [x for x, _ in points], [y for _, y in points]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread_x = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread_x if spread_x else 0.0
        summary[name] = {"first": ys[0], "last": ys[-1], "max": max(ys), "growth_per_10k": slope * 10_000}
    return summary


# --- where each case's cost goes ---------------------------------------------------------

# Not a case's work: readiness probes and connection handshakes.
NOT_CASE_WORK = {"ping", "hello", "isMaster", "ismaster", "endSessions", "saslStart", "saslContinue"}


def mongo_commands(port):
    """{"command collection": count} of one service's MongoDB round trips so far (its
    /metrics: closeloop_shared/mongo_metrics.py), the readiness pings left out."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    counts = {}
    for family in text_string_to_metric_families(text):
        if family.name != "closeloop_mongo_commands":
            continue
        for sample in family.samples:
            command = sample.labels["command"]
            if sample.name.endswith("_total") and command not in NOT_CASE_WORK:
                key = f"{command} {sample.labels['collection']}".strip()
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def published_by_exchange(amqp_uri):
    """{exchange: messages published into it so far} in this run's vhost (RabbitMQ's
    management statistics, which lag up to its 5 s collection interval)."""
    vhost = quote(amqp_uri.rsplit("/", 1)[1], safe="")
    exchanges = requests.get(f"{RABBIT_API}/exchanges/{vhost}", auth=RABBIT_AUTH, timeout=10).json()
    return {x["name"] or "(default)": x.get("message_stats", {}).get("publish_in", 0) for x in exchanges
            if x.get("message_stats", {}).get("publish_in")}


class Costs:
    """Round trips, CPU and messages of a phase: a reading before it, one after."""

    def __init__(self, amqp_uri, ports, watched):
        self.amqp_uri, self.ports, self.watched = amqp_uri, ports, watched
        self.before = self._read()

    def _read(self):
        return {"commands": {name: mongo_commands(port) for name, port in self.ports.items()},
                "cpu": {name: cpu_seconds(process.pid) for name, process in self.watched.items()},
                "published": published_by_exchange(self.amqp_uri)}

    def per_case(self, n, settle_s=6):
        """The phase's costs divided by its n cases (after `settle_s` for the broker's statistics)."""
        after_cpu = {name: cpu_seconds(process.pid) for name, process in self.watched.items()}
        time.sleep(settle_s)
        after = self._read()
        round_trips = {}
        for name, counts in after["commands"].items():
            before = self.before["commands"][name]
            by_command = {cmd: (count - before.get(cmd, 0)) / n for cmd, count in counts.items()}
            round_trips[name] = {"total": sum(by_command.values()),
                                 "by_command": {c: v for c, v in sorted(by_command.items(), key=lambda kv: -kv[1])
                                                if v >= 0.005}}
        cpu = {name: (after_cpu[name] - self.before["cpu"][name]) / n for name in self.watched
               if None not in (after_cpu[name], self.before["cpu"][name])}
        published = {x: (count - self.before["published"].get(x, 0)) / n
                     for x, count in after["published"].items() if count > self.before["published"].get(x, 0)}
        return {"round_trips": round_trips, "cpu_ms": {k: v * 1000 for k, v in cpu.items()},
                "messages": published}


def latencies_of(times, published):
    """Sorted seconds from publish until routed and acknowledged, per case."""
    finished = {int(ref): max(routed_at, sent_at).timestamp()
                for ref, (_, routed_at, sent_at, _) in times.items() if routed_at and sent_at}
    return sorted(finished[i] - published[i] for i in published if i in finished)


def spread(sorted_values):
    return {f"p{p}": percentile(sorted_values, p) for p in (50, 90, 99)} | {"max": sorted_values[-1]}


# --- the run -----------------------------------------------------------------------------

def run(args, work):
    with contextlib.ExitStack() as stack:
        amqp_uri = stack.enter_context(rabbit_vhost())
        mongo_uri, mongo_process = stack.enter_context(mongo_server(work))
        smtp_port = stack.enter_context(smtp_server(work))
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        dbs = stack.enter_context(bench_databases(mongo_uri, prefix))

        reference_n = args.reference_n or args.n
        print(f"reference: dispatching {reference_n} nameko events ...", flush=True)
        reference_rate = measure_reference(amqp_uri, reference_n, args.concurrency)
        print(f"reference: {reference_rate:,.0f} events/s handled", flush=True)

        env = {"AMQP_URI": amqp_uri, "MONGO_URI": mongo_uri, "MONGO_DB_PREFIX": prefix,
               "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "LOG_LEVEL": "WARNING",
               "MAX_WORKERS": str(args.concurrency),
               "NOTIFY_QUIET_HOURS": "off"}  # runs at any hour: no acknowledgement waits for the morning
        processes = []
        stack.callback(local.stop_all, processes)
        print("starting the five services ...", flush=True)
        services, ports = start_system(env, work, processes)
        wait_for_consumers(amqp_uri, READY_QUEUES)
        watched = dict(services, **({"mongo": mongo_process} if mongo_process else {}))

        # burst: n cases as fast as they can be published
        costs = Costs(amqp_uri, ports, watched)
        published = publish_feedback(amqp_uri, args.n)
        first_publish = min(published.values())
        print(f"published {args.n} in {time.time() - first_publish:.1f} s", flush=True)
        done_at = wait_until_done(dbs, amqp_uri, args.n, first_publish, args.timeout)
        times = completion_times(dbs)
        if done_at is None:
            print(f"TIMEOUT: not all {args.n} cases done after {args.timeout:.0f} s")
            report_missing(amqp_uri, published, times)
            return 1
        # the last case's own moments, or the moment its increments were seen folded
        last_done = max(max(r, a, c).timestamp() for _, r, a, c in times.values())
        elapsed = max(last_done, done_at) - first_publish
        per_case = costs.per_case(args.n)

        # sustained: cases published at a steady rate, latency measured per case
        sustained = None
        if args.sustained_s:
            count = int(args.sustained_rate * args.sustained_s)
            print(f"sustained: {count} cases at {args.sustained_rate:g}/s ...", flush=True)
            paced = publish_feedback(amqp_uri, count, first=args.n, rate=args.sustained_rate)
            achieved = count / (max(paced.values()) - min(paced.values()) or 1)
            if wait_until_done(dbs, amqp_uri, args.n + count, min(paced.values()), args.timeout) is None:
                print(f"TIMEOUT: the sustained cases were not all done after {args.timeout:.0f} s")
                report_missing(amqp_uri, paced, completion_times(dbs))
                return 1
            sustained = {"cases": count, "rate": args.sustained_rate, "achieved_rate": achieved,
                         "latency_s": spread(latencies_of(completion_times(dbs), paced))}

        soaked = None
        if args.soak:
            print(f"soak: {args.soak:,} cases at {args.soak_rate:g}/s, memory sampled every "
                  f"{args.soak_every:,} ...", flush=True)
            first = args.n + (sustained["cases"] if sustained else 0)
            samples = soak(amqp_uri, dbs, services, first, args.soak, args.soak_rate, args.soak_every, args.timeout)
            soaked = {"cases": args.soak, "rate": args.soak_rate, "samples": samples,
                      "rss_mb": soak_summary(samples)}

        rss = {name: memory_mb(process.pid, "VmHWM") for name, process in services.items()}
        figures = {
            "n": args.n, "concurrency": args.concurrency, "nproc": os.cpu_count(),
            **per_case,
            "cases_per_s": args.n / elapsed, "elapsed_s": elapsed,
            "latency_s": spread(latencies_of(times, published)),
            "sustained": sustained,
            "soak": soaked,
            "reference_n": reference_n, "reference_events_per_s": reference_rate,
            "ratio": (args.n / elapsed) / reference_rate,
            "peak_rss_mb": rss,
            "load_avg_at_start": args.load_avg, "mongo": "MONGO_URI" if os.environ.get("MONGO_URI") else "stand-in",
        }
        print_figures(figures)
        figures_file.save(figures, "throughput")
        return 0


def print_figures(f):
    print()
    print(f"per case, burst of {f['n']}  (nproc {f['nproc']}, max_workers {f['concurrency']}, "
          f"Mongo {f['mongo']}, load avg at start {f['load_avg_at_start']:.2f})")
    total_rt = sum(r["total"] for r in f["round_trips"].values())
    print(f"  MongoDB round trips {total_rt:.1f}: " + "  ".join(
        f"{name} {r['total']:.1f}" for name, r in f["round_trips"].items()))
    for name, r in f["round_trips"].items():
        print(f"    {name:10s} " + ", ".join(f"{cmd} {v:.2f}" for cmd, v in r["by_command"].items()))
    print(f"  CPU ms {sum(f['cpu_ms'].values()):.1f}: " + "  ".join(
        f"{name} {ms:.1f}" for name, ms in f["cpu_ms"].items()))
    print(f"  messages published {sum(f['messages'].values()):.1f}: " + "  ".join(
        f"{x} {v:.2f}" for x, v in sorted(f["messages"].items())))
    lat = f["latency_s"]
    print(f"end to end           {f['cases_per_s']:,.1f} cases/s  ({f['n']} cases in {f['elapsed_s']:.1f} s, "
          "first publish -> last routed, acknowledged and counted by reporting)")
    print(f"latency (burst)      p50 {lat['p50']:.2f} s  p90 {lat['p90']:.2f} s  "
          f"p99 {lat['p99']:.2f} s  max {lat['max']:.2f} s  (publish -> routed and acknowledged)")
    if f["sustained"]:
        s, lat = f["sustained"], f["sustained"]["latency_s"]
        print(f"latency (sustained)  p50 {lat['p50']:.2f} s  p90 {lat['p90']:.2f} s  p99 {lat['p99']:.2f} s  "
              f"max {lat['max']:.2f} s  ({s['cases']} cases at {s['achieved_rate']:.0f}/s)")
    print(f"reference (nameko)   {f['reference_events_per_s']:,.0f} events/s  "
          f"({f['reference_n']} events, dispatch -> handler, confirms on)")
    print(f"ratio                {f['ratio']:.3f}  (cases/s / reference events/s)")
    if f["soak"]:
        print(f"soak                 {f['soak']['cases']:,} cases at {f['soak']['rate']:g}/s: RSS MB after the "
              "first step -> last (max; growth per 10,000 cases)")
        for name, r in f["soak"]["rss_mb"].items():
            print(f"  {name:10s} {r['first']:.0f} -> {r['last']:.0f}  (max {r['max']:.0f}; "
                  f"{r['growth_per_10k']:+.1f} MB per 10,000)")
    rss = "  ".join(f"{name} {mb:.0f}" for name, mb in f["peak_rss_mb"].items() if mb is not None)
    total = sum(mb for mb in f["peak_rss_mb"].values() if mb is not None)
    print(f"peak RSS (MB)        {rss}  (total {total:.0f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="feedback messages (default 500)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="nameko max_workers per service and for the reference (default 10)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait (default 300)")
    parser.add_argument("--sustained-rate", type=float, default=100,
                        help="cases/s of the sustained phase (default 100)")
    parser.add_argument("--sustained-s", type=float, default=30,
                        help="seconds of the sustained phase; 0 skips it (default 30)")
    parser.add_argument("--soak", type=int, default=0,
                        help="cases of a memory soak after the other phases (e.g. 100000); 0 skips it")
    parser.add_argument("--soak-rate", type=float, default=20, help="cases/s of the soak (default 20)")
    parser.add_argument("--soak-every", type=int, default=1000,
                        help="cases between memory samples of the soak (default 1000)")
    parser.add_argument("--reference-n", type=int, default=None,
                        help="events for the nameko reference (default: --n)")
    args = parser.parse_args(argv)
    args.load_avg = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="closeloop-bench-"))
    print(f"logs: {work}  (1-min load average {args.load_avg:.2f} on {os.cpu_count()} CPUs)")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args, work)
    except KeyboardInterrupt:
        print("interrupted; cleaned up")
        return 130


if __name__ == "__main__":
    sys.exit(main())
