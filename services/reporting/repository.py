import contextlib
import copy
import threading
from datetime import datetime, timedelta, timezone

from prometheus_client.core import GaugeMetricFamily
from pymongo import ASCENDING, DeleteOne, UpdateOne
from pymongo.errors import DuplicateKeyError

from closeloop_shared.clock import CHINA, utcnow
from closeloop_shared.events import SEVERITIES
from closeloop_shared.leases import Leases
from closeloop_shared.mongo import insert_new
from closeloop_shared.outbox import Outbox
from services.reporting import facts as pre
from services.reporting import kpis
from services.reporting.kpis import OPEN_STATUSES

LIVE = ""              # the collections the service reads and writes
REBUILD = "rebuild_"   # where a replay rebuilds them, to be compared with the live ones
FOLDER = "folder"      # the one lease document of a model's folder
EVENTS = "reporting_events"
# Where a live model's increments waited before they travelled on their event's record:
# what an older release left there is folded from there (flows.fold_legacy).
LEGACY_PENDING = "pending_increments"
# Waiting to be folded: a record whose increments are not in the buckets yet carries
# `queued_at` (an indexed range read finds them oldest first; folding unsets it).
WAITING = {"queued_at": {"$gt": datetime(1970, 1, 1, tzinfo=timezone.utc)}}

# Which models this process is folding now (by folder): a worker that finds
# its process already folding skips the fold without asking the database for the lease.
_folding = {}
_folding_guard = threading.Lock()


def _process_lock(name):
    with _folding_guard:
        return _folding.setdefault(name, threading.Lock())


class FactsRepository:
    """reporting's read model, built only from events: `case_facts` (one row per case),
    `report_buckets` (the pre-aggregated facts, services/reporting/facts.py),
    `reporting_events` (every event as received, to rebuild the others by replay, with
    what it adds to the buckets until a folder applies it), `report_folder` (the folder's
    lease: one folder at a time across replicas) and `customer_marks` (one small document
    per customer, written by events that read the customer's other cases: mark_customer).
    A rebuild (prefix REBUILD) replays the live records: its increments wait in
    `rebuild_pending_increments` instead, one document per event."""

    def __init__(self, db, prefix=LIVE):
        self.db = db
        self.facts = db[f"{prefix}case_facts"]
        self.buckets = db[f"{prefix}report_buckets"]
        self.events = db[EVENTS]
        # where this model's increments wait to be folded: on the live records themselves
        self.pending = self.events if prefix == LIVE else db[f"{prefix}pending_increments"]
        self.folder = db[f"{prefix}report_folder"]
        self.folder_leases = Leases(self.folder)
        self.customer_marks = db[f"{prefix}customer_marks"]
        self.digests = db["weekly_digests"]
        self.digest_outbox = Outbox(self.digests)

    @staticmethod
    def ensure_indexes(db, prefix=LIVE):
        facts = db[f"{prefix}case_facts"]
        facts.create_index([("submitted_at", ASCENDING), ("store_id", ASCENDING)])
        facts.create_index([("status", ASCENDING), ("severity", ASCENDING)])
        facts.create_index([("customer_key", ASCENDING), ("submitted_at", ASCENDING)])
        db[EVENTS].create_index([("received_at", ASCENDING)])
        db[f"{prefix}report_buckets"].create_index([("shard", ASCENDING), ("period", ASCENDING)])
        # what waits, folded oldest first; sparse: a folded record has no queued_at
        (db[EVENTS] if prefix == LIVE else db[f"{prefix}pending_increments"]).create_index(
            [("queued_at", ASCENDING)], sparse=True)
        Outbox.ensure_indexes(db["weekly_digests"])

    def atomically(self, work):
        """Run work(session) in one transaction (retried on write conflicts); an event
        found already recorded ends it with nothing written."""
        try:
            with self.db.client.start_session() as session:
                session.with_transaction(work)
        except AlreadyRecorded:  # a redelivery, or a concurrent delivery committed it first
            return

    def record(self, key, event_type, payload, received_at, enrichment, increments, session=None):
        """Keep the event as received with what it adds to the buckets ([[bucket, path, n]],
        waiting to be folded; [] adds nothing), in one write at the end of the event's
        transaction: a redelivery's insert fails on the key, which aborts the transaction
        and all it wrote (AlreadyRecorded ends it in `atomically`)."""
        document = {"_id": key, "type": event_type, "payload": payload, "received_at": received_at,
                    "enrichment": enrichment}
        if increments:
            document.update(queued_at=received_at, increments=increments)
        try:
            self.events.insert_one(document, session=session)
        except DuplicateKeyError as exc:
            raise AlreadyRecorded(key) from exc

    def row(self, case_id, session=None):
        return self.facts.find_one({"_id": case_id}, session=session)

    def save(self, row, session=None):
        """Write the case's whole row (read and changed in the same transaction)."""
        self.facts.replace_one({"_id": row["_id"]}, row, upsert=True, session=session)

    def mark_customer(self, customer_key, session=None):
        """Write the customer's mark in the event's transaction before reading their other
        cases: two events of one customer's cases at once then conflict on it and one is
        retried, seeing what the other committed. Without it each could read the other's
        case as it was before (snapshots), both commit, and a repeat is missed."""
        self.customer_marks.update_one({"_id": customer_key}, {"$inc": {"events": 1}}, upsert=True, session=session)

    def customer_cases(self, row, window_days, session=None):
        """The same customer's other cases submitted within `window_days` either side of
        this one (its earlier ones say whether it repeats; its later ones may repeat it):
        one indexed range read."""
        return [other for other in self.facts.find(
            {"customer_key": row["customer_key"],
             "submitted_at": {"$gte": row["submitted_at"] - timedelta(days=window_days),
                              "$lte": row["submitted_at"] + timedelta(days=window_days)}},
            {"submitted_at": 1, "category": 1, "corrected_category": 1}, session=session)
            if other["_id"] != row["_id"]]

    # -- pending increments and their folding into the buckets ----------------------------

    def queue(self, key, increments, queued_at, session=None):
        """A rebuild's way to keep what replayed event `key` adds to the buckets until it
        is folded (the live model keeps it on the event's record: `record`); under the
        event's key, so it cannot be queued twice."""
        self.pending.insert_one({"_id": key, "queued_at": queued_at, "increments": increments}, session=session)

    def pending_batch(self, limit, session=None):
        """The oldest `limit` events whose increments wait: [{_id, increments}]."""
        return list(self.pending.find(WAITING, {"increments": 1}, sort=[("queued_at", ASCENDING)], limit=limit,
                                      session=session))

    def increment(self, delta, session=None):
        """$inc each bucket of {bucket: {path: n}} once, creating it as needed: one
        round trip for the lot."""
        if delta:
            self.buckets.bulk_write([UpdateOne({"_id": bucket}, {"$inc": paths, "$setOnInsert": pre.bucket_fields(bucket)},
                                               upsert=True) for bucket, paths in delta.items()],
                                    ordered=False, session=session)

    def unqueue(self, keys, session=None):
        """Take folded increments off: from the live records, which stay (an unset); from
        a queue of their own (a rebuild's, an older release's), deleted, as that release
        expects. One round trip. Raises if one was folded already (by someone else): the
        transaction must then not commit."""
        if not keys:
            return
        if self.pending is self.events:
            done = self.pending.update_many({"_id": {"$in": list(keys)}, **WAITING},
                                            {"$unset": {"queued_at": "", "increments": ""}},
                                            session=session).modified_count
        else:
            done = self.pending.bulk_write([DeleteOne({"_id": key}) for key in keys], ordered=False,
                                           session=session).deleted_count
        if done != len(keys):
            raise FoldRaced(f"{len(keys) - done} of {len(keys)} pending increments already folded")

    def any_pending(self):
        return self.pending.find_one(WAITING, {"_id": 1}) is not None

    def backlog(self):
        """How many events' increments wait to be folded."""
        return self.pending.count_documents(WAITING)

    def legacy(self):
        """This model with an older release's `pending_increments` as its pending store
        (what fold_legacy folds): the same buckets and folder."""
        legacy = copy.copy(self)
        legacy.pending = self.db[LEGACY_PENDING]
        return legacy

    @contextlib.contextmanager
    def folding(self):
        """Hold the right to fold this model, if free: yields True (held: within this
        process and, by lease, across replicas; renewed while the block runs, released
        after, whatever happens) or False (another worker or replica is folding)."""
        local = _process_lock(self.folder.full_name)
        if not local.acquire(blocking=False):
            yield False
            return
        try:
            claim = self.folder_leases.claim_by_id(FOLDER)
            if claim is None and insert_new(self.folder, {"_id": FOLDER}):  # the model's first fold
                claim = self.folder_leases.claim_by_id(FOLDER)
            if claim is None:
                yield False
                return
            try:
                with self.folder_leases.hold(claim):
                    yield True
            finally:
                self.folder_leases.release(claim)
        finally:
            local.release()

    def digest_started(self, digest_id):
        return self.digests.find_one({"_id": digest_id}, {"_id": 1}) is not None

    def start_digest(self, digest_id, event, now):
        """Keep the digest's event in its outbox; False if another replica started it."""
        return insert_new(self.digests, {"_id": digest_id, "outbox": [event], "outbox_pending": True,
                                         "updated_at": now})

    def bucket_documents(self, scopes, segments):
        """The buckets of these units (`level:unit`) over the segments (grain, first, last
        period): one indexed range query per unit and segment (equality, not $in: the
        stand-in scans on $in)."""
        for scope in sorted(scopes):
            for grain, first, last in segments:
                yield from self.buckets.find({"shard": pre.shard(scope, grain, first),
                                              "period": {"$gte": first, "$lte": last}})

    def recorded_events(self):
        return self.events.find({}, sort=[("received_at", ASCENDING)])

    def open_by_severity(self):
        counts = {s: 0 for s in SEVERITIES}
        for row in self.facts.aggregate([
                {"$match": {"status": {"$in": list(OPEN_STATUSES)}}},
                {"$group": {"_id": "$severity", "n": {"$sum": 1}}}]):
            if row["_id"] in counts:
                counts[row["_id"]] = row["n"]
        return counts


    def open_rows(self):
        """The open cases' clocks, for the live risk gauges."""
        return self.facts.find({"status": {"$in": list(OPEN_STATUSES)}}, {
            "_id": 0, "status": 1, "severity": 1, "breaches": 1, "first_responded_at": 1, "resolved_at": 1,
            "first_response_due": 1, "resolution_due": 1})


class AlreadyRecorded(Exception):
    """The event is in reporting_events already: this delivery counts nothing."""


class FoldRaced(RuntimeError):
    """A fold found some of its pending increments gone: another folder applied them."""


class OpenCasesCollector:
    """closeloop_open_cases{severity}, closeloop_cases_breached_open{clock,severity} and
    closeloop_cases_at_risk{clock,severity}, read from the read model at scrape time so
    every replica reports the same truth; every series is there (zero) from the start."""

    def __init__(self, repository, at_risk_lead, brands=list, now=utcnow):
        self.repository, self.at_risk_lead, self.brands, self.now = repository, at_risk_lead, brands, now

    def collect(self):
        gauge = GaugeMetricFamily("closeloop_open_cases", "Cases not yet resolved, by severity",
                                  labels=["severity"])
        for severity, count in self.repository.open_by_severity().items():
            gauge.add_metric([severity], count)
        yield gauge
        gauges = {
            "breached_open": GaugeMetricFamily(
                "closeloop_cases_breached_open", "Open cases whose clock ran out and is still unmet",
                labels=["clock", "severity"]),
            "at_risk": GaugeMetricFamily(
                "closeloop_cases_at_risk", "Open cases whose unmet clock falls due within the at-risk lead",
                labels=["clock", "severity"])}
        risk = kpis.sla_risk(self.repository.open_rows(), self.now(), self.at_risk_lead)
        for (state, clock, severity), count in sorted(risk.items()):
            gauges[state].add_metric([clock, severity], count)
        yield from gauges.values()
        yield self._clock_outcomes()

    def _clock_outcomes(self):
        """closeloop_clock_outcomes_7d{clock, outcome}: the last 7 China days' cases by how
        each clock ended (on_time, late, overdue = breached unanswered): an on-time rate
        from these counts unanswered cases honestly, and has a value at night too."""
        gauge = GaugeMetricFamily("closeloop_clock_outcomes_7d",
                                  "Cases of the last 7 days by clock and how it ended (overdue: breached, unmet)",
                                  labels=["clock", "outcome"])
        today = self.now().astimezone(CHINA).date()
        span = pre.Span(today - timedelta(days=6), today)
        counters = kpis.totals(self.repository.bucket_documents(
            {f"brand:{pre.safe_key(brand)}" for brand in self.brands()}, span.segments())).overall()
        for clock in pre.TIMED_CLOCKS:
            for outcome in kpis.CLOCK_OUTCOMES:
                gauge.add_metric([clock, outcome], counters[f"{clock}:{outcome}"])
        return gauge
