import contextlib
import hashlib
import logging

from pymongo import ASCENDING, ReturnDocument

from closeloop_shared.leases import Leases, not_leased
from closeloop_shared.mongo import insert_new

log = logging.getLogger(__name__)


def identity(case_id, kind, recipient):
    """One identity per logical notification, the same on every attempt and replica:
    (idempotency key, Message-ID), both derived from the delivery's key. A receiver (a
    mail client, an HTTP gateway) that sees the same one twice can drop the copy."""
    key = f"{case_id}:{kind}:{recipient or ''}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return digest, f"<{digest}@closeloop>"


class DeliveryRepository:
    """notify's `deliveries` collection: one document per (case, kind, recipient),
    holding the rendered message so a failed send can be retried without its event.

    A delivery being sent is leased (closeloop_shared.leases): its sender renews the
    lease while it talks to the provider; if the sender dies the lease runs out within
    seconds and another replica takes the delivery over. That takeover is the one
    window for a repeat (the dead sender may have handed the message over before it
    could record it): the delivery is marked `possible_repeat` and its `attempt_log`
    shows the attempt that never recorded an outcome. The copy carries the same
    Message-ID, so it is recognisable."""

    def __init__(self, db):
        self.deliveries = db["deliveries"]
        self.leases = Leases(self.deliveries)

    @staticmethod
    def ensure_indexes(db):
        deliveries = db["deliveries"]
        deliveries.create_index([("case_id", ASCENDING), ("kind", ASCENDING),
                                 ("recipient", ASCENDING)], unique=True)
        deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        deliveries.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
        # per-recipient daily counters (services/notify/quota.py), forgotten after a day
        db["recipient_counts"].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)

    def claim_new(self, message, now):
        """The delivery document, leased to the caller, if this call created it; else
        None (a redelivered event: already sent or being sent)."""
        idempotency_key, message_id = identity(message.case_id, message.kind, message.recipient)
        lease = self.leases.lease_fields(now)
        document = {
            "case_id": message.case_id, "kind": message.kind, "recipient": message.recipient,
            "store_id": message.store_id,
            "channel": "email", "subject": message.subject, "body": message.body,
            "message_id": message_id, "idempotency_key": idempotency_key,
            "status": "sending", "attempts": 1, "possible_repeat": False,
            "attempt_log": [{"started_at": now, "by": lease["lease_owner"]}],
            "created_at": now, "updated_at": now, **lease,
        }
        return document if insert_new(self.deliveries, document) else None

    def _claim(self, due, now, extra_set=None):
        update = {"$set": {"status": "sending", "updated_at": now, **(extra_set or {})},
                  "$inc": {"attempts": 1}}
        claimed = self.leases.claim(due, update, now=now)
        if claimed is None:
            return None
        # the attempt entry names the claim's own token, so it is pushed once the token is known
        entry = {"started_at": now, "by": claimed["lease_owner"]}
        self.deliveries.update_one({"_id": claimed["_id"], "lease_owner": claimed["lease_owner"]},
                                   {"$push": {"attempt_log": entry}})
        claimed.setdefault("attempt_log", []).append(entry)
        return claimed

    def claim_retry(self, now):
        """One failed delivery whose retry time has come, leased to the caller."""
        return self._claim({"status": "failed", "next_attempt_at": {"$lte": now}}, now)

    def claim_stalled(self, now):
        """One delivery whose sender died mid-send (its lease ran out), leased to the
        caller and marked as a possible repeat."""
        claimed = self._claim({"status": "sending", **not_leased(now)}, now, {"possible_repeat": True})
        if claimed is None:
            return None
        log_ = claimed["attempt_log"]
        if len(log_) >= 2 and "outcome" not in log_[-2]:
            field = f"attempt_log.{len(log_) - 2}"
            self.deliveries.update_one(
                {"_id": claimed["_id"], "lease_owner": claimed["lease_owner"]},
                {"$set": {f"{field}.outcome": "unrecorded", f"{field}.finished_at": now}})
            log_[-2].update(outcome="unrecorded", finished_at=now)
        log.warning("delivery taken over from a sender that stopped", extra={
            "case_id": claimed["case_id"], "kind": claimed["kind"], "attempts": claimed["attempts"]})
        return claimed

    def hold(self, delivery):
        """Renew the delivery's lease while the block runs (a send in progress)."""
        if not delivery.get("lease_owner"):
            return contextlib.nullcontext(delivery)
        return self.leases.hold(delivery)

    def count_for_recipient(self, key, expires_at):
        """Count one more message for a recipient's day; the new count."""
        return self.deliveries.database["recipient_counts"].find_one_and_update(
            {"_id": key}, {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": expires_at}},
            upsert=True, return_document=ReturnDocument.AFTER)["n"]

    def finish(self, delivery, status, now, error=None, next_attempt_at=None):
        """Record an attempt's outcome and release the lease: sent, failed (retry at
        next_attempt_at), abandoned (no more retries) or undeliverable (no address).
        False if another replica took the delivery over meanwhile (its outcome counts)."""
        changes = {"status": status, "updated_at": now, "error": error,
                   "next_attempt_at": next_attempt_at}
        if status == "sent":
            changes["sent_at"] = now
        attempt = len(delivery.get("attempt_log") or []) - 1
        if attempt >= 0:
            changes[f"attempt_log.{attempt}.outcome"] = status
            changes[f"attempt_log.{attempt}.finished_at"] = now
        if not delivery.get("lease_owner"):  # a delivery from before leases
            return self.deliveries.update_one({"_id": delivery["_id"]}, {"$set": changes}).modified_count == 1
        released = self.leases.release(delivery, {"$set": changes})
        if not released:
            log.warning("delivery was taken over before its outcome was recorded", extra={
                "case_id": delivery["case_id"], "kind": delivery["kind"], "outcome": status})
        return released

    def for_case(self, case_id):
        return list(self.deliveries.find({"case_id": case_id}).sort("created_at", ASCENDING))
