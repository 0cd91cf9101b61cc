from bson import decode, encode
from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from closeloop_shared.config import CASE_TIMELINE_KEPT, DEFAULTS
from closeloop_shared.leases import Leases
from closeloop_shared.mongo import insert_new
from closeloop_shared.auth import SNAPSHOT_ID, IntegrationStore, OrgStore
from closeloop_shared.outbox import Outbox
from services.routing.lifecycle import ACTIVE

DUPLICATE_KEY = 11000


class CaseRepository:
    """routing's `cases` collection. Every write is conditional on the version read
    (optimistic concurrency): with several routing replicas, a deadline check and a
    staff action racing on one case cannot both win, so each breach escalates once.

    Events a write causes go in the same document's outbox (closeloop_shared.outbox)."""

    def __init__(self, db, timeline_kept=DEFAULTS[CASE_TIMELINE_KEPT]):
        self.cases = db["cases"]
        self.outbox = Outbox(self.cases)
        # Every timeline entry, numbered per case (seq from 1); the case document keeps
        # only the newest `timeline_kept` of them and their count, so a case reopened
        # hundreds of times stays far below MongoDB's 16 MB document limit.
        self.timeline = db["case_timeline"]
        self.timeline_kept = timeline_kept

    @staticmethod
    def ensure_indexes(db):
        cases = db["cases"]
        cases.create_index([("next_check_at", ASCENDING)])
        Outbox.ensure_indexes(cases)
        cases.create_index([("store_id", ASCENDING), ("status", ASCENDING)])
        cases.create_index([("submitted_at", ASCENDING)])  # GET /v1/cases, newest first
        cases.create_index([("store_id", ASCENDING), ("submitted_at", ASCENDING)])
        cases.create_index([("assignee.staff_id", ASCENDING), ("status", ASCENDING)])
        # duty: the open cases of given people at a store (shift handover, open counts)
        cases.create_index([("store_id", ASCENDING), ("assignee.staff_id", ASCENDING), ("status", ASCENDING)])
        # GET /v1/cases?triage=pending (with or without a store)
        cases.create_index([("triage.status", ASCENDING), ("submitted_at", ASCENDING)])
        cases.create_index([("store_id", ASCENDING), ("triage.status", ASCENDING), ("submitted_at", ASCENDING)])
        # the same customer's cases (duplicates at a store, remedies received anywhere)
        cases.create_index([("customer_keys", ASCENDING), ("submitted_at", ASCENDING)])
        db["case_timeline"].create_index([("case_id", ASCENDING), ("seq", ASCENDING)], unique=True)

    def insert(self, case):
        entries = self._numbered(case, case.get("timeline") or [], 0)
        inserted = insert_new(self.cases, dict(case, timeline=entries[-self.timeline_kept:],
                                               timeline_count=len(entries)))
        if inserted:
            self._record(case["_id"], entries)
        return inserted

    @staticmethod
    def _numbered(case, entries, count):
        return [dict(e, seq=count + n) for n, e in enumerate(entries, start=1)]

    def _record(self, case_id, entries):
        """Into case_timeline, after the case write that won (a lost race records
        nothing). Should the process die in between, the case document still holds its
        newest entries, and timeline_page reads them from there."""
        if not entries:
            return
        # One round trip for all of them (an escalation writes two to four), inserted: each
        # seq is new, numbered after the write that won; one already there (a write
        # repeated after a lost reply) is the same entry, left as it is.
        try:
            self.timeline.insert_many([dict(entry, case_id=case_id) for entry in entries], ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise

    def timeline_page(self, case, before=None, limit=50):
        """Timeline entries of `case`, newest first, seq < before (default: all)."""
        upper = case.get("timeline_count", len(case.get("timeline", [])))
        if before is not None:
            upper = min(upper, before - 1)
        on_case = {e["seq"]: e for e in case.get("timeline", []) if "seq" in e and e["seq"] <= upper}
        found = self.timeline.find({"case_id": case["_id"], "seq": {"$lte": upper}}, {"_id": 0, "case_id": 0})
        merged = {e["seq"]: e for e in found.sort("seq", -1).limit(limit)}
        merged.update(on_case)
        return [merged[seq] for seq in sorted(merged, reverse=True)[:limit]]

    def of_customer(self, keys, since):
        """Cases of a customer (any of their customer_keys) submitted since `since`:
        id, store, submission time, keys, merge pointer and remedy ledger."""
        if not keys:
            return []
        return list(self.cases.find(
            {"customer_keys": {"$in": list(keys)}, "submitted_at": {"$gte": since}},
            {"_id": 1, "store_id": 1, "status": 1, "submitted_at": 1, "customer_keys": 1, "merged_into": 1,
             "remedies": 1}))

    def get(self, case_id):
        return self.cases.find_one({"_id": case_id})

    def find(self, scope, store_id=None, status=None, limit=50, triage=None):
        """The newest cases within `scope` (closeloop_shared.access.Scope); `triage`
        ("pending", "resolved") keeps the cases whose category is in that triage state."""
        query = {k: v for k, v in (("store_id", store_id), ("status", status),
                                   ("triage.status", triage)) if v}
        if scope.stores is not None:
            if store_id and store_id not in scope.stores:
                return []  # a store out of scope lists as empty as an unknown one
            query["store_id"] = store_id or {"$in": sorted(scope.stores)}
        if scope.client_id is not None:
            query["submitted_by.client_id"] = scope.client_id
        return list(self.cases.find(query, {"outbox": 0}).sort("submitted_at", -1).limit(limit))

    def active_assigned_to(self, staff_id):
        return list(self.cases.find({"assignee.staff_id": staff_id,
                                     "status": {"$in": [s.value for s in ACTIVE]}}, {"_id": 1}))

    def active_assigned_at(self, store_id, staff_ids):
        """The active cases of the store assigned to any of staff_ids: id, assignee,
        category and severity (what duty needs to hand over and to count open cases)."""
        return list(self.cases.find(
            {"store_id": store_id, "assignee.staff_id": {"$in": sorted(staff_ids)},
             "status": {"$in": [s.value for s in ACTIVE]}},
            {"_id": 1, "assignee": 1, "category": 1, "severity": 1}))

    def active_counts_at(self, store_id, staff_ids):
        """{staff_id: active cases of the store assigned to them} for staff_ids with any:
        counted by the server over the (store_id, assignee.staff_id, status) index, so
        assigning a new case reads one small document per person, not their every case."""
        return {row["_id"]: row["n"] for row in self.cases.aggregate([
            {"$match": {"store_id": store_id, "assignee.staff_id": {"$in": sorted(staff_ids)},
                        "status": {"$in": [s.value for s in ACTIVE]}}},
            {"$group": {"_id": "$assignee.staff_id", "n": {"$sum": 1}}}])}

    def update(self, case, changes, entries, events, now):
        """The updated case, or None when someone else changed it first. `case` is the
        whole document as read (get, due)."""
        fields = dict(changes, updated_at=now)
        update = {"$set": fields, "$inc": {"version": 1}}
        push = {}
        if entries:
            entries = self._numbered(case, entries, case.get("timeline_count", len(case.get("timeline", []))))
            push["timeline"] = {"$each": entries, "$slice": -self.timeline_kept}
            fields["timeline_count"] = entries[-1]["seq"]
        if events:
            push["outbox"] = {"$each": events}
            fields["outbox_pending"] = True
        if push:
            update["$push"] = push
        # update_one through the _id index and no read after it (_as_written):
        # find_one_and_update scans the whole collection on the MongoDB stand-in, 82.5 ms
        # per update at 5,000 cases against 7.6 ms for this one (with its case_timeline insert).
        result = self.cases.update_one({"_id": case["_id"], "version": case["version"]}, update)
        if not result.modified_count:
            return None
        self._record(case["_id"], entries)
        return self._as_written(case, fields, entries)

    def _as_written(self, case, fields, entries):
        """`case` as the update above left it, built here rather than read back: the write
        matched the version read, and every versioned field changes only by a
        version-checked write, so the stored case is the one read with the $set fields,
        version + 1 and the timeline's $push/$slice applied. Passed through BSON so
        that it has the types a read returns (lists for tuples, plain str for str enums,
        aware datetimes to the millisecond). Without `outbox`: a flush empties it outside
        the version (the caller holds the events it added)."""
        written = dict(case, **fields, version=case["version"] + 1)
        if entries:
            written["timeline"] = (list(case.get("timeline", [])) + entries)[-self.timeline_kept:]
        written.pop("outbox", None)
        return decode(encode(written), codec_options=self.cases.codec_options)

    def due(self, now, limit):
        """Cases whose next deadline check is due. Deliberately no lease here: a check
        holds no claim a dead replica could leave behind (the write is conditional on
        the version read, so of replicas racing on one case exactly one escalates), and
        a replica dying mid-check leaves the case due for the very next scan of any
        replica, one SLA_SCAN_INTERVAL_SECONDS later. A lease would only add its length
        to that takeover."""
        return list(self.cases.find({"next_check_at": {"$lte": now}})
                    .sort("next_check_at", ASCENDING).limit(limit))


class CorrectionRepository:
    """routing's `corrections`: every staff correction of a case's category (who, why,
    what the model had said and which model), the material
    `python -m services.routing.triage export` adds to the corpus."""

    def __init__(self, db):
        self.corrections = db["corrections"]

    @staticmethod
    def ensure_indexes(db):
        db["corrections"].create_index([("at", ASCENDING)])

    def record(self, correction):
        """Idempotent: one record per (case, case version corrected)."""
        self.corrections.update_one({"_id": correction["_id"]}, {"$setOnInsert": correction}, upsert=True)

    def all(self):
        return list(self.corrections.find({}).sort("at", ASCENDING))


class OrgRepository(OrgStore):
    """routing's `org`: the organisation it owns, one snapshot document whose every
    change is conditional on the version read and carries its org_changed in the
    outbox."""

    def __init__(self, db):
        super().__init__(db)
        self.outbox = Outbox(self.collection)

    @staticmethod
    def ensure_indexes(db):
        Outbox.ensure_indexes(db["org"])

    def replace(self, expected_version, snapshot, event, now):
        """True if stored (nobody changed the organisation since expected_version)."""
        return self.collection.update_one(
            {"_id": SNAPSHOT_ID, "version": expected_version},
            {"$set": {**snapshot, "updated_at": now, "outbox_pending": True},
             "$push": {"outbox": event}}).modified_count > 0


class IntegrationRepository(IntegrationStore):
    """routing's `integrations`: the clients it owns and their keys (digests only)."""

    def __init__(self, db):
        super().__init__(db)
        self.outbox = Outbox(self.collection)

    @staticmethod
    def ensure_indexes(db):
        IntegrationStore.ensure_indexes(db)
        Outbox.ensure_indexes(db["integrations"])

    def insert(self, client, event, now):
        return insert_new(self.collection, dict(client, updated_at=now, outbox=[event], outbox_pending=True))

    def get(self, client_id):
        return self.collection.find_one({"_id": client_id})

    def all(self):
        return list(self.collection.find({}).sort("_id", ASCENDING))

    def update(self, client, changes, event, now):
        """The updated client, or None if it changed meanwhile. `changes` carries the
        next version (the event announces it)."""
        result = self.collection.update_one(
            {"_id": client["_id"], "version": client["version"]},
            {"$set": dict(changes, updated_at=now, outbox_pending=True), "$push": {"outbox": event}})
        return self.get(client["_id"]) if result.modified_count else None


class AccountRepository:
    """routing's `accounts`: one per staff member who can log in (password hash and
    lockout state). Never in an event."""

    def __init__(self, db):
        self.accounts = db["accounts"]

    def get(self, staff_id):
        return self.accounts.find_one({"_id": staff_id})

    def set_password(self, staff_id, password_hash, now):
        self.accounts.update_one(
            {"_id": staff_id},
            {"$set": {"password_hash": password_hash, "failures": 0, "locked_until": None,
                      "password_changed_at": now}}, upsert=True)

    def record(self, staff_id, changes):
        if changes:
            self.accounts.update_one({"_id": staff_id}, {"$set": changes})


class RosterRepository:
    """routing's `rosters`: one document per store (_id the store id) with its shifts and
    a version every change is conditional on; and `shift_ends`, one claim per store and
    shift end, so that of several routing replicas exactly one hands that shift's cases
    over (claimed with a lease: a replica dying mid-handover leaves it to the next one).
    Both are read by _id only (one store, all in _id order, one claim): no other index."""

    def __init__(self, db):
        self.rosters = db["rosters"]
        self.shift_ends = db["shift_ends"]
        self.leases = Leases(self.shift_ends)

    @property
    def cache_key(self):
        """Which database this is, for caches of rosters read from it."""
        return self.rosters.full_name

    def get(self, store_id):
        return self.rosters.find_one({"_id": store_id})

    def all(self):
        return list(self.rosters.find({}).sort("_id", ASCENDING))

    def put(self, roster_doc, expected_version, actor, now):
        """Store the roster as version expected_version + 1; False if someone changed
        it meanwhile (or created it, for expected_version 0)."""
        fields = dict(roster_doc, version=expected_version + 1, updated_at=now, updated_by=actor)
        if expected_version == 0:
            return insert_new(self.rosters, dict(fields, _id=roster_doc["store_id"], created_at=now))
        return self.rosters.update_one({"_id": roster_doc["store_id"], "version": expected_version},
                                       {"$set": fields}).modified_count == 1

    def claim_shift_end(self, store_id, ended_at, now):
        """The claim on handing over the shifts of `store_id` that ended at `ended_at`, or
        None when another replica holds it or it is done."""
        key = f"{store_id}@{ended_at.isoformat()}"
        try:
            self.shift_ends.update_one({"_id": key}, {"$setOnInsert": {
                "store_id": store_id, "ended_at": ended_at, "done": False}}, upsert=True)
        except DuplicateKeyError:  # another replica's upsert of the same key won the race
            pass
        return self.leases.claim({"_id": key, "done": False}, now=now)

    def finish_shift_end(self, claim, handed_over, now):
        """Mark the claimed shift end done; False if the lease was lost meanwhile (the
        replica that took it over finds the cases already handed over)."""
        return self.leases.release(claim, {"$set": {"done": True, "handed_over": handed_over,
                                                    "finished_at": now}})


class PolicyRepository:
    """routing's `sla_policies`: one document per stored SLA policy (services/routing/
    policy.py), its current version on top and the versions it replaced in `history`
    (newest POLICY_HISTORY_KEPT). Every change is conditional on the version read, so of
    two managers editing one policy, one gets a 409. Cases never read this back: they
    keep copies of the clock specs they were armed with."""

    POLICY_HISTORY_KEPT = 100

    def __init__(self, db):
        self.policies = db["sla_policies"]

    @property
    def cache_key(self):
        """Which database this is, for caches of policies read from it."""
        return self.policies.full_name

    @staticmethod
    def ensure_indexes(db):
        db["sla_policies"].create_index([("active", ASCENDING)])

    def insert(self, doc):
        """False if a policy with this id exists already."""
        return insert_new(self.policies, dict(doc, _id=doc["policy_id"], history=[]))

    def get(self, policy_id):
        return self.policies.find_one({"_id": policy_id}, {"history": 0})

    def all(self):
        return list(self.policies.find({}, {"history": 0}).sort("_id", ASCENDING))

    def active(self):
        return list(self.policies.find({"active": True}, {"history": 0}))

    def replace(self, current, doc):
        """Store `doc` as the next version of `current` (the version read), keeping
        `current` in the history; None if the policy changed meanwhile."""
        previous = {k: v for k, v in current.items() if k not in ("_id", "history")}
        result = self.policies.update_one(
            {"_id": current["_id"], "version": current["version"]},
            {"$set": {k: v for k, v in doc.items() if k != "_id"},
             "$push": {"history": {"$each": [previous], "$slice": -self.POLICY_HISTORY_KEPT}}})
        return self.get(current["_id"]) if result.modified_count else None


class CalendarRepository:
    """routing's `calendars` (services/routing/calendar_flows.py): one document per
    store ("store:<id>": weekly slots, workday template, observes_holidays, closures), per
    brand ("brand:<id>": date overrides) and per published year ("year:<yyyy>": official
    holidays and make-up workdays). A store or brand PUT replaces its settings whole (the
    last writer wins, as PUT says); closures are appended atomically."""

    def __init__(self, db):
        self.calendars = db["calendars"]

    @staticmethod
    def ensure_indexes(db):
        db["calendars"].create_index([("kind", ASCENDING), ("year", ASCENDING)])  # years()

    @property
    def cache_key(self):
        """Which database this is, for caches of calendars built from it."""
        return self.calendars.full_name

    def store(self, store_id):
        return self.calendars.find_one({"_id": f"store:{store_id}"})

    def brand(self, brand_id):
        return self.calendars.find_one({"_id": f"brand:{brand_id}"})

    def year(self, year):
        return self.calendars.find_one({"_id": f"year:{year}"})

    def years(self):
        return list(self.calendars.find({"kind": "year"}).sort("year", ASCENDING))

    def _write(self, document_id, kind, changes, actor, now, **extra):
        self.calendars.update_one(
            {"_id": document_id},
            {"$set": dict(changes, kind=kind, updated_at=now, updated_by=actor, **extra), "$inc": {"version": 1}},
            upsert=True)

    def save_store(self, store_id, settings, actor, now):
        self._write(f"store:{store_id}", "store", settings, actor, now, store_id=store_id)

    def add_closure(self, store_id, closure, now):
        self.calendars.update_one(
            {"_id": f"store:{store_id}"},
            {"$push": {"closures": closure}, "$inc": {"version": 1},
             "$set": {"kind": "store", "store_id": store_id, "updated_at": now, "updated_by": closure["by"]}},
            upsert=True)

    def save_brand(self, brand_id, overrides, actor, now):
        self._write(f"brand:{brand_id}", "brand", {"overrides": overrides}, actor, now, brand_id=brand_id)

    def save_year(self, year, lists, actor, now):
        self._write(f"year:{year}", "year", lists, actor, now, year=year)
