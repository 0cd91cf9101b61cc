"""Folding pending increments into the report buckets (services/reporting/facts.py's sums,
flows.fold / fold_all) with an in-memory repository: each touched bucket is incremented
once per batch with the batch's sum; a fold that fails part-way commits nothing and the
next one applies everything once; nobody folds while another holds the folder."""
import contextlib
import copy
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.reporting import facts, flows, metrics

BUCKETS = st.sampled_from(["store:S1:day:2026-11-24", "store:S1:month:2026-11", "region:east:day:2026-11-24"])
PATHS = st.sampled_from(["c.hygiene.cases", "c.hygiene.status:new", "c.hygiene.status:assigned", "s.a.assigned"])
DELTAS = st.dictionaries(BUCKETS, st.dictionaries(PATHS, st.integers(-3, 3), max_size=4), max_size=3)


class FoldingRepository:
    """The storage fold needs, in memory, with transactions: `atomically` works on a copy
    and keeps it only if the work returns (a failure rolls everything back)."""

    def __init__(self, fail_unqueue=False):
        self.state = {"buckets": {}, "pending": {}}
        self.increments = []  # each increment() call: the buckets it touched
        self.fail_unqueue = fail_unqueue
        self.held_elsewhere = 0  # how many more folding() calls find the folder taken

    def queue(self, key, increments, queued_at):
        assert key not in self.state["pending"]
        self.state["pending"][key] = {"_id": key, "queued_at": queued_at, "increments": increments}

    def atomically(self, work):
        saved = copy.deepcopy(self.state)
        try:
            work(session="tx")
        except Exception:
            self.state = saved
            raise

    def pending_batch(self, limit, session=None):
        assert session == "tx"
        ordered = sorted(self.state["pending"].values(), key=lambda p: p["queued_at"])
        return [dict(p) for p in ordered[:limit]]

    def increment(self, delta, session=None):
        assert session == "tx"
        self.increments.append(sorted(delta))
        for bucket, paths in delta.items():
            self.state["buckets"].setdefault(bucket, Counter()).update(paths)

    def unqueue(self, keys, session=None):
        assert session == "tx"
        if self.fail_unqueue:
            raise ConnectionError("the connection dropped mid-fold")
        for key in keys:
            del self.state["pending"][key]

    @contextlib.contextmanager
    def folding(self):
        if self.held_elsewhere:
            self.held_elsewhere -= 1
            yield False
        else:
            yield True

    def backlog(self):
        return len(self.state["pending"])

    def any_pending(self):
        return bool(self.state["pending"])

    def bucket(self, bucket):
        return {path: n for path, n in self.state["buckets"].get(bucket, {}).items() if n}


def queued(repository, deltas):
    for i, delta in enumerate(deltas):
        repository.queue(f"event:{i}", facts.entries(delta), i)


def test_entries_read_back_as_the_increments():
    delta = {"store:S1:day:2026-11-24": {"c.hygiene.cases": 1, "c.hygiene.status:new": -1},
             "brand:b:month:2026-11": {"c.price.cases": 2}}
    assert facts.entries(delta) == [["brand:b:month:2026-11", "c.price.cases", 2],
                                    ["store:S1:day:2026-11-24", "c.hygiene.cases", 1],
                                    ["store:S1:day:2026-11-24", "c.hygiene.status:new", -1]]
    assert facts.folded([facts.entries(delta)]) == delta


def test_a_batch_sums_per_bucket_and_leaves_out_what_cancels():
    submitted = {"store:S1:day:2026-11-24": {"c.hygiene.cases": 1, "c.hygiene.status:new": 1}}
    routed = {"store:S1:day:2026-11-24": {"c.hygiene.status:new": -1, "c.hygiene.status:assigned": 1}}
    other = {"store:S1:day:2026-11-24": {"c.hygiene.cases": 1, "c.hygiene.status:new": 1},
             "region:east:day:2026-11-24": {"c.hygiene.cases": 1}}
    assert facts.folded(facts.entries(d) for d in (submitted, routed, other)) == {
        "region:east:day:2026-11-24": {"c.hygiene.cases": 1},
        "store:S1:day:2026-11-24": {"c.hygiene.cases": 2, "c.hygiene.status:assigned": 1, "c.hygiene.status:new": 1}}
    assert facts.folded([facts.entries(submitted), [[b, p, -n] for b, p, n in facts.entries(submitted)]]) == {}
    assert facts.added(submitted, routed) == facts.folded([facts.entries(submitted), facts.entries(routed)])


@given(st.lists(DELTAS, max_size=12), st.randoms())
def test_a_batch_adds_what_its_increments_add_one_by_one_in_any_order(deltas, rng):
    one_by_one = {}
    for delta in deltas:
        for bucket, paths in delta.items():
            one_by_one.setdefault(bucket, Counter()).update(paths)
    expected = {bucket: {p: n for p, n in paths.items() if n} for bucket, paths in one_by_one.items()}
    expected = {bucket: paths for bucket, paths in expected.items() if paths}
    shuffled = [facts.entries(delta) for delta in deltas]
    rng.shuffle(shuffled)
    assert facts.folded(shuffled) == expected


def test_a_fold_increments_each_touched_bucket_once_and_drops_what_it_folded():
    repository = FoldingRepository()
    day, month = "store:S1:day:2026-11-24", "store:S1:month:2026-11"
    queued(repository, [{day: {"c.hygiene.cases": 1}, month: {"c.hygiene.cases": 1}}] * 7)
    assert flows.fold(repository) == 7
    assert repository.increments == [[day, month]]  # one $inc per bucket for the seven events
    assert repository.bucket(day) == {"c.hygiene.cases": 7} and repository.backlog() == 0
    assert flows.fold(repository) == 0 and len(repository.increments) == 1


def test_a_fold_that_fails_part_way_commits_nothing_and_the_next_applies_everything_once():
    repository = FoldingRepository(fail_unqueue=True)
    day = "store:S1:day:2026-11-24"
    queued(repository, [{day: {"c.hygiene.cases": 1}}] * 5)
    with pytest.raises(ConnectionError):
        flows.fold(repository)
    assert repository.bucket(day) == {} and repository.backlog() == 5  # the increments were rolled back
    repository.fail_unqueue = False
    assert flows.fold(repository) == 5
    assert flows.fold(repository) == 0
    assert repository.bucket(day) == {"c.hygiene.cases": 5}


def test_nobody_folds_while_another_holds_the_folder():
    repository = FoldingRepository()
    queued(repository, [{"store:S1:day:2026-11-24": {"c.hygiene.cases": 1}}] * 3)
    repository.held_elsewhere = 1
    assert flows.fold(repository) == 0 and repository.increments == [] and repository.backlog() == 3
    assert flows.fold_backlog(repository) == 3  # the timer's tick, once the folder is free


def test_batches_are_bounded_and_a_backlog_is_folded_oldest_first():
    repository = FoldingRepository()
    queued(repository, [{f"store:S{i % 3}:day:2026-11-24": {"c.hygiene.cases": 1}} for i in range(10)])
    assert flows.fold(repository, batch=4) == 4  # one batch after an event
    assert sorted(repository.state["pending"]) == [f"event:{i}" for i in range(4, 10)]
    assert flows.fold(repository, batch=4, batches=5) == 6  # until the backlog is gone
    assert len(repository.increments) == 3  # three batches in all
    assert flows.fold_backlog(repository) == 0 and len(repository.increments) == 3  # idle: the timer only looks
    assert sum(repository.bucket(f"store:S{i}:day:2026-11-24")["c.hygiene.cases"] for i in range(3)) == 10


def test_fold_all_waits_for_the_other_folder_then_folds_everything(monkeypatch):
    repository = FoldingRepository()
    queued(repository, [{"store:S1:day:2026-11-24": {"c.hygiene.cases": 1}}] * (flows.FOLD_BATCH + 3))
    repository.held_elsewhere = 2
    assert flows.fold_all(repository, pause=0) == flows.FOLD_BATCH + 3
    assert repository.backlog() == 0 and len(repository.increments) == 2  # two batches
    repository.held_elsewhere = 10**6
    with pytest.raises(TimeoutError):
        flows.fold_all(repository, patience=0.01, pause=0)


def test_the_backlog_gauge_exports_how_many_events_wait():
    repository = FoldingRepository()
    queued(repository, [{"store:S1:day:2026-11-24": {"c.hygiene.cases": 1}}] * 4)
    [gauge] = metrics.PendingIncrementsCollector(repository).collect()
    assert gauge.name == "closeloop_report_pending_increments"
    assert [(sample.labels, sample.value) for sample in gauge.samples] == [({}, 4)]
    flows.fold(repository)
    [gauge] = metrics.PendingIncrementsCollector(repository).collect()
    assert gauge.samples[0].value == 0
