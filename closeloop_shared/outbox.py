"""Transactional outbox inside the document: a write that causes events stores them in
the same document (`outbox`, with `outbox_pending` and `updated_at`) by the same atomic
update; the service then publishes and pulls them. If it crashes in between, the relay
timer publishes what is left. Delivery is at-least-once, so consumers are idempotent.

Clearing is batched by group commit: a worker whose clear finds nobody writing writes it
at once; clears that arrive meanwhile from the process's other workers wait, and one of
them writes them all as the next round (one round trip for the lot). Each caller returns
once its own clear is written, as before. A clear lost to a crash is the relay's to redo,
as a failed one always was.

Each relay run also measures what is still waiting, for Prometheus (every series exists
from the start, when the service ensures the outbox's index):
closeloop_outbox_backlog_messages{service, collection} (events written, not yet published)
and closeloop_outbox_oldest_age_seconds{service, collection} (since the last write of the
oldest document flagged pending; 0 when none). Every replica measures the same
collection: aggregate with max, never sum."""
import logging
import threading
from datetime import timedelta, timezone

from prometheus_client import Gauge
from pymongo import ASCENDING, UpdateOne

RELAY_GRACE = timedelta(seconds=5)
log = logging.getLogger(__name__)

BACKLOG_MESSAGES = Gauge("closeloop_outbox_backlog_messages",
                         "Events written to an outbox and not yet published", ["service", "collection"])
OLDEST_AGE = Gauge("closeloop_outbox_oldest_age_seconds",
                   "Age of the oldest outbox document still holding unpublished events (0: none)",
                   ["service", "collection"])


def labels_of(collection):
    """(service, collection): a service's database is named <prefix>_<service>."""
    return collection.database.name.rsplit("_", 1)[-1], collection.name


class _Clears:
    """A collection's outbox clears waiting to be written, and whether a worker is
    writing a round of them (the others wait for it: `turn`)."""

    def __init__(self):
        self.turn = threading.Condition()
        self.waiting = []
        self.writing = False


class _Clear:
    def __init__(self, document_id, pending):
        self.document_id, self.pending = document_id, pending
        self.done, self.error = False, None


_clears = {}
_clears_guard = threading.Lock()


def _clears_of(collection_name):
    with _clears_guard:
        return _clears.setdefault(collection_name, _Clears())


class Outbox:
    def __init__(self, collection):
        self.collection = collection

    @staticmethod
    def ensure_indexes(collection):
        collection.create_index([("outbox_pending", ASCENDING), ("updated_at", ASCENDING)])
        BACKLOG_MESSAGES.labels(*labels_of(collection))  # the series exist before the first relay
        OLDEST_AGE.labels(*labels_of(collection))

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
        """Group commit: wait while another worker writes a round; then, unless that round
        took this clear, write every clear waiting (this one among them) as the next
        round. A caller returns once its own clear is written (or raises its round's
        error), at most two rounds after it came."""
        clears, mine = _clears_of(self.collection.full_name), _Clear(document_id, pending)
        with clears.turn:
            clears.waiting.append(mine)
            while clears.writing and not mine.done:
                clears.turn.wait()
            if not mine.done:
                clears.writing = True
                batch, clears.waiting = clears.waiting, []
        if not mine.done:
            error = RuntimeError("the worker writing this round was stopped")
            try:
                self._clear_batch([(clear.document_id, clear.pending) for clear in batch])
                error = None
            except Exception as exc:  # the round's documents are the relay's: each caller hears why
                error = exc
            finally:  # even when the writer is killed (GreenletExit): the others must not wait for ever
                with clears.turn:
                    for clear in batch:
                        clear.done, clear.error = True, error
                    clears.writing = False
                    clears.turn.notify_all()
        if mine.error is not None:
            raise mine.error

    def _clear_batch(self, batch):
        """The usual case, one round trip: each document's outbox holds exactly the events
        its writer published. Otherwise (another writer's events are in some of them too)
        pull just the published ones, and drop the flag where nothing is left."""
        exact = [UpdateOne({"_id": document_id, "outbox": pending} if pending else {"_id": document_id, "outbox": []},
                           {"$set": {"outbox": [], "outbox_pending": False}}) for document_id, pending in batch]
        if self.collection.bulk_write(exact, ordered=False).matched_count == len(batch):
            return
        with_events = [(document_id, pending) for document_id, pending in batch if pending]
        if with_events:
            self.collection.bulk_write([UpdateOne({"_id": document_id}, {"$pull": {"outbox": {"id": {"$in": [
                event["id"] for event in pending]}}}}) for document_id, pending in with_events], ordered=False)
            self.collection.bulk_write([UpdateOne({"_id": document_id, "outbox": []}, {"$set": {"outbox_pending": False}})
                                        for document_id, _ in with_events], ordered=False)

    def relay(self, publish, now, limit=100):
        stale = list(self.collection.find(
            {"outbox_pending": True, "updated_at": {"$lt": now - RELAY_GRACE}}).limit(limit))
        for document in stale:
            self.flush(document["_id"], document["outbox"], publish)
        try:
            self.measure(now)
        except Exception as exc:  # the gauges keep their last value; relaying matters more
            log.warning("outbox backlog not measured", extra={"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        return len(stale)

    def backlog(self, now):
        """(events waiting, seconds since the oldest waiting document was written): one
        aggregation over the (outbox_pending, updated_at) index."""
        found = list(self.collection.aggregate([
            {"$match": {"outbox_pending": True}},
            {"$group": {"_id": None, "messages": {"$sum": {"$size": {"$ifNull": ["$outbox", []]}}},
                        "oldest": {"$min": "$updated_at"}}}]))
        if not found or found[0]["oldest"] is None:
            return 0, 0.0
        oldest = found[0]["oldest"]
        if oldest.tzinfo is None:  # the driver hands back naive UTC unless told otherwise
            oldest = oldest.replace(tzinfo=timezone.utc)
        return found[0]["messages"], max(0.0, (now - oldest).total_seconds())

    def measure(self, now):
        messages, age = self.backlog(now)
        labels = labels_of(self.collection)
        BACKLOG_MESSAGES.labels(*labels).set(messages)
        OLDEST_AGE.labels(*labels).set(age)
