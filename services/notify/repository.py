from datetime import timedelta

from pymongo import ASCENDING, ReturnDocument

from closeloop_shared.mongo import insert_new

# A delivery stuck in SENDING this long belongs to a replica that died mid-send.
STUCK_AFTER = timedelta(minutes=5)


class DeliveryRepository:
    """notify's `deliveries` collection: one document per (case, kind, recipient),
    holding the rendered message so a failed send can be retried without its event."""

    def __init__(self, db):
        self.deliveries = db["deliveries"]

    @staticmethod
    def ensure_indexes(db):
        deliveries = db["deliveries"]
        deliveries.create_index([("case_id", ASCENDING), ("kind", ASCENDING),
                                 ("recipient", ASCENDING)], unique=True)
        deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        deliveries.create_index([("status", ASCENDING), ("updated_at", ASCENDING)])

    def claim_new(self, message, now):
        """The delivery document if this call created it, else None (already handled)."""
        document = {
            "case_id": message.case_id, "kind": message.kind, "recipient": message.recipient,
            "channel": "email", "subject": message.subject, "body": message.body,
            "status": "sending", "attempts": 1, "created_at": now, "updated_at": now,
        }
        return document if insert_new(self.deliveries, document) else None

    def claim_retry(self, now):
        """One failed (or stuck) delivery whose retry time has come, claimed atomically."""
        for due in ({"status": "failed", "next_attempt_at": {"$lte": now}},
                    {"status": "sending", "updated_at": {"$lte": now - STUCK_AFTER}}):
            claimed = self.deliveries.find_one_and_update(
                due, {"$set": {"status": "sending", "updated_at": now}, "$inc": {"attempts": 1}},
                return_document=ReturnDocument.AFTER)
            if claimed:
                return claimed
        return None

    def finish(self, delivery_id, status, now, error=None, next_attempt_at=None):
        """Record an attempt's outcome: sent, failed (retry at next_attempt_at),
        abandoned (no more retries) or undeliverable (no address)."""
        changes = {"status": status, "updated_at": now, "error": error,
                   "next_attempt_at": next_attempt_at}
        if status == "sent":
            changes["sent_at"] = now
        self.deliveries.update_one({"_id": delivery_id}, {"$set": changes})

    def for_case(self, case_id):
        return list(self.deliveries.find({"case_id": case_id}).sort("created_at", ASCENDING))
