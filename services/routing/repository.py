from pymongo import ASCENDING

from closeloop_shared.mongo import insert_new
from closeloop_shared.outbox import Outbox


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

    def insert(self, case):
        return insert_new(self.cases, case)

    def get(self, case_id):
        return self.cases.find_one({"_id": case_id})

    def find(self, store_id=None, status=None, limit=50):
        query = {k: v for k, v in (("store_id", store_id), ("status", status)) if v}
        return list(self.cases.find(query, {"outbox": 0}).sort("submitted_at", -1).limit(limit))

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
