"""Report latency over reporting's pre-aggregated facts for 500 stores over a year at
10k, 100k and 1M cases, and the read model's update throughput.

    .venv/bin/python -m bench.reports [--sizes 10000 100000 1000000] [--repeats 30] [--events 1500] [--workers 1 10]
    make report-bench

What it does, on an in-process MongoDB stand-in (SecantusDB) unless MONGO_URI is set:
1. per size, a fresh database holding the buckets of that many cases spread over 500
   stores (25 regions, 5 brands) and the 365 days of 2026. Seeding a million cases
   event by event through the stand-in (~300 transactions/s) would take about five
   hours, so the bucket documents are made by the read model's own code instead: each
   synthetic case row (category, handler, clocks met/late/breached, remedy, root cause,
   revisits, repeat gap) goes through services/reporting/facts.contribution, the
   per-case increments are summed in memory exactly as the $inc updates would sum them
   (store days case by case, the coarser buckets rolled up from them), and the documents
   are written with insert_many, the indexes built after;
2. times the reports the HTTP endpoint builds (services/reporting/reports.report): the
   chain's year in total and by region, a region's year by store, a store's year by
   category and by staff, a general manager's last quarter by category; each --repeats
   times; p50/p95 per report and over all, and the ratio of p95 at the largest size to
   the smallest (goal <= 2; p95 <= 200 ms at 1M);
3. the update throughput: --events real events (case_submitted, routed, first
   responded, resolved, revisit) through services/reporting/flows.take_in, one
   transaction each, as the service handles them, by one handler and by ten at once
   (--workers; the service's max_workers), timed until the last is folded into the
   buckets; events/s, and transactions aborted per event (write conflicts retried).
Figures also go to bench/results/reports-<time>.json."""
import argparse
import json
import os
import random
import statistics
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pymongo import MongoClient, monitoring

from closeloop_shared import events as ev
from closeloop_shared.clock import CHINA, utcnow
from closeloop_shared.contract import Category, RefundOption, RootCause
from closeloop_shared.mongo import connect
from closeloop_shared.org import Brand, Organisation, Region, Store
from services.reporting import facts, flows, reports
from services.reporting.repository import FactsRepository

BRANDS, REGIONS_PER_BRAND, STORES_PER_REGION, STAFF_PER_STORE = 5, 5, 20, 4
YEAR = date(2026, 1, 1)
RESULTS = Path(__file__).parent / "results"


def organisation():
    brands, regions, stores = {}, {}, {}
    for b in range(BRANDS):
        brands[f"b{b}"] = Brand(f"b{b}", f"brand {b}")
        for r in range(REGIONS_PER_BRAND):
            region = f"b{b}-r{r}"
            regions[region] = Region(region, region, f"b{b}")
            for s in range(STORES_PER_REGION):
                store = f"{region}-s{s}"
                stores[store] = Store(store, store, region)
    return Organisation(brands=brands, regions=regions, stores=stores)


def synthetic_row(rng, org, stores):
    """One case as its row would read after its events, with plausible outcomes."""
    store = rng.choice(stores)
    submitted = datetime.combine(YEAR + timedelta(days=rng.randrange(365)), datetime.min.time(),
                                 tzinfo=CHINA) + timedelta(minutes=rng.randrange(24 * 60))
    row = {"_id": uuid.uuid4().hex, "store_id": store, "region_id": org.stores[store].region_id,
           "brand_id": org.brand_of_store(store), "submitted_at": submitted,
           "category": rng.choice(list(Category)).value, "handler_id": f"{store}-staff{rng.randrange(STAFF_PER_STORE)}",
           "status": "closed", "breaches": []}
    if rng.random() < 0.95:
        row.update(first_responded_at=submitted, first_response_on_time=rng.random() < 0.93)
    else:
        row["breaches"].append({"clock": "first_response", "rung": rng.randrange(1, 4), "due_at": submitted})
    if rng.random() < 0.9:
        option = rng.choice(list(RefundOption))
        row.update(resolved_at=submitted, resolution_on_time=rng.random() < 0.9, remedy_type="refund",
                   refund_option=option.value, remedy_amount_fen=0 if option is RefundOption.NONE_CONTINUE
                   else rng.randrange(1, 2000) * 100, root_cause=rng.choice(list(RootCause)).value,
                   revisits=[{"revisit_id": "r", "satisfied": rng.random() < 0.92}])
    else:
        row["status"] = "investigating"
    if rng.random() < 0.08:
        row["repeat_gap_days"] = rng.randrange(1, 91)
    return row


def nested(paths):
    document = {}
    for path, n in paths.items():
        parts = path.split(".")
        node = document
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = n
    return document


def seed(db, size, org, rng):
    """The buckets of `size` cases, by the read model's own contribution code: each
    case's store-day increments as facts.contribution gives them, summed; every other
    bucket of a case (its store's month, its region's and brand's day and month) gets the
    same increments but staff (facts.contribution's rule), so those are rolled up from
    the store days instead of summed case by case."""
    store_days = {}
    stores = sorted(org.stores)
    for _ in range(size):
        row = synthetic_row(rng, org, stores)
        day_bucket = facts.bucket_id("store", row["store_id"], facts.DAY, facts.china_day(row["submitted_at"]))
        store_days.setdefault(day_bucket, Counter()).update(facts.contribution(row)[day_bucket])
    buckets = dict(store_days)
    for bucket, paths in store_days.items():
        _, store, _, period = bucket.split(":")
        day = date.fromisoformat(period)
        unstaffed = {path: n for path, n in paths.items() if not path.startswith("s.")}
        rollups = [(facts.bucket_id("store", store, facts.MONTH, day), paths)]
        for level, unit in (("region", org.stores[store].region_id), ("brand", org.brand_of_store(store))):
            rollups += [(facts.bucket_id(level, unit, grain, day), unstaffed) for grain in (facts.DAY, facts.MONTH)]
        for rolled, increments in rollups:
            buckets.setdefault(rolled, Counter()).update(increments)
    documents = [{"_id": bucket, **facts.bucket_fields(bucket), **nested(paths)} for bucket, paths in buckets.items()]
    for start in range(0, len(documents), 5000):
        db["report_buckets"].insert_many(documents[start:start + 5000], ordered=False)
    return len(documents)


def report_cases(org):
    year = facts.Span(YEAR, date(2026, 12, 31))
    quarter = facts.Span(date(2026, 10, 1), date(2026, 12, 31))
    region = sorted(org.regions)[0]
    store = sorted(org.stores)[0]
    G = reports.GroupBy
    return {
        "chain year total": (G.NONE, reports.plan(G.NONE, org, None), year),
        "chain year by region": (G.REGION, reports.plan(G.REGION, org, None), year),
        "region year by store": (G.STORE, reports.plan(G.STORE, org, org.stores_of_region(region)), year),
        "store year by category": (G.CATEGORY, reports.plan(G.CATEGORY, org, frozenset({store})), year),
        "store year by staff": (G.STAFF, reports.plan(G.STAFF, org, frozenset({store})), year),
        "brand quarter by category": (G.CATEGORY, reports.plan(G.CATEGORY, org, org.stores_of_brand("b0")), quarter),
    }


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_reports(repository, org, repeats):
    timings = {}
    for name, (group_by, plan, span) in report_cases(org).items():
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            body = reports.report(repository, group_by, plan, span)
            samples.append((time.perf_counter() - started) * 1000)
        assert body["groups"], name
        timings[name] = samples
    return timings


def case_events(org, rng):
    """The events of one case (submitted, routed, first responded, resolved, revisit) at a
    random store, as reporting receives them."""
    staff = {"staff_id": "s", "name": "张丽", "role": "store_manager", "email": None}
    case_id, store, t0 = uuid.uuid4().hex, rng.choice(sorted(org.stores)), utcnow() - timedelta(days=1)
    customer = {"name": "刘女士", "phone": f"+86138{rng.randrange(10**8):08d}", "email": None}
    base = {"case_id": case_id, "case_number": "CL-1", "store_id": store}
    return [(kind, ev.dump(kind, data)) for kind, data in (
        (ev.CASE_SUBMITTED, dict(base, store_name="店", channel="web", customer=customer, content="脏",
                                 occurred_at=t0, submitted_at=t0)),
        (ev.CASE_ROUTED, dict(base, category="hygiene", severity="low", assignee=staff, rung=0, routed_at=t0,
                              deadlines={"first_response_due": t0 + timedelta(hours=24),
                                         "resolution_due": t0 + timedelta(hours=48)})),
        (ev.CASE_FIRST_RESPONDED, dict(base, responded_at=t0, on_time=True, seconds_to_respond=60)),
        (ev.CASE_RESOLVED, dict(base, category="hygiene", resolved_at=t0, on_time=True, resolution_round=1,
                                remedy={"type": "apology"}, customer=customer, revisit_owner=staff)),
        (ev.REVISIT_RECORDED, dict(base, revisit_id=uuid.uuid4().hex, round=1, score=5, satisfied=True,
                                   reopens_case=False, recorded_at=t0)))]


def throughput(uri, db_name, org, events_wanted, workers):
    """Events/s through flows.take_in with `workers` handlers at once (each taking in whole
    cases, in order), until the last is in the buckets (the backlog folded); and the
    transactions aborted per event (write conflicts retried), from command monitoring."""
    rng = random.Random(workers)
    cases = [case_events(org, rng) for _ in range(-(-events_wanted // 5))]
    aborts = AbortCounter()
    client = MongoClient(uri, tz_aware=True, event_listeners=[aborts])
    FactsRepository.ensure_indexes(client[db_name])
    repository = FactsRepository(client[db_name])
    started = time.perf_counter()

    def take_in(events):
        for kind, payload in events:
            flows.take_in(repository, kind, payload, utcnow(), org)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(take_in, cases))
    flows.fold_all(repository)
    elapsed = time.perf_counter() - started
    client.close()
    sent = sum(len(events) for events in cases)
    return sent / elapsed, aborts.count / sent


class AbortCounter(monitoring.CommandListener):
    """How many transactions were aborted (each a write conflict retried, or given up)."""

    def __init__(self):
        self.count = 0

    def started(self, event):
        if event.command_name == "abortTransaction":
            self.count += 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def mongo_uri():
    if os.environ.get("MONGO_URI"):
        return os.environ["MONGO_URI"], None
    from secantus import SecantusDBServer
    server = SecantusDBServer(storage_path=":memory:", port=0)
    server.start()
    return server.uri.rstrip("/") + "/?retryWrites=false&directConnection=true", server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 10],
                        help="handlers taking events in at once (reporting runs 10 per replica)")
    args = parser.parse_args(argv)
    uri, server = mongo_uri()
    client, org, rng = connect(uri), organisation(), random.Random(11)
    results = {"stores": len(org.stores), "sizes": {}}
    try:
        for size in args.sizes:
            db = client[f"bench_reports_{size}_{uuid.uuid4().hex[:6]}"]
            started = time.perf_counter()
            documents = seed(db, size, org, rng)
            FactsRepository.ensure_indexes(db)  # after the bulk load, as a migration would
            seeded = time.perf_counter() - started
            timings = time_reports(FactsRepository(db), org, args.repeats)
            every = [t for samples in timings.values() for t in samples]
            results["sizes"][size] = {
                "bucket_documents": documents, "seed_seconds": round(seeded, 1),
                "p50_ms": round(percentile(every, 0.5), 1), "p95_ms": round(percentile(every, 0.95), 1),
                "reports": {name: {"p50_ms": round(percentile(s, 0.5), 1), "p95_ms": round(percentile(s, 0.95), 1),
                                   "mean_ms": round(statistics.mean(s), 1)} for name, s in timings.items()}}
            print(f"{size:>9,} cases: {documents:,} bucket documents (seeded in {seeded:.0f} s); "
                  f"all reports p50 {results['sizes'][size]['p50_ms']} ms, p95 {results['sizes'][size]['p95_ms']} ms")
            for name, figures in results["sizes"][size]["reports"].items():
                print(f"    {name:<28} p50 {figures['p50_ms']:>7} ms   p95 {figures['p95_ms']:>7} ms")
            client.drop_database(db.name)
        smallest, largest = min(args.sizes), max(args.sizes)
        results["p95_ratio_largest_to_smallest"] = round(
            results["sizes"][largest]["p95_ms"] / results["sizes"][smallest]["p95_ms"], 2)
        print(f"p95 ratio {largest:,} / {smallest:,} cases: {results['p95_ratio_largest_to_smallest']} (goal <= 2); "
              f"p95 at {largest:,}: {results['sizes'][largest]['p95_ms']} ms (goal <= 200)")
        results["updates"] = {}
        for workers in args.workers:
            db = client[f"bench_reports_updates_{uuid.uuid4().hex[:6]}"]
            rate, aborted = throughput(uri, db.name, org, args.events, workers)
            results["updates"][workers] = {"events_per_second": round(rate, 1),
                                           "aborted_transactions_per_event": round(aborted, 2)}
            print(f"read-model updates, {workers:>2} at once: {rate:.1f} events/s until folded into the buckets, "
                  f"{aborted:.2f} aborted transactions per event ({args.events} events)")
            client.drop_database(db.name)
        results["update_events_per_second"] = results["updates"][args.workers[0]]["events_per_second"]
    finally:
        client.close()
        if server is not None:
            server.stop()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"reports-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
