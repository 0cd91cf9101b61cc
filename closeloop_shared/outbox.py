"""Transactional outbox inside the document: a write that causes events stores them in
the same document (`outbox`, with `outbox_pending` and `updated_at`) by the same atomic
update; the service then publishes and pulls them. If it crashes in between, the relay
timer publishes what is left. Delivery is at-least-once, so consumers are idempotent."""
import logging
from datetime import timedelta

from pymongo import ASCENDING

RELAY_GRACE = timedelta(seconds=5)
log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, collection):
        self.collection = collection

    @staticmethod
    def ensure_indexes(collection):
        collection.create_index([("outbox_pending", ASCENDING), ("updated_at", ASCENDING)])

    def flush(self, document_id, pending, publish):
        """Publish the events one write added (in order), then drop them from the
        outbox. Only the writer's own events: a concurrent writer publishes its own.
        Best effort: the write already happened, so a broker (or database) hiccup here
        is left to the relay instead of failing the caller, who would retry a done action:
        an HTTP request that stored its data never fails because of the bus."""
        try:
            for event in pending:
                publish(event["type"], event["payload"])
        except Exception as exc:  # the events stay in the outbox; the relay sends them
            log.warning("publish failed, left for the relay", extra={"error": str(exc)[:200]})
            return
        try:
            self._clear(document_id, pending)
        except Exception as exc:  # published but not cleared: the relay sends them again (idempotent)
            log.warning("outbox not cleared, the relay will republish", extra={"error": str(exc)[:200]})

    def _clear(self, document_id, pending):
        if not pending:  # e.g. two writers pulled each other's leftovers: just clear the flag
            self.collection.update_one({"_id": document_id, "outbox": []},
                                       {"$set": {"outbox_pending": False}})
            return
        # The usual case, one write: the outbox holds exactly these events.
        emptied = self.collection.update_one({"_id": document_id, "outbox": pending},
                                             {"$set": {"outbox": [], "outbox_pending": False}})
        if not emptied.modified_count:
            # Another writer's events are in there too: leave those (and the flag) be.
            self.collection.update_one(
                {"_id": document_id},
                {"$pull": {"outbox": {"id": {"$in": [e["id"] for e in pending]}}}})

    def relay(self, publish, now, limit=100):
        stale = list(self.collection.find(
            {"outbox_pending": True, "updated_at": {"$lt": now - RELAY_GRACE}}).limit(limit))
        for document in stale:
            self.flush(document["_id"], document["outbox"], publish)
        return len(stale)
