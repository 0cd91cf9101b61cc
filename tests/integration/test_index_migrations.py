"""Index migrations on the MongoDB-protocol server (closeloop_shared/mongo.py): indexes are
built once per change of a repository's plan, by one replica however many start together,
recorded with a version; a builder that dies is taken over when its lease runs out."""
import threading
from datetime import timedelta

import pytest
from pymongo import ASCENDING

from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import MIGRATIONS, migrate_indexes

pytestmark = pytest.mark.integration


class Counted:
    """An ensure_indexes that counts the times it ran against the real database."""

    def __init__(self, *indexes):
        self.indexes, self.builds, self.lock = indexes, 0, threading.Lock()

    def __call__(self, db):
        if type(db).__name__ != "_PlannedDatabase":
            with self.lock:
                self.builds += 1
        for collection, field in self.indexes:
            db[collection].create_index([(field, ASCENDING)])


@pytest.fixture
def db(mongo_client, mongo_prefix):
    return mongo_client[f"{mongo_prefix}_migrations"]


def test_indexes_are_built_once_and_again_only_when_the_plan_changes(db):
    first = Counted(("things", "a"))
    assert migrate_indexes(db, "Things", first) is True
    assert migrate_indexes(db, "Things", first) is False  # a restart: nothing to do
    assert first.builds == 1 and "a_1" in db["things"].index_information()
    record = db[MIGRATIONS].find_one({"_id": "indexes:Things"})
    assert record["version"] == 1 and record["lease_owner"] is None and record["migrated_at"]

    upgraded = Counted(("things", "a"), ("things", "b"))  # a release adds an index
    assert migrate_indexes(db, "Things", upgraded) is True
    assert upgraded.builds == 1 and "b_1" in db["things"].index_information()
    assert db[MIGRATIONS].find_one({"_id": "indexes:Things"})["version"] == 2
    assert migrate_indexes(db, "Others", Counted(("others", "c"))) is True  # each repository its own record


def test_replicas_starting_together_build_once(db):
    plan = Counted(("together", "a"), ("together", "b"))
    results = []
    threads = [threading.Thread(target=lambda: results.append(migrate_indexes(db, "Together", plan)))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 4 + [True] and plan.builds == 1
    assert {"a_1", "b_1"} <= set(db["together"].index_information())


def test_a_builder_that_died_is_taken_over_once_its_lease_runs_out(db):
    plan = Counted(("orphaned", "a"))
    db[MIGRATIONS].insert_one({"_id": "indexes:Orphaned", "version": 0, "fingerprint": None,
                               "lease_owner": "dead-replica", "lease_until": utcnow() + timedelta(seconds=1)})
    started = utcnow()
    assert migrate_indexes(db, "Orphaned", plan) is True
    assert utcnow() - started >= timedelta(seconds=0.8) and plan.builds == 1
    assert db[MIGRATIONS].find_one({"_id": "indexes:Orphaned"})["version"] == 1
