"""The in-document outbox against the MongoDB-protocol server."""
from datetime import timedelta

import eventlet
import pytest

from closeloop_shared.clock import utcnow
from closeloop_shared.events import new_event
from closeloop_shared.outbox import Outbox

pytestmark = pytest.mark.integration


def event(case_id):
    return new_event("case_closed", {"case_id": case_id, "store_id": "S", "closed_at": utcnow()})


@pytest.fixture
def outbox(mongo_client, mongo_prefix):
    collection = mongo_client[f"{mongo_prefix}_outbox"]["docs"]
    Outbox.ensure_indexes(collection)
    return Outbox(collection)


def test_flush_publishes_in_order_and_empties_the_outbox(outbox):
    events = [event("a"), event("a")]
    outbox.collection.insert_one({"_id": "a", "outbox": events, "outbox_pending": True, "updated_at": utcnow()})
    published = []
    outbox.flush("a", events, lambda kind, payload: published.append(payload))
    assert published == [e["payload"] for e in events]
    assert outbox.collection.find_one({"_id": "a"})["outbox"] == []
    assert outbox.collection.find_one({"_id": "a"})["outbox_pending"] is False


def test_flush_leaves_a_concurrent_writers_events_for_it_or_the_relay(outbox):
    mine, theirs = event("b"), event("b")
    outbox.collection.insert_one({"_id": "b", "outbox": [mine, theirs], "outbox_pending": True,
                                  "updated_at": utcnow() - timedelta(minutes=1)})
    outbox.flush("b", [mine], lambda *_: None)
    document = outbox.collection.find_one({"_id": "b"})
    assert [e["id"] for e in document["outbox"]] == [theirs["id"]] and document["outbox_pending"] is True

    relayed = []
    assert outbox.relay(lambda kind, payload: relayed.append(payload), utcnow()) == 1
    assert relayed == [theirs["payload"]]
    assert outbox.collection.find_one({"_id": "b"})["outbox_pending"] is False


def test_relay_ignores_fresh_writes_and_clears_an_emptied_flag(outbox):
    outbox.collection.insert_one({"_id": "c", "outbox": [event("c")], "outbox_pending": True, "updated_at": utcnow()})
    outbox.collection.insert_one({"_id": "d", "outbox": [], "outbox_pending": True,
                                  "updated_at": utcnow() - timedelta(minutes=1)})
    assert outbox.relay(lambda *_: pytest.fail("fresh events belong to their writer"), utcnow()) == 1
    assert outbox.collection.find_one({"_id": "d"})["outbox_pending"] is False


def test_clears_arriving_while_one_is_written_are_written_together_in_the_next_round(outbox):
    """Group commit: the clears that arrive from the process's other workers while one is
    written wait and go together in the next round, one round trip for them all; each
    worker returns once its own clear is written."""
    documents = {f"g{i}": [event(f"g{i}")] for i in range(6)}
    outbox.collection.insert_many([{"_id": key, "outbox": events, "outbox_pending": True, "updated_at": utcnow()}
                                   for key, events in documents.items()])
    writes = []
    original = outbox.collection.bulk_write

    class Recording:  # counts the round trips the outbox makes
        def __getattr__(self, name):
            return getattr(outbox.collection, name)

        def bulk_write(self, requests, **options):
            writes.append(len(requests))
            eventlet.sleep(0.05)  # a slow write: the other workers' clears arrive meanwhile
            return original(requests, **options)

    def worker(key, events):  # returns once its own document is cleared
        Outbox(Recording()).flush(key, events, lambda *_: None)
        return outbox.collection.find_one({"_id": key})["outbox_pending"]

    pool = eventlet.GreenPool()
    still_pending = list(pool.starmap(worker, documents.items()))
    assert writes == [1, 5] and still_pending == [False] * len(documents)
    assert all(d["outbox"] == [] and d["outbox_pending"] is False
               for d in outbox.collection.find({"_id": {"$in": list(documents)}}))


def test_a_writer_killed_mid_round_leaves_the_next_clear_free_to_write(outbox):
    """A worker killed while it writes a round (nameko kills workers with GreenletExit)
    hands the turn on: later clears are written, not left waiting for ever."""
    outbox.collection.insert_many([{"_id": key, "outbox": [event(key)], "outbox_pending": True, "updated_at": utcnow()}
                                   for key in ("k1", "k2")])
    original = outbox.collection.bulk_write

    class Stuck:
        def __getattr__(self, name):
            return getattr(outbox.collection, name)

        def bulk_write(self, requests, **options):
            eventlet.sleep(10)  # killed meanwhile
            return original(requests, **options)

    killed = eventlet.spawn(Outbox(Stuck()).flush, "k1", outbox.collection.find_one({"_id": "k1"})["outbox"],
                            lambda *_: None)
    eventlet.sleep(0.05)
    killed.kill()
    with eventlet.Timeout(5):
        outbox.flush("k2", outbox.collection.find_one({"_id": "k2"})["outbox"], lambda *_: None)
    assert outbox.collection.find_one({"_id": "k2"})["outbox_pending"] is False
    assert outbox.collection.find_one({"_id": "k1"})["outbox_pending"] is True  # the relay's to send again
