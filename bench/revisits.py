"""The revisit programme at scale: how long planning a year of revisits takes for
1,000,000 customers, and what finding due work costs as scheduled items grow.

    .venv/bin/python -m bench.revisits [--customers 1000000] [--sizes 10000,100000,1000000]
    make revisit-bench                   # REVISIT_ARGS="--sizes 10000,100000" for a quick run

1. planning: programme.plan for every customer (tiers mixed 10% key, 50% regular,
   30% potential, 10% special; each its own contact hours and store time zone), each
   revisit inside its store's open hours as followup knows them from routing's
   announcement (10:00-21:00, closed on Mondays, 2027's statutory holidays and make-up
   workdays), pure CPU, no storage;
2. due-work scan: followup's `revisit_tasks` collection on the MongoDB stand-in (or
   MONGO_URI) with followup's own indexes, grown to each size by insert_many with due
   times spread over a year (200 of them overdue); at each size the exact query the
   precise timers make (closeloop_shared.due.DueItems.upcoming: status scheduled, due by
   now + horizon, earliest first, at most READ_LIMIT) is timed 30 times; the median is
   the scan cost. The figure that matters is median(largest) / median(smallest): flat
   means <= 2.
Figures also go to bench/results/revisits-<time>.json.
"""
import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from bench import figures
from closeloop_shared.clock import utcnow
from closeloop_shared.contract import CustomerTier, RevisitPurpose, RevisitTaskStatus
from closeloop_shared.due import DueItems
from closeloop_shared.mongo import connect
from closeloop_shared.standins import free_port, standin_mongo_uri, start_mongo_standin
from services.followup import programme
from services.followup.opening import OpeningHours
from services.followup.profiles import ContactHours
from services.followup.repository import TaskRepository
from services.routing import calendar_flows
from services.routing.calendar import Slot, StoreCalendar, StoreHours

TIERS = [CustomerTier.KEY] * 1 + [CustomerTier.REGULAR] * 5 + [CustomerTier.POTENTIAL] * 3 + [CustomerTier.SPECIAL]
ZONES = ("Asia/Shanghai", "Asia/Urumqi")
OVERDUE = 200
REPEATS = 30
BATCH = 10_000


def store_opening(tz, start):
    """A store's calendar as followup's copy has it: routing's announcement of a store
    open 10:00-21:00 but on Mondays, closed on statutory holidays."""
    daily = (Slot.parse("10:00", "21:00"),)
    calendar = StoreCalendar(tz, StoreHours(weekly=((),) + (daily,) * 6, workday=daily, observes_holidays=True))
    return OpeningHours.from_announcement(calendar_flows.announcement(calendar, "bench", tz, start, utcnow()))


def bench_planning(customers):
    cadence, rng = programme.Cadence.from_config(None), random.Random(7)
    start, until = date(2027, 1, 1), date(2027, 12, 31)
    openings = [store_opening(tz, start) for tz in ZONES]
    began, planned = time.perf_counter(), 0
    for n in range(customers):
        hours = ContactHours(rng.choice((9, 10, 14)), rng.choice((18, 20, 21)))
        planned += len(programme.plan(f"M{n}", TIERS[n % len(TIERS)], cadence, start, until,
                                      hours, ZONES[n % len(ZONES)], openings[n % len(ZONES)]))
    return {"customers": customers, "revisits_planned": planned, "seconds": round(time.perf_counter() - began, 2)}


def task_documents(count, now, rng):
    owner = {"staff_id": "bench-owner", "name": "bench", "role": "store_staff", "email": None}
    for _ in range(count):
        due_at = now + timedelta(seconds=rng.randint(3600, 365 * 86400))
        yield {"_id": uuid.uuid4().hex, "member_id": f"M{rng.randint(0, 10**9)}", "store_id": "SH-XH-001",
               "owner": owner, "owner_id": "bench-owner", "tier": "regular",
               "purpose": RevisitPurpose.CARE.value, "status": RevisitTaskStatus.SCHEDULED.value,
               "due_at": due_at, "planned_at": due_at, "attempts": [], "created_at": now,
               "updated_at": now, "outbox": [], "outbox_pending": False}


def bench_scan(db, sizes):
    TaskRepository.ensure_indexes(db)
    tasks, rng, now = db["revisit_tasks"], random.Random(11), utcnow()
    overdue = list(task_documents(OVERDUE, now, rng))
    for doc in overdue:
        doc["due_at"] = doc["planned_at"] = now - timedelta(minutes=rng.randint(1, 600))
    tasks.insert_many(overdue)
    items = DueItems(tasks, "due_at", where={"status": RevisitTaskStatus.SCHEDULED.value})
    rows, held = [], OVERDUE
    for size in sizes:
        load_began = time.perf_counter()
        while held < size:
            batch = min(BATCH, size - held)
            tasks.insert_many(list(task_documents(batch, now, rng)), ordered=False)
            held += batch
        loaded = time.perf_counter() - load_began
        timings = []
        for _ in range(REPEATS):
            began = time.perf_counter()
            found = items.upcoming(utcnow() + timedelta(seconds=20))
            timings.append(time.perf_counter() - began)
        assert len(found) == OVERDUE, f"the scan found {len(found)} due items, not {OVERDUE}"
        rows.append({"scheduled": size, "scan_median_ms": round(statistics.median(timings) * 1000, 2),
                        "scan_p90_ms": round(sorted(timings)[int(REPEATS * 0.9)] * 1000, 2),
                        "load_seconds": round(loaded, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--mongo-uri", default=None, help="a MongoDB to use instead of the stand-in")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    planning = bench_planning(args.customers)
    print(json.dumps({"planning": planning}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        standin = None
        uri = args.mongo_uri
        if uri is None:
            port = free_port()
            standin = start_mongo_standin(port, Path(tmp) / "db", open(Path(tmp) / "mongo.log", "w"))
            uri = standin_mongo_uri(port)
        client = connect(uri)
        try:
            scan = bench_scan(client[f"bench_revisits_{uuid.uuid4().hex[:6]}"], sizes)
        finally:
            client.close()
            if standin:
                standin.terminate()
                standin.wait(30)
    ratio = round(scan[-1]["scan_median_ms"] / scan[0]["scan_median_ms"], 2)
    result = {"planning": planning, "scan": scan,
              "ratio": {"largest_over_smallest": ratio, "sizes": [sizes[-1], sizes[0]], "goal": 2}}
    print(json.dumps(result["ratio"]))
    figures.save(result, "revisits")


if __name__ == "__main__":
    main()
