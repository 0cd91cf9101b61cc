"""The outbox never turns a stored write into a failed request: a broker that refuses
the publish, or a database that fails the clean-up after it, leaves the events for the
relay, and the caller carries on."""
from datetime import timedelta

import pytest
from pymongo.errors import AutoReconnect

from closeloop_shared.clock import utcnow
from closeloop_shared.outbox import Outbox

pytestmark = pytest.mark.integration


@pytest.fixture
def collection(mongo_client, mongo_prefix):
    documents = mongo_client[f"{mongo_prefix}_outbox"]["documents"]
    yield documents
    mongo_client.drop_database(f"{mongo_prefix}_outbox")


EVENT = {"id": "e1", "type": "thing_happened", "payload": {"n": 1}}


def stored(collection, minutes_ago=1):
    collection.insert_one({"_id": "d1", "outbox": [EVENT], "outbox_pending": True,
                           "updated_at": utcnow() - timedelta(minutes=minutes_ago)})


def test_a_broker_outage_leaves_the_events_for_the_relay(collection):
    stored(collection)

    def broker_down(event_type, payload):
        raise ConnectionRefusedError(111, "Connection refused")

    Outbox(collection).flush("d1", [EVENT], broker_down)  # does not raise
    assert collection.find_one({"_id": "d1"})["outbox_pending"] is True
    sent = []
    assert Outbox(collection).relay(lambda t, p: sent.append((t, p)), utcnow()) == 1
    assert sent == [("thing_happened", {"n": 1})]
    assert collection.find_one({"_id": "d1"})["outbox"] == []


def test_a_failed_clean_up_after_publishing_does_not_fail_the_caller(collection):
    stored(collection)

    class Flaky:
        def __getattr__(self, name):
            return getattr(collection, name)

        def bulk_write(self, *args, **kwargs):
            raise AutoReconnect("database blinked")

    sent = []
    Outbox(Flaky()).flush("d1", [EVENT], lambda t, p: sent.append(t))  # does not raise
    assert sent == ["thing_happened"]
    assert collection.find_one({"_id": "d1"})["outbox_pending"] is True  # the relay sends it again
