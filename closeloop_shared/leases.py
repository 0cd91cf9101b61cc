"""Claim-with-lease: how a replica takes one piece of due work (a delivery to send, a
revisit to announce) so that no other replica takes it meanwhile, and so that work held
by a replica that died is taken over within seconds, not after a fixed guess.

A claim sets `lease_owner` (a token unique to this claim) and `lease_until` (now + a
short lease, 10 s by default) on one due document, atomically (find_one_and_update):
the due filter excludes documents whose lease is still running. The owner renews the
lease while it works (`hold` renews in the background every third of the lease) and
releases it when done, usually in the same write that records the outcome. If the
owner dies, its lease runs out and the next claim takes the document again.

Queries: give the due filter an index that starts with its equality fields; the lease
condition is one more field on the same document (`lease_until`), never a top-level
$or (the MongoDB stand-in scans the collection for those)."""
import contextlib
import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from closeloop_shared.clock import utcnow

DEFAULT_LEASE = timedelta(seconds=10)
PROCESS = f"{socket.gethostname()}:{os.getpid()}"
log = logging.getLogger(__name__)


def new_token():
    """A lease owner: which process holds it (for people reading the data), and a
    random part unique to this claim (two workers of one process never share one)."""
    return f"{PROCESS}:{uuid.uuid4().hex[:12]}"


def not_leased(now):
    """The filter part that matches documents nobody holds at `now` (never leased,
    released, or whose lease ran out)."""
    return {"lease_until": {"$not": {"$gt": now}}}


class Leases:
    def __init__(self, collection, duration=DEFAULT_LEASE, clock=utcnow):
        self.collection, self.duration, self.clock = collection, duration, clock

    def claim(self, due, update=None, sort=None, now=None):
        """Atomically lease one document matching `due` that nobody holds, applying
        `update` (more $set/$inc/$push...) in the same write. The document as written,
        with its `lease_owner` token, or None when nothing is due."""
        now = now or self.clock()
        update = {op: dict(fields) for op, fields in (update or {}).items()}
        update.setdefault("$set", {}).update(lease_owner=new_token(), lease_until=now + self.duration)
        return self.collection.find_one_and_update(
            {**due, **not_leased(now)}, update, sort=sort, return_document=ReturnDocument.AFTER)

    def claim_by_id(self, document_id, due=None, now=None):
        """`claim` for one known document: lease it if it still matches `due` and nobody
        holds it. {"_id", "lease_owner"} (for renew/release), or None. One update_one
        through the _id index (find_one_and_update scans the whole collection on the
        MongoDB stand-in: ~250 ms at 5,000 case documents)."""
        now = now or self.clock()
        token = new_token()
        taken = self.collection.update_one(
            {**(due or {}), "_id": document_id, **not_leased(now)},
            {"$set": {"lease_owner": token, "lease_until": now + self.duration}})
        return {"_id": document_id, "lease_owner": token} if taken.modified_count else None

    def lease_fields(self, now=None):
        """lease_owner and lease_until for a document inserted already claimed."""
        return {"lease_owner": new_token(), "lease_until": (now or self.clock()) + self.duration}

    def renew(self, document, now=None):
        """Extend the lease; False if it is no longer ours (it ran out and was taken)."""
        now = now or self.clock()
        return self.collection.update_one(
            {"_id": document["_id"], "lease_owner": document["lease_owner"]},
            {"$set": {"lease_until": now + self.duration}}).modified_count == 1

    def release(self, document, update=None, where=None):
        """Give the document up, applying `update` in the same write (the outcome of
        the work) if it still matches `where`. False if the lease was no longer ours
        (someone took the work over) or `where` no longer holds."""
        update = {op: dict(fields) for op, fields in (update or {}).items()}
        update.setdefault("$set", {}).update(lease_owner=None, lease_until=None)
        return self.collection.update_one(
            {**(where or {}), "_id": document["_id"], "lease_owner": document["lease_owner"]},
            update).modified_count == 1

    @contextlib.contextmanager
    def hold(self, document, every=None):
        """Renew the lease on `document` in the background while the block runs."""
        every = (every or self.duration / 3).total_seconds()
        done = threading.Event()

        def renew():
            while not done.wait(every):
                try:
                    if not self.renew(document):
                        log.warning("lease lost while working", extra={"document_id": str(document["_id"])})
                        return
                except Exception as exc:  # storage blinked: try again at the next beat
                    log.warning("lease renewal failed", extra={"error": str(exc)[:200]})

        renewer = threading.Thread(target=renew, name="lease-renewer", daemon=True)
        renewer.start()
        try:
            yield document
        finally:
            done.set()
            renewer.join()


class ClaimTable:
    """Leases on the documents of another collection, kept in a small collection of their
    own: one tiny document per key held ({_id: key, lease_owner, lease_until}), inserted
    to claim, deleted to release. Claiming a large document in place costs two writes of
    that document (claim, release), and the MongoDB stand-in rewrites the whole document
    and every index entry of its collection for each: ~12-17 ms for a routing case
    (11 indexes) against ~1-2 ms for an insert into this table (the _id index and a TTL
    index only).

    The claim cannot say in the same write that the item is still due: the caller checks
    that after claiming (a read), and gives the claim back if it is not."""

    EXPIRED_KEPT = timedelta(hours=1)  # a lease run out this long ago is a dead replica's: swept

    def __init__(self, collection, duration=DEFAULT_LEASE, clock=utcnow):
        self.collection, self.duration, self.clock = collection, duration, clock

    def ensure_indexes(self):
        """held() queries lease_until; the TTL sweeps claims nobody took over (their
        item stopped falling due): the table only ever holds what is being worked on."""
        self.collection.create_index([("lease_until", ASCENDING)],
                                     expireAfterSeconds=int(self.EXPIRED_KEPT.total_seconds()))

    def claim(self, key, now=None):
        """{"_id", "lease_owner"} if `key` was free (never claimed, released, or its
        lease ran out) and is now ours; None while someone else's lease runs."""
        now = now or self.clock()
        lease = {"lease_owner": new_token(), "lease_until": now + self.duration}
        try:  # one write whoever wins: takes a lease that ran out, or inserts a new one
            self.collection.update_one({"_id": key, "lease_until": {"$lte": now}}, {"$set": lease}, upsert=True)
        except DuplicateKeyError:  # the key is there and its lease still runs: someone else's
            return None
        return {"_id": key, "lease_owner": lease["lease_owner"]}

    def release(self, claimed):
        """False if the lease was no longer ours (it ran out and was taken over)."""
        return self.collection.delete_one(
            {"_id": claimed["_id"], "lease_owner": claimed["lease_owner"]}).deleted_count == 1

    def held(self, now=None):
        """{key: lease_until} of the leases running at `now`."""
        now = now or self.clock()
        return {doc["_id"]: doc["lease_until"]
                for doc in self.collection.find({"lease_until": {"$gt": now}}, {"lease_until": 1})}
