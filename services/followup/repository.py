from pymongo import ASCENDING, ReturnDocument

from closeloop_shared.leases import Leases
from closeloop_shared.mongo import insert_new
from closeloop_shared.outbox import Outbox
from services.followup.revisits import RevisitStatus


class RevisitRepository:
    """followup's `revisits` collection: one revisit per (case, resolution round)."""

    def __init__(self, db):
        self.revisits = db["revisits"]
        self.outbox = Outbox(self.revisits)
        self.leases = Leases(self.revisits)

    @staticmethod
    def ensure_indexes(db):
        revisits = db["revisits"]
        revisits.create_index([("case_id", ASCENDING), ("round", ASCENDING)], unique=True)
        revisits.create_index([("status", ASCENDING), ("due_at", ASCENDING)])
        Outbox.ensure_indexes(revisits)

    def insert(self, revisit):
        return insert_new(self.revisits, revisit)

    def get(self, revisit_id):
        return self.revisits.find_one({"_id": revisit_id})

    def for_case(self, case_id):
        return list(self.revisits.find({"case_id": case_id}, {"outbox": 0}).sort("round", ASCENDING))

    def claim_due(self, now, event_for):
        """Move one due revisit to DUE with its followup_due event in its outbox, and
        return that event (None when nothing is due). With several replicas each revisit
        is announced exactly once: a replica leases the revisit (closeloop_shared.leases)
        while it builds the event, and the write that makes it DUE holds only under that
        lease. A replica dying in between leaves a lease that runs out in seconds."""
        claimed = self.leases.claim(
            {"status": RevisitStatus.SCHEDULED.value, "due_at": {"$lte": now}}, now=now)
        if claimed is None:
            return None
        event = event_for(claimed)
        if not self.leases.release(claimed, {
                "$set": {"status": RevisitStatus.DUE.value, "updated_at": now, "outbox_pending": True},
                "$push": {"outbox": event}}, where={"status": RevisitStatus.SCHEDULED.value}):
            # cancelled meanwhile (the case was reopened), or held past its lease and
            # taken over by another replica, which announces it
            self.leases.release(claimed)
            return None
        return event

    def cancel_open(self, case_id, now):
        """Revisits not yet answered for a case that was reopened: nobody should ask
        the customer about a resolution that no longer stands."""
        return self.revisits.update_many(
            {"case_id": case_id, "status": {"$in": [RevisitStatus.SCHEDULED.value, RevisitStatus.DUE.value]}},
            {"$set": {"status": RevisitStatus.CANCELLED.value, "updated_at": now}}).modified_count

    def complete(self, revisit_id, changes, event, now):
        """None if the revisit was already answered or cancelled."""
        return self.revisits.find_one_and_update(
            {"_id": revisit_id, "status": {"$in": [RevisitStatus.SCHEDULED.value, RevisitStatus.DUE.value]}},
            {"$set": dict(changes, updated_at=now, outbox_pending=True), "$push": {"outbox": event}},
            return_document=ReturnDocument.AFTER)
