"""Precise timers for due work: each replica fires what falls due at the moment it falls
due, not at its next scan.

Every replica keeps in memory what falls due within a short horizon (DUE_HORIZON_SECONDS,
20 s by default), read from an index by one cheap query every DUE_REFRESH_SECONDS (1 s)
and told at once of a near deadline this replica writes itself (`DueNotice`). A green
thread sleeps until the earliest moment, then claims the item with a lease kept in a
small table of its own (closeloop_shared.leases.ClaimTable, `<collection>_due_claims`:
the item document is written by the work alone, not also to claim and release it), so
of all replicas exactly one runs the service's handler for it; the lease is released
when the handler is done.

- A deadline missed while every replica was down is simply overdue: the first refresh
  after start reads it (due <= now + horizon) and it fires at once, once.
- An item leased by another replica is tried again when that lease ends (a replica that
  died mid-work is taken over within a lease, 10 s); so is one whose handler failed
  here: the lease is left to run out, a back-off instead of a hot loop.
- After claiming, the item is read: a replica whose copy is stale (the item was handled
  or moved meanwhile) finds it no longer due, gives the claim back and does nothing.
- Keep a periodic scan as the safety net (say, a broker or database outage longer than
  the horizon); the handler must tolerate racing it (conditional writes).

Use: `@due_timer("cases", "next_check_at")` on a service method taking the item's _id;
index the due field (after the equality fields of `where`, if any).
"""
import heapq
import itertools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import eventlet
from eventlet.event import Event
from eventlet.queue import Empty, LightQueue
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, Entrypoint

from closeloop_shared.clock import utcnow
from closeloop_shared.config import DUE_HORIZON_SECONDS, DUE_REFRESH_SECONDS, setting
from closeloop_shared.leases import ClaimTable
from closeloop_shared.mongo import connect_service_db, migrate_indexes

log = logging.getLogger(__name__)
READ_LIMIT = 2000  # items per refresh: more than that within the horizon fire in due order
# Due work runs in at most this share of the container's workers (max_workers), so that a
# burst of it (everything that fell due while all replicas were down, say) never leaves
# the HTTP API, /health and the event handlers waiting for a worker.
WORKER_SHARE = 0.5


@dataclass(frozen=True)
class Upcoming:
    """One item as the index has it: when it falls due, and until when another claim
    holds it (None if nobody does)."""
    key: object
    due_at: datetime
    lease_until: datetime | None = None

    def fires_at(self):
        return max(self.due_at, self.lease_until) if self.lease_until else self.due_at


class DueSchedule:
    """What falls due within `horizon`, earliest first. Pure: times come in as
    arguments. One entry per key; a later word about a key replaces the earlier one."""

    def __init__(self, horizon):
        self.horizon = horizon
        self._entries = {}  # key -> Upcoming
        self._heap = []  # (fires_at, seq, key, Upcoming); stale rows are skipped when popped
        self._seq = itertools.count()
        self._notes = {}  # key -> (noted_at, Upcoming | None): newer than any read in flight

    def __len__(self):
        return len(self._entries)

    def _put(self, item):
        self._entries[item.key] = item
        heapq.heappush(self._heap, (item.fires_at(), next(self._seq), item.key, item))

    def load(self, upcoming, read_at):
        """Replace the schedule with a fresh read of the index taken at `read_at`
        (items handled elsewhere drop out, moved ones move). A note made after the
        read began wins over what the read says about that key."""
        self._notes = {k: v for k, v in self._notes.items() if v[0] > read_at}
        self._entries, self._heap = {}, []
        for item in upcoming:
            if item.key not in self._notes:
                self._put(item)
        for _, item in self._notes.values():
            if item is not None:
                self._put(item)

    def note(self, item, now):
        """A deadline this replica just wrote (`item.due_at` None: the item has no
        deadline any more). True when it is within the horizon, hence scheduled."""
        key = item.key
        near = item.due_at is not None and item.fires_at() <= now + self.horizon
        self._notes[key] = (now, item if near else None)
        self._entries.pop(key, None)
        if near:
            self._put(item)
        return near

    def pop_due(self, now):
        """[(key, due_at)] whose moment has come, earliest first; they leave the schedule
        (the claim decides who runs them; the next read brings back what is still due)."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, _, key, item = heapq.heappop(self._heap)
            if self._entries.get(key) is item:
                del self._entries[key]
                due.append((key, item.due_at))
        return due

    def next_at(self):
        """The earliest moment in the schedule, or None."""
        while self._heap and self._entries.get(self._heap[0][2]) is not self._heap[0][3]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None


class DueItems:
    """The store side: due documents of one collection, found by `field` (a datetime,
    None or absent when nothing is due) and taken with a lease kept apart, in
    `<collection>_due_claims` (closeloop_shared.leases.ClaimTable): the item itself is
    written only by the work, never to claim or release it."""

    def __init__(self, collection, field, where=None, lease=None):
        self.collection, self.field, self.where = collection, field, dict(where or {})
        self.claims = ClaimTable(collection.database[f"{collection.name}_due_claims"],
                                 **({"duration": lease} if lease else {}))

    def ensure_indexes(self):
        self.claims.ensure_indexes()

    def upcoming(self, until, limit=READ_LIMIT):
        """Items due by `until` (overdue ones included), earliest first, each with the
        end of the lease another replica holds on it, if any."""
        found = list(self.collection.find({**self.where, self.field: {"$lte": until}},
                                          {self.field: 1}).sort(self.field, 1).limit(limit))
        held = self.claims.held() if found else {}
        return [Upcoming(doc["_id"], doc.get(self.field), held.get(doc["_id"])) for doc in found]

    def one(self, key):
        """The item's current deadline (Upcoming with due_at None when it has none)."""
        doc = self.collection.find_one({"_id": key, **self.where}, {self.field: 1})
        return Upcoming(key, doc.get(self.field)) if doc else Upcoming(key, None)

    def claim(self, key, now):
        """The item leased to us if it is still due at `now` and nobody holds it; else
        None. Claimed first, then read: a replica whose copy is stale (the item was
        handled or moved meanwhile) finds it no longer due and gives the claim back."""
        claimed = self.claims.claim(key, now)
        if claimed is None:
            return None
        if not self._still_due(key, now):
            self.claims.release(claimed)
            return None
        return claimed

    def _still_due(self, key, now):
        """Read by _id alone, compared here: the MongoDB stand-in looks up a filter of _id
        alone directly, while _id with more fields goes through its planner, which weighs
        every index of the collection first (11 on routing's cases)."""
        if any(isinstance(value, dict) or "." in name for name, value in self.where.items()):  # the server decides
            return self.collection.find_one({"_id": key, **self.where, self.field: {"$lte": now}},
                                            {"_id": 1}) is not None
        doc = self.collection.find_one({"_id": key}, {self.field: 1, **{name: 1 for name in self.where}})
        return (doc is not None and all(doc.get(name) == value for name, value in self.where.items())
                and doc.get(self.field) is not None and doc[self.field] <= now)

    def release(self, claimed):
        return self.claims.release(claimed)


class DueTimers:
    """The engine, apart from threads: read the index into the schedule, say how long
    to sleep, claim and fire what is due. `fire(key, done)` starts the work and calls
    `done(succeeded)` when it ends (at once or later)."""

    def __init__(self, items, fire, horizon, clock=utcnow, limit=READ_LIMIT):
        self.items, self.fire, self.clock, self.limit = items, fire, clock, limit
        self.schedule = DueSchedule(horizon)
        self.read_at = None  # the last successful read of the index (readiness: /health/ready)

    def refresh(self):
        read_at = self.clock()
        self.schedule.load(self.items.upcoming(read_at + self.schedule.horizon, self.limit), read_at)
        self.read_at = read_at

    def note(self, key, due_at):
        """A deadline this replica wrote for `key` (None: it has none any more)."""
        return self.schedule.note(Upcoming(key, due_at), self.clock())

    def take_due(self):
        return self.schedule.pop_due(self.clock())

    def seconds_to_next(self):
        at = self.schedule.next_at()
        return None if at is None else max(0.0, (at - self.clock()).total_seconds())

    def claim_and_fire(self, key):
        """True if this replica won the item and started its work."""
        claimed = self.items.claim(key, self.clock())
        if claimed is None:
            return False
        self.fire(key, partial(self._done, claimed))
        return True

    def _done(self, claimed, succeeded):
        """Release the claim and schedule the item's next deadline at once (the work
        usually wrote one). A failed item keeps its lease: it comes back when the lease
        ends (or the safety-net scan deals with it)."""
        if succeeded:
            self.items.release(claimed)
            self.schedule.note(self.items.one(claimed["_id"]), self.clock())


class DueTimer(Entrypoint):
    """The nameko entrypoint: `@due_timer(collection, field, where=None)` runs the
    decorated method with the item's _id in exactly one replica when the item falls due.
    Its greenthreads: one re-reads the index every DUE_REFRESH_SECONDS, one sleeps until
    the next moment and hands due items to claimers."""

    def __init__(self, collection, field, where=None, lease=None, **kwargs):
        self.collection, self.field, self.where, self.lease = collection, field, where, lease
        super().__init__(**kwargs)

    def setup(self):
        config = self.container.config
        self.refresh_every = float(setting(config, DUE_REFRESH_SECONDS))
        horizon = timedelta(seconds=float(setting(config, DUE_HORIZON_SECONDS)))
        self.client, database = connect_service_db(config, self.container.service_name)
        items = DueItems(database[self.collection], self.field, self.where, self.lease)
        claims = items.claims.collection.name
        try:  # built once per change across replicas, like every repository's indexes
            migrate_indexes(database, f"due_claims:{claims}", lambda db: ClaimTable(db[claims]).ensure_indexes())
        except Exception as exc:  # housekeeping only (claims work unindexed): the next start builds it
            log.warning("due timers: indexing the claims failed", extra={
                "collection": self.collection, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        self.timers = DueTimers(items, self._spawn_worker, horizon)
        self.claimers = eventlet.GreenPool(max(1, int(self.container.max_workers * WORKER_SHARE)))
        self.wakeups, self.stopping, self.threads = LightQueue(), Event(), []
        self.working = set()  # an Event per handler running, sent when its claim is released

    def start(self):
        self.threads = [self.container.spawn_managed_thread(self._keep_reading),
                        self.container.spawn_managed_thread(self._keep_firing)]

    def stop(self):
        self.stopping.send(True)
        self.wake()
        for thread in self.threads:
            thread.wait()
        self.claimers.waitall()
        for finished in list(self.working):  # their claims are released through our client
            finished.wait()
        self.client.close()

    def kill(self):
        if not self.stopping.ready():
            self.stopping.send(True)
        for thread in self.threads:
            thread.kill()
        self.client.close()

    def wake(self):
        self.wakeups.put(None)

    def read_age(self):
        """Seconds since the index was last read (None: not yet): a stalled deadline scan."""
        read_at = self.timers.read_at
        return None if read_at is None else (utcnow() - read_at).total_seconds()

    def stale_after(self):
        return max(3 * self.refresh_every, 30.0)

    def note(self, key, due_at):
        if self.timers.note(key, due_at):
            self.wake()

    def _keep_reading(self):
        while not self.stopping.ready():
            try:
                self.timers.refresh()
                self.wake()
            except Exception as exc:  # the database blinked: the next read catches up
                log.warning("due timers: reading the index failed", extra={
                    "collection": self.collection, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            self.stopping.wait(self.refresh_every)

    def _keep_firing(self):
        while not self.stopping.ready():
            for key, _ in self.timers.take_due():
                self.claimers.spawn_n(self._claim, key)
            try:
                self.wakeups.get(timeout=self.timers.seconds_to_next())
            except Empty:
                pass

    def _claim(self, key):
        if self.stopping.ready():
            return
        try:
            self.timers.claim_and_fire(key)
        except Exception as exc:  # stays due: the next read brings it back
            log.warning("due timers: claim failed", extra={
                "collection": self.collection, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})

    def _spawn_worker(self, key, done):
        finished = Event()
        self.working.add(finished)
        try:
            self.container.spawn_worker(self, (key,), {},
                                        handle_result=partial(self._handled, done, finished))
        except ContainerBeingKilled:
            self._handled(done, finished, None, None, None)  # nothing ran: give the item back
        finished.wait()  # the claimer stays busy while its worker runs: claimers bound the workers

    def _handled(self, done, finished, worker_ctx, result, exc_info):
        # runs in the worker's greenthread: nothing may escape from here
        try:
            done(exc_info is None)
        except Exception as exc:  # the lease runs out by itself
            log.warning("due timers: release failed", extra={
                "collection": self.collection, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        finally:
            self.working.discard(finished)
            finished.send(True)
        return result, exc_info


due_timer = DueTimer.decorator


class DueNotice(DependencyProvider):
    """`notice(key, due_at)`: tell this container's due timers on (collection, field) of
    a deadline the worker just wrote, so one nearer than the next read is not late."""

    def __init__(self, collection, field, **kwargs):
        self.collection, self.field = collection, field
        super().__init__(**kwargs)

    def get_dependency(self, worker_ctx):
        timers = [e for e in self.container.entrypoints if isinstance(e, DueTimer)
                  and (e.collection, e.field) == (self.collection, self.field)]
        return lambda key, due_at: [timer.note(key, due_at) for timer in timers]
