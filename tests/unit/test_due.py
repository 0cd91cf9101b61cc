"""The precise-timer schedule (closeloop_shared.due) without infrastructure: a settable
clock, an in-memory store with the DueItems contract, and several replicas' engines on
one store racing for the same items."""
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from closeloop_shared.due import DueSchedule, DueTimers, Upcoming

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
HORIZON = timedelta(seconds=20)
LEASE = timedelta(seconds=10)


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


class FakeItems:
    """DueItems in memory: {key: {"due_at", "lease_owner", "lease_until"}}; a claim is
    atomic (still due and unleased), as find_one_and_update makes it."""

    def __init__(self, clock):
        self.clock, self.docs, self.tokens, self.reads = clock, {}, 0, 0

    def put(self, key, due_at):
        self.docs[key] = {"_id": key, "due_at": due_at, "lease_owner": None, "lease_until": None}

    def upcoming(self, until, limit):
        self.reads += 1
        due = sorted((d for d in self.docs.values() if d["due_at"] and d["due_at"] <= until),
                     key=lambda d: d["due_at"])[:limit]
        return [Upcoming(d["_id"], d["due_at"], d["lease_until"]) for d in due]

    def one(self, key):
        doc = self.docs.get(key)
        return Upcoming(key, doc and doc["due_at"], doc and doc["lease_until"])

    def claim(self, key, now):
        doc = self.docs.get(key)
        if not doc or not doc["due_at"] or doc["due_at"] > now or (
                doc["lease_until"] and doc["lease_until"] > now):
            return None
        self.tokens += 1
        doc.update(lease_owner=self.tokens, lease_until=now + LEASE)
        return {"_id": key, "lease_owner": self.tokens}

    def release(self, claimed):
        doc = self.docs[claimed["_id"]]
        if doc["lease_owner"] != claimed["lease_owner"]:
            return False
        doc.update(lease_owner=None, lease_until=None)
        return True


class Worker:
    """The handler: records (key, when) and moves the item's deadline as a deadline
    check would (`then(key)` -> the next due_at or None), or fails."""

    def __init__(self, items, clock, then=lambda key: None, fails=()):
        self.items, self.clock, self.then, self.fails, self.ran = items, clock, then, set(fails), []

    def __call__(self, key, done):
        self.ran.append((key, self.clock()))
        if key in self.fails:
            done(False)
            return
        self.items.docs[key]["due_at"] = self.then(key)
        done(True)


def engine(items, clock, worker):
    return DueTimers(items, worker, HORIZON, clock=clock)


def run_due(*engines):
    """Each replica takes what is due now and tries to claim it, in turn."""
    for timers in engines:
        for key, _ in timers.take_due():
            timers.claim_and_fire(key)


def test_an_item_fires_at_its_moment_not_before():
    clock = Clock()
    items = FakeItems(clock)
    items.put("a", T0 + timedelta(seconds=5.25))
    worker = Worker(items, clock)
    timers = engine(items, clock, worker)
    timers.refresh()
    assert timers.seconds_to_next() == 5.25
    clock.advance(5.2)
    run_due(timers)
    assert worker.ran == []
    clock.advance(0.05)
    run_due(timers)
    assert worker.ran == [("a", T0 + timedelta(seconds=5.25))]
    assert timers.seconds_to_next() is None


def test_beyond_the_horizon_is_left_to_a_later_read():
    clock = Clock()
    items = FakeItems(clock)
    items.put("far", T0 + timedelta(hours=24))
    items.put("near", T0 + timedelta(seconds=19))
    timers = engine(items, clock, Worker(items, clock))
    timers.refresh()
    assert len(timers.schedule) == 1 and timers.seconds_to_next() == 19


def test_three_replicas_run_each_deadline_once_and_follow_the_next_one():
    """Every replica wakes at the moment; one claim wins; the winner's handler writes
    the next deadline (a step later), which the winner times at once and the others
    read at their next refresh. Each deadline runs exactly once."""
    clock = Clock()
    items = FakeItems(clock)
    items.put("case", T0 + timedelta(seconds=2))
    steps = iter([T0 + timedelta(seconds=3), T0 + timedelta(seconds=4), None])
    worker = Worker(items, clock, then=lambda key: next(steps))
    replicas = [engine(items, clock, worker) for _ in range(3)]
    for timers in replicas:
        timers.refresh()
    for _ in range(50):  # 5 s in steps of 100 ms, re-reading every second
        clock.advance(0.1)
        if round((clock.now - T0).total_seconds() * 10) % 10 == 0:
            for timers in replicas:
                timers.refresh()
        run_due(*replicas)
    assert [at for _, at in worker.ran] == [T0 + timedelta(seconds=s) for s in (2, 3, 4)]
    assert all(doc["lease_owner"] is None for doc in items.docs.values())


def test_a_deadline_missed_while_down_fires_once_at_the_first_read():
    clock = Clock()
    items = FakeItems(clock)
    items.put("missed", T0 - timedelta(minutes=30))
    worker = Worker(items, clock)
    replicas = [engine(items, clock, worker) for _ in range(2)]
    for timers in replicas:
        timers.refresh()
        assert timers.seconds_to_next() == 0
    run_due(*replicas)
    for timers in replicas:
        timers.refresh()
    run_due(*replicas)
    assert worker.ran == [("missed", T0)]


def test_an_item_another_replica_holds_is_tried_when_its_lease_ends():
    clock = Clock()
    items = FakeItems(clock)
    items.put("a", T0)
    stalled = items.claim("a", T0)  # a replica took it and died
    worker = Worker(items, clock)
    timers = engine(items, clock, worker)
    timers.refresh()
    assert timers.seconds_to_next() == LEASE.total_seconds()
    clock.advance(LEASE.total_seconds())
    run_due(timers)
    assert worker.ran == [("a", T0 + LEASE)]
    assert not items.release(stalled)


def test_a_failed_handler_keeps_its_lease_as_a_back_off():
    clock = Clock()
    items = FakeItems(clock)
    items.put("broken", T0)
    worker = Worker(items, clock, fails={"broken"})
    timers = engine(items, clock, worker)
    for _ in range(30):  # 3 s of re-reading every 100 ms
        timers.refresh()
        run_due(timers)
        clock.advance(0.1)
    assert len(worker.ran) == 1
    clock.advance(LEASE.total_seconds())
    timers.refresh()
    run_due(timers)
    assert len(worker.ran) == 2


def test_a_stale_copy_loses_the_claim_and_runs_nothing():
    clock = Clock()
    items = FakeItems(clock)
    items.put("a", T0 + timedelta(seconds=1))
    worker = Worker(items, clock)
    timers = engine(items, clock, worker)
    timers.refresh()
    items.docs["a"]["due_at"] = None  # resolved elsewhere after our read
    clock.advance(1)
    run_due(timers)
    assert worker.ran == []


def test_a_note_times_a_new_near_deadline_before_the_next_read():
    clock = Clock()
    items = FakeItems(clock)
    worker = Worker(items, clock)
    timers = engine(items, clock, worker)
    timers.refresh()
    items.put("new", T0 + timedelta(seconds=0.3))
    assert timers.note("new", T0 + timedelta(seconds=0.3))
    assert not timers.note("far", T0 + timedelta(hours=1))
    clock.advance(0.3)
    run_due(timers)
    assert worker.ran == [("new", T0 + timedelta(seconds=0.3))]


def test_a_note_made_while_a_read_was_in_flight_wins_over_that_read():
    schedule = DueSchedule(HORIZON)
    read_at = T0
    stale_read = [Upcoming("a", T0 + timedelta(seconds=5))]
    schedule.note(Upcoming("a", None), T0 + timedelta(milliseconds=10))  # resolved after the read began
    schedule.load(stale_read, read_at)
    assert len(schedule) == 0
    schedule.load(stale_read, T0 + timedelta(seconds=1))  # a read begun after the note is the truth
    assert schedule.pop_due(T0 + timedelta(seconds=5)) == [("a", T0 + timedelta(seconds=5))]


def test_moving_an_item_keeps_one_entry():
    schedule = DueSchedule(HORIZON)
    schedule.note(Upcoming("a", T0 + timedelta(seconds=3)), T0)
    schedule.note(Upcoming("a", T0 + timedelta(seconds=8)), T0)
    assert schedule.next_at() == T0 + timedelta(seconds=8)
    assert schedule.pop_due(T0 + timedelta(seconds=10)) == [("a", T0 + timedelta(seconds=8))]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(-5_000, 30_000)), max_size=40),
       st.lists(st.integers(0, 40_000), max_size=10))
def test_pop_due_gives_each_key_at_its_latest_moment_in_order(notes, pops):
    """Whatever the notes and pops: each pop returns, earliest first, the keys whose
    latest noted moment (within the horizon) has come, each at most once."""
    schedule = DueSchedule(HORIZON)
    latest = {}
    for key, ms in notes:
        at = T0 + timedelta(milliseconds=ms)
        if schedule.note(Upcoming(key, at), T0):
            latest[key] = at
        else:
            latest.pop(key, None)
    popped = []
    for ms in sorted(pops) + [40_000]:
        now = T0 + timedelta(milliseconds=ms)
        due = schedule.pop_due(now)
        assert [at for _, at in due] == sorted(at for _, at in due)
        assert all(at <= now for _, at in due)
        popped += due
    assert sorted(popped) == sorted(latest.items())
    assert len(schedule) == 0 and schedule.next_at() is None
