"""The claim-with-lease primitive against the MongoDB-protocol server (the session's
stand-in, or MONGO_URI)."""
import threading
import time
from datetime import timedelta

import pytest

from closeloop_shared.clock import utcnow
from closeloop_shared.leases import ClaimTable, Leases


@pytest.fixture
def collection(mongo_client, mongo_prefix):
    jobs = mongo_client[f"{mongo_prefix}_leases"]["jobs"]
    jobs.create_index([("status", 1), ("due_at", 1)])
    yield jobs
    mongo_client.drop_database(f"{mongo_prefix}_leases")


DUE = {"status": "waiting"}


def test_one_claim_per_document_while_its_lease_runs(collection):
    collection.insert_one({"_id": "a", "status": "waiting"})
    leases = Leases(collection)
    first = leases.claim(DUE)
    assert first["_id"] == "a" and first["lease_owner"]
    assert leases.claim(DUE) is None  # held


def test_an_expired_lease_is_claimable_again_and_the_old_owner_lost_it(collection):
    collection.insert_one({"_id": "a", "status": "waiting"})
    leases = Leases(collection, duration=timedelta(seconds=0.3))
    dead = leases.claim(DUE)
    time.sleep(0.4)  # the owner died: nobody renewed
    taken = leases.claim(DUE, {"$inc": {"takeovers": 1}})
    assert taken["_id"] == "a" and taken["lease_owner"] != dead["lease_owner"]
    assert taken["takeovers"] == 1
    assert not leases.renew(dead) and not leases.release(dead, {"$set": {"status": "done"}})
    assert leases.release(taken, {"$set": {"status": "done"}})
    assert collection.find_one({"_id": "a"})["status"] == "done"


def test_hold_renews_while_working(collection):
    collection.insert_one({"_id": "a", "status": "waiting"})
    leases = Leases(collection, duration=timedelta(seconds=0.3))
    claimed = leases.claim(DUE)
    with leases.hold(claimed):
        time.sleep(0.8)  # longer than the lease
        assert leases.claim(DUE) is None
    assert leases.release(claimed)
    assert leases.claim(DUE)["_id"] == "a"  # released: free at once


def test_concurrent_claimers_never_share_a_document(collection):
    collection.insert_many([{"_id": f"d{i}", "status": "waiting"} for i in range(30)])
    leases, won, lock = Leases(collection), [], threading.Lock()

    def worker():
        while (doc := leases.claim(DUE)) is not None:
            with lock:
                won.append(doc["_id"])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == sorted(f"d{i}" for i in range(30))


def test_claim_respects_due_filter_and_sort(collection):
    now = utcnow()
    collection.insert_many([
        {"_id": "later", "status": "waiting", "due_at": now + timedelta(hours=1)},
        {"_id": "old", "status": "waiting", "due_at": now - timedelta(minutes=5)},
        {"_id": "older", "status": "waiting", "due_at": now - timedelta(minutes=9)},
    ])
    leases = Leases(collection)
    due = {"status": "waiting", "due_at": {"$lte": now}}
    assert leases.claim(due, sort=[("due_at", 1)])["_id"] == "older"
    assert leases.claim(due, sort=[("due_at", 1)])["_id"] == "old"
    assert leases.claim(due) is None


def test_claim_by_id_takes_a_known_document_once_and_only_while_it_is_due(collection):
    collection.insert_many([{"_id": "a", "status": "waiting"}, {"_id": "b", "status": "done"}])
    leases = Leases(collection)
    taken = leases.claim_by_id("a", DUE)
    assert taken["_id"] == "a" and collection.find_one({"_id": "a"})["lease_owner"] == taken["lease_owner"]
    assert leases.claim_by_id("a", DUE) is None  # held
    assert leases.claim_by_id("b", DUE) is None  # not due
    assert leases.claim_by_id("missing", DUE) is None
    assert leases.release(taken)
    assert leases.claim_by_id("a", DUE)["lease_owner"] != taken["lease_owner"]


# -- ClaimTable: leases kept apart from the documents they hold --------------------------

@pytest.fixture
def claims(mongo_client, mongo_prefix):
    table = ClaimTable(mongo_client[f"{mongo_prefix}_leases"]["jobs_due_claims"])
    table.ensure_indexes()
    yield table
    mongo_client.drop_database(f"{mongo_prefix}_leases")


def test_a_key_is_claimed_once_while_its_lease_runs_and_again_once_released(claims):
    first = claims.claim("a")
    assert first["_id"] == "a" and first["lease_owner"]
    assert claims.claim("a") is None  # held
    assert set(claims.held()) == {"a"}
    assert claims.release(first)
    assert claims.held() == {}
    again = claims.claim("a")
    assert again and again["lease_owner"] != first["lease_owner"]


def test_a_lease_that_ran_out_is_taken_over_and_the_old_owner_lost_it(claims):
    now = utcnow()
    dead = claims.claim("a", now=now)
    taker = claims.claim("a", now=now + claims.duration + timedelta(seconds=1))
    assert taker and taker["lease_owner"] != dead["lease_owner"]
    assert not claims.release(dead)  # no longer its lease
    assert claims.release(taker)


def test_concurrent_claimers_of_one_key_never_share_it(claims):
    won, barrier = [], threading.Barrier(8)

    def claimer():
        barrier.wait()
        claimed = claims.claim("a")
        if claimed:
            won.append(claimed)

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
