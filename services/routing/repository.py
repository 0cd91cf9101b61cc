from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from closeloop_shared.leases import Leases
from closeloop_shared.mongo import insert_new
from closeloop_shared.auth import SNAPSHOT_ID, IntegrationStore, OrgStore
from closeloop_shared.outbox import Outbox
from services.routing.lifecycle import ACTIVE


class CaseRepository:
    """routing's `cases` collection. Every write is conditional on the version read
    (optimistic concurrency): with several routing replicas, a deadline check and a
    staff action racing on one case cannot both win, so each breach escalates once.

    Events a write causes go in the same document's outbox (closeloop_shared.outbox)."""

    def __init__(self, db):
        self.cases = db["cases"]
        self.outbox = Outbox(self.cases)

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

    def insert(self, case):
        return insert_new(self.cases, case)

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

    def update(self, case, changes, entries, events, now):
        """The updated case, or None when someone else changed it first."""
        update = {"$set": dict(changes, updated_at=now), "$inc": {"version": 1}}
        push = {}
        if entries:
            push["timeline"] = {"$each": entries}
        if events:
            push["outbox"] = {"$each": events}
            update["$set"]["outbox_pending"] = True
        if push:
            update["$push"] = push
        result = self.cases.update_one({"_id": case["_id"], "version": case["version"]}, update)
        return self.get(case["_id"]) if result.modified_count else None

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
