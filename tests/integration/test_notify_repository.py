"""notify's DeliveryRepository against the MongoDB-protocol stand-in: the quota counters'
conditional upserts (a first count that loses its insert to a concurrent one, a quota
of 0) and how a waiting delivery is released and its attempt begun (the lease and a
withdrawal of consent decide, at start_attempt); the customers' withdrawals of consent kept
once per key, and the deliveries a withdrawal looks at."""
from datetime import timedelta

import pytest
from pymongo.errors import BulkWriteError

from closeloop_shared.clock import utcnow
from services.notify import flows
from services.notify.repository import HELD_FIELDS, DeliveryRepository, Outcome

pytestmark = pytest.mark.integration


@pytest.fixture
def repository(mongo_client, mongo_prefix):
    db = mongo_client[f"{mongo_prefix}_notify"]
    DeliveryRepository.ensure_indexes(db)
    return DeliveryRepository(db)


class ConcurrentFirstWriter:
    """The counters collection as a writer sees it when another one inserts the same
    key between its filter finding nothing and its own insert: the first bulk write's
    operations on `key` are refused with a duplicate key, the other writer's document
    being there by then; later writes go through."""

    def __init__(self, collection, key, theirs):
        self.collection, self.key, self.theirs, self.raced = collection, key, theirs, False

    def __getattr__(self, name):
        return getattr(self.collection, name)

    def bulk_write(self, operations, ordered=True):
        if self.raced:
            return self.collection.bulk_write(operations, ordered=ordered)
        self.raced = True
        self.collection.insert_one({"_id": self.key, **self.theirs})
        lost = [i for i, operation in enumerate(operations) if operation._filter["_id"] == self.key]
        others = [operation for i, operation in enumerate(operations) if i not in lost]
        if others:
            self.collection.bulk_write(others, ordered=ordered)
        raise BulkWriteError({"writeErrors": [{"index": i, "code": 11000, "errmsg": "E11000 duplicate key"}
                                              for i in lost], "writeConcernErrors": [], "nInserted": 0,
                              "nUpserted": 0, "nMatched": 0, "nModified": 0, "nRemoved": 0, "upserted": []})


@pytest.mark.parametrize("key, limit, refused, count", [
    ("+8613812345678|2026-11-24", 10, False, 2),  # counted, not refused as "over"
    ("staff|sh-xh-mg|h", 1, True, 1),             # the retry still refuses a window at its limit
])
def test_a_first_count_that_loses_its_insert_to_a_concurrent_one_is_counted_again(repository, key, limit, refused,
                                                                                   count):
    now = utcnow()
    expires = now + timedelta(days=1)
    real = repository.counters
    repository.counters = ConcurrentFirstWriter(real, key, {"n": 1, "expires_at": expires})
    assert repository.take([(key, limit, expires)], now) == ([refused], None)
    assert real.find_one({"_id": key})["n"] == count


def test_facts_whose_first_write_loses_to_a_concurrent_wait_are_remembered(repository):
    now = utcnow()
    real = repository.counters
    repository.counters = ConcurrentFirstWriter(real, "completion|c42:case_routed",
                                                {"expires_at": now + timedelta(days=1)})
    repository.remember_completion("c42", "case_routed", {"first_response_due": "11-24 05:30"}, now)
    assert repository.completion("c42", "case_routed") == {"first_response_due": "11-24 05:30"}


def test_a_quota_of_zero_refuses_the_first_message_of_a_window_without_writing(repository):
    now = utcnow()
    over, _ = repository.take([("+8613812345678|2026-11-24", 0, now + timedelta(days=1)),
                               ("staff|sh-xh-mg|h", 30, now + timedelta(hours=2))], now)
    assert over == [True, False]
    assert repository.counters.find_one({"_id": "+8613812345678|2026-11-24"}) is None


def waiting_acknowledgement(repository, now):
    document = {"case_id": "c42", "case_number": "CL-1", "store_id": "SH-XH-001", "kind": "acknowledgement",
                "template": "acknowledgement", "audience": "customer", "recipient": "+8613812345678",
                "customer_keys": [], "member_id": "M-0001", "locale": "zh-CN", "urgent": False,
                "route": [{"channel": "sms", "address": "+8613812345678"}], "contents": {"sms": {"text": "x"}},
                "unusable": [], "channel": "sms", "waiting_for": "case_routed", "context": {}}
    return repository.create(document, now, outcome=Outcome("deferred", "waiting for case_routed",
                                                            now + timedelta(seconds=20)))


def released(repository, now):
    delivery = waiting_acknowledgement(repository, now)
    return repository.resume(delivery, "case_routed", now, {"waiting_for": None, "context": None},
                             [{"status": "queued", "at": now, "reason": "case_routed arrived"}], release=True)


def test_a_released_delivery_is_queued_and_leased_with_no_attempt_begun(repository):
    now = utcnow()
    resumed = released(repository, now)
    stored = repository.deliveries.find_one({"_id": resumed["_id"]})
    assert stored["status"] == resumed["status"] == "queued" and stored["attempt_log"] == []
    assert stored["lease_owner"] == resumed["lease_owner"] and stored["lease_until"] > now
    started = repository.start_attempt(resumed, "sms", now)
    assert started["status"] == "sending" and [a["by"] for a in started["attempt_log"]] == [resumed["lease_owner"]]


def test_start_attempt_refuses_a_delivery_taken_over_or_marked_consent_withdrawn(repository):
    now = utcnow()
    resumed = released(repository, now)
    later = now + timedelta(seconds=11)  # its lease ran out while its sender sent something else
    taken = repository.claim_due(later)
    assert taken["_id"] == resumed["_id"] and repository.start_attempt(resumed, "sms", later) is None

    other = dict(resumed, lease_owner=taken["lease_owner"])
    assert repository.mark_withdrawn(taken, later)
    refused = repository.start_attempt(other, "sms", later)
    assert refused["consent_withdrawn_at"] is not None and refused["attempt_log"] == []
    assert repository.deliveries.find_one({"_id": resumed["_id"]})["attempt_log"] == []


def test_a_withdrawal_is_kept_once_per_key_with_its_latest_time_and_read_back_by_any_key(repository):
    now = utcnow().replace(microsecond=0)  # as stored: milliseconds
    repository.record_withdrawal("M-0001", ["k-phone", "k-mail"], now)
    repository.record_withdrawal("M-0001", ["k-phone", "k-mail"], now)                       # redelivered
    repository.record_withdrawal("M-0001", ["k-phone"], now - timedelta(hours=1))            # an older one, late
    stored = {d["_id"]: d["withdrawn_at"] for d in repository.withdrawals.find({})}
    assert stored == {"member|M-0001": now, "handle|k-phone": now, "handle|k-mail": now}
    assert repository.withdrawals_of(None, ["k-mail", "k-other"]) == [now]
    assert repository.withdrawals_of("M-0001", []) == [now]
    assert repository.withdrawals_of("M-0002", ["k-other"]) == [] and repository.withdrawals_of(None, []) == []


def test_a_withdrawals_first_write_that_loses_its_insert_to_a_concurrent_one_is_written_again(repository):
    now = utcnow()
    real = repository.withdrawals
    repository.withdrawals = ConcurrentFirstWriter(real, "handle|k-phone", {"withdrawn_at": now - timedelta(days=1)})
    repository.record_withdrawal("M-0001", ["k-phone"], now)
    assert real.find_one({"_id": "handle|k-phone"})["withdrawn_at"] > now - timedelta(seconds=1)
    assert real.find_one({"_id": "member|M-0001"}) is not None


def test_held_for_customer_finds_a_message_made_after_the_withdrawal_time_by_member_id_or_handle(repository):
    now = utcnow()
    waiting = waiting_acknowledgement(repository, now + timedelta(minutes=5))  # made after the withdrawal's time
    repository.deliveries.update_one({"_id": waiting["_id"]}, {"$set": {"customer_keys": ["k-phone"]}})
    assert [d["_id"] for d in repository.held_for_customer("M-0001", [])] == [waiting["_id"]]
    assert [d["_id"] for d in repository.held_for_customer(None, ["k-phone"])] == [waiting["_id"]]
    assert [d["_id"] for d in repository.held_for_customer("M-0001", ["k-phone"])] == [waiting["_id"]]
    assert repository.held_for_customer("M-0002", ["k-other"]) == []


def test_a_withdrawal_reads_only_what_it_needs_of_the_held_messages_and_ends_them_with_it(repository):
    now = utcnow()
    waiting = waiting_acknowledgement(repository, now)
    repository.deliveries.update_one({"_id": waiting["_id"]}, {"$set": {"customer_keys": ["k-phone"]}})
    (held,) = repository.held_for_customer("M-0001", ["k-phone"])
    assert set(held) <= {"_id", *HELD_FIELDS} and "contents" not in held and "route" not in held
    withdrawal = {"member_id": "M-0001", "customer_keys": ["k-phone"], "withdrawn_at": now + timedelta(minutes=1)}
    assert flows.consent_withdrawn(repository, withdrawal, now + timedelta(minutes=1)) == 1
    stored = repository.deliveries.find_one({"_id": waiting["_id"]})
    assert (stored["status"], stored["reason"], stored["lease_owner"]) == ("suppressed", "consent withdrawn", None)
    assert stored["status_history"][-1]["channel"] == "sms" and stored["contents"] == {"sms": {"text": "x"}}


def test_a_redelivered_events_delivery_is_marked_withdrawn_by_its_key_while_it_is_not_sent(repository):
    now = utcnow().replace(microsecond=0)
    waiting = waiting_acknowledgement(repository, now)
    key = ("c42", "acknowledgement", "+8613812345678")
    assert repository.mark_withdrawn_made(*key, now)
    assert repository.deliveries.find_one({"_id": waiting["_id"]})["consent_withdrawn_at"] == now
    assert not repository.mark_withdrawn_made("c42", "acknowledgement", "+8613900000000", now)  # no such delivery
    repository.deliveries.update_one({"_id": waiting["_id"]}, {"$set": {"status": "sent"}})
    assert not repository.mark_withdrawn_made(*key, now)  # sent: history
