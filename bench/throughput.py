"""End-to-end throughput of Closeloop, next to the raw nameko event rate measured in the
same run on the same broker.

    .venv/bin/python -m bench.throughput [--n 500] [--concurrency 10] [--timeout 300]
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
from kombu import Connection  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402
from nameko.events import event_handler  # noqa: E402
from nameko.standalone.events import event_dispatcher  # noqa: E402

from bench import figures as figures_file  # noqa: E402
from closeloop_shared import bus  # noqa: E402
from closeloop_shared.mongo import connect  # noqa: E402
from closeloop_shared.standins import (  # noqa: E402
    free_port, standin_mongo_uri, start_mongo_standin, start_smtp_sink)
from deploy import local  # noqa: E402

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
    return {name: process for name, process, _ in started}


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


def publish_feedback(amqp_uri, n):
    """Publishes n submissions (persistent, confirmed); returns {i: publish wall time}."""
    published = {}
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        for i in range(n):
            body = json.dumps(feedback(i), ensure_ascii=False).encode()
            published[i] = time.time()
            producer.publish(body, exchange=bus.INBOUND_EXCHANGE,
                             routing_key=bus.FEEDBACK_SUBMITTED_KEY, declare=[bus.INBOUND_EXCHANGE],
                             content_type="application/json", content_encoding="utf-8",
                             delivery_mode=2)
    return published


def progress(dbs):
    routed = dbs["routing"]["cases"].count_documents({"routed_at": {"$exists": True}})
    acked = dbs["notify"]["deliveries"].count_documents(
        {"kind": "acknowledgement", "status": "sent"})
    return routed, acked


def wait_until_done(dbs, n, first_publish, timeout):
    """Polls once a second; True when n cases are routed and acknowledged."""
    while True:
        polled = time.monotonic()
        routed, acked = progress(dbs)
        elapsed = time.time() - first_publish
        print(f"published {n}, routed {routed}, acknowledged {acked}, {elapsed:.1f} s", flush=True)
        if routed >= n and acked >= n:
            return True
        if elapsed > timeout:
            return False
        time.sleep(max(0.0, 1 - (time.monotonic() - polled)))


def completion_times(dbs):
    """{external ref id: (case_id, routed_at, ack sent_at)} with None for what is missing."""
    cases = {doc["external_ref"]["id"]: doc["_id"] for doc in dbs["intake"]["cases"].find(
        {"external_ref.source": "bench"}, {"external_ref": 1})}
    routed = {doc["_id"]: doc["routed_at"] for doc in dbs["routing"]["cases"].find(
        {"routed_at": {"$exists": True}}, {"routed_at": 1})}
    acked = {doc["case_id"]: doc["sent_at"] for doc in dbs["notify"]["deliveries"].find(
        {"kind": "acknowledgement", "status": "sent"}, {"case_id": 1, "sent_at": 1})}
    return {ref: (case_id, routed.get(case_id), acked.get(case_id)) for ref, case_id in cases.items()}


def report_missing(amqp_uri, published, times):
    missing = {"not accepted by intake": [], "not routed": [], "not acknowledged": []}
    for i in published:
        case_id, routed_at, sent_at = times.get(str(i), (None, None, None))
        if case_id is None:
            missing["not accepted by intake"].append(i)
            continue
        if routed_at is None:
            missing["not routed"].append(i)
        if sent_at is None:
            missing["not acknowledged"].append(i)
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


def peak_rss_mb(pid):
    """VmHWM of a live process in MB, or None."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


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
        services = start_system(env, work, processes)
        wait_for_consumers(amqp_uri, READY_QUEUES)
        watched = dict(services, **({"mongo": mongo_process} if mongo_process else {}))
        cpu_before = {name: cpu_seconds(process.pid) for name, process in watched.items()}

        published = publish_feedback(amqp_uri, args.n)
        first_publish = min(published.values())
        print(f"published {args.n} in {time.time() - first_publish:.1f} s", flush=True)
        done = wait_until_done(dbs, args.n, first_publish, args.timeout)
        rss = {name: peak_rss_mb(process.pid) for name, process in services.items()}
        cpu_after = {name: cpu_seconds(process.pid) for name, process in watched.items()}
        cpu = {name: cpu_after[name] - cpu_before[name] for name in watched
               if None not in (cpu_before[name], cpu_after[name])}
        times = completion_times(dbs)
        if not done:
            print(f"TIMEOUT: not all {args.n} cases done after {args.timeout:.0f} s")
            report_missing(amqp_uri, published, times)
            return 1

        finished = {int(ref): max(routed_at, sent_at).timestamp()
                    for ref, (_, routed_at, sent_at) in times.items()}
        latencies = sorted(finished[i] - published[i] for i in published)
        elapsed = max(finished.values()) - first_publish
        figures = {
            "n": args.n, "concurrency": args.concurrency, "nproc": os.cpu_count(),
            "cases_per_s": args.n / elapsed, "elapsed_s": elapsed,
            "latency_s": {f"p{p}": percentile(latencies, p) for p in (50, 90, 99)}
            | {"max": latencies[-1]},
            "reference_n": reference_n, "reference_events_per_s": reference_rate,
            "ratio": (args.n / elapsed) / reference_rate,
            "peak_rss_mb": rss, "cpu_s_during_run": cpu,
            "load_avg_at_start": args.load_avg, "mongo": "MONGO_URI" if os.environ.get("MONGO_URI") else "stand-in",
        }
        print_figures(figures)
        figures_file.save(figures, "throughput")
        return 0


def print_figures(f):
    lat = f["latency_s"]
    print()
    print(f"N                    {f['n']}  (nproc {f['nproc']}, max_workers {f['concurrency']}, "
          f"Mongo {f['mongo']}, load avg at start {f['load_avg_at_start']:.2f})")
    print(f"end to end           {f['cases_per_s']:,.1f} cases/s  ({f['n']} cases in {f['elapsed_s']:.1f} s, "
          "first publish -> last routed+acknowledged)")
    print(f"latency              p50 {lat['p50']:.2f} s  p90 {lat['p90']:.2f} s  "
          f"p99 {lat['p99']:.2f} s  max {lat['max']:.2f} s")
    print(f"reference (nameko)   {f['reference_events_per_s']:,.0f} events/s  "
          f"({f['reference_n']} events, dispatch -> handler, confirms on)")
    print(f"ratio                {f['ratio']:.3f}  (cases/s / reference events/s)")
    rss = "  ".join(f"{name} {mb:.0f}" for name, mb in f["peak_rss_mb"].items() if mb is not None)
    total = sum(mb for mb in f["peak_rss_mb"].values() if mb is not None)
    print(f"peak RSS (MB)        {rss}  (total {total:.0f})")
    cpu = "  ".join(f"{name} {s:.1f}" for name, s in f["cpu_s_during_run"].items())
    print(f"CPU s, publish->done {cpu}  (of {f['elapsed_s'] * f['nproc']:.0f} available)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="feedback messages (default 500)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="nameko max_workers per service and for the reference (default 10)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait (default 300)")
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
