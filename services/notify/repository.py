import contextlib
import dataclasses
import hashlib
import logging
from datetime import timedelta

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from closeloop_shared.contract import DeliveryStatus as S
from closeloop_shared.leases import Leases, not_leased
from closeloop_shared.mongo import insert_new
from closeloop_shared.outbox import Outbox
from services.notify.kinds import Audience
from services.notify.policy import NOT_SENT

log = logging.getLogger(__name__)
# What the send timer picks up once its time has come.
DUE_STATUSES = [S.QUEUED.value, S.DEFERRED.value, S.FAILED.value]
# What a customer's withdrawal of consent still stops (services/notify/policy.py).
NOT_SENT_STATUSES = sorted(status.value for status in NOT_SENT)
COMPLETION_KEPT = timedelta(days=1)
# What a withdrawal of consent reads of each delivery it looks at (held_for_customer):
# whom it is to and when its cause happened (policy.Withdrawal.stops), whether a sender was
# told already (flows.consent_withdrawn), and what ending it writes and counts
# (flows._suppress_withdrawn: the history line's channel, the metric's template, the log's
# case and kind). Never its contents: a customer's deliveries over the years.
HELD_FIELDS = {name: 1 for name in (
    "audience", "member_id", "customer_keys", "status", "caused_at", "created_at", "consent_withdrawn_at",
    "case_id", "kind", "template", "channel")}
DUPLICATE_KEY = 11000


def _withdrawal_keys(member_id, customer_keys):
    """The consent_withdrawals documents a customer's withdrawal is kept under: their
    member id and each handle's digest (a message may name them by either)."""
    return [*([f"member|{member_id}"] if member_id else []), *(f"handle|{key}" for key in customer_keys)]


def _completion_key(case_id, event_type):
    """A remembered completion lives in notify_counters next to the quota windows (both
    forgotten by the same TTL index), so that one bulk write answers both."""
    return f"completion|{case_id}:{event_type}"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Where a delivery stands when it is not sent at once: its status, why, when it is
    tried next (None: never), and more fields to set."""
    status: S
    reason: str
    next_attempt_at: object = None
    changes: dict | None = None


def identity(case_id, kind, recipient):
    """One identity per logical notification, the same on every attempt, channel and
    replica: (idempotency key, Message-ID), both derived from the delivery's key. A
    receiver (a mail client, an HTTP gateway, WeChat's client_msg_id, a webhook
    receiver's webhook-id) that sees the same one twice can drop the copy."""
    key = f"{case_id}:{kind}:{recipient or ''}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return digest, f"<{digest}@closeloop>"


def attempt_entry(lease_owner, channel, now):
    """An attempt's line in attempt_log as it begins (its outcome is added when it ends)."""
    return {"started_at": now, "by": lease_owner, "channel": channel}


def begun_fields(lease, channel, now):
    """A new delivery's fields leased to its sender (`lease`: lease_owner, lease_until)
    with its first attempt, on `channel`, begun: what start_attempt would record."""
    return {**lease, "status": S.SENDING.value, "channel": channel, "attempts": 1, "channel_attempts": 1,
            "attempt_log": [attempt_entry(lease["lease_owner"], channel, now)]}


class DeliveryRepository:
    """notify's delivery log: one document per logical notification (case, kind,
    recipient) with its route (channels and addresses, in order), the message rendered
    for each channel, its status history and every attempt with the provider's answer.

    A delivery being sent is leased (closeloop_shared.leases): its sender renews the
    lease while it talks to the provider; if the sender dies the lease runs out within
    seconds and another replica takes the delivery over. That takeover is the one
    window for a repeat (the dead sender may have handed the message over before it
    could record it): the delivery is marked `possible_repeat` and its `attempt_log`
    shows the attempt that never recorded an outcome. The copy carries the same
    identity, so it is recognisable.

    Also: counters for the quotas and provider limits (forgotten after their window),
    the outbound webhook endpoints' failure streaks, the customers' withdrawals of
    consent (consent_withdrawals: one document per member id and per handle's digest,
    found by _id), and the outbox of notification_failed events."""

    def __init__(self, db):
        self.deliveries = db["deliveries"]
        self.counters = db["notify_counters"]
        self.endpoints = db["webhook_endpoints"]
        self.withdrawals = db["consent_withdrawals"]
        self.leases = Leases(self.deliveries)
        self.outbox = Outbox(self.deliveries)

    @staticmethod
    def ensure_indexes(db):
        deliveries = db["deliveries"]
        deliveries.create_index([("case_id", ASCENDING), ("kind", ASCENDING),
                                 ("recipient", ASCENDING)], unique=True)
        deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING),
                                 ("created_at", ASCENDING)])
        deliveries.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
        deliveries.create_index([("case_id", ASCENDING), ("created_at", ASCENDING)])
        # provider reports name a delivery by one of these
        deliveries.create_index([("idempotency_key", ASCENDING)])
        deliveries.create_index([("provider_message_id", ASCENDING)])
        deliveries.create_index([("customer_keys", ASCENDING), ("created_at", ASCENDING)])
        # a customer's deliveries when they withdraw consent (member_id: on deliveries made since this release)
        deliveries.create_index([("member_id", ASCENDING), ("status", ASCENDING)])
        Outbox.ensure_indexes(deliveries)
        db["notify_counters"].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)

    # -- creating and claiming ---------------------------------------------------------

    def create(self, document, now, outcome=None, start=None):
        """Insert a new delivery; None if it exists already (a redelivered event: sent,
        being sent, or waiting). One write whatever happens next, decided before it:
        - `start` (a channel): leased to the caller with that channel's attempt begun
          (status sending), as start_attempt would record it: the caller sends it now;
        - `outcome` (Outcome): recorded already ended or waiting (deferred, suppressed),
          with both lines of its status history and no lease;
        - neither: queued and leased to the caller, who attempts it (attempt)."""
        document = self._new(document, now, outcome, start)
        return document if insert_new(self.deliveries, document) else None

    def _new(self, document, now, outcome, start):
        """The document create() inserts."""
        idempotency_key, message_id = identity(document["case_id"], document["kind"], document["recipient"])
        document = {
            **document, "idempotency_key": idempotency_key, "message_id": message_id,
            "status": S.QUEUED.value, "status_history": [{"status": S.QUEUED.value, "at": now}],
            "attempts": 0, "channel_attempts": 0, "route_index": 0, "possible_repeat": False,
            "attempt_log": [], "next_attempt_at": now, "created_at": now, "updated_at": now,
            "outbox": [], "outbox_pending": False,
        }
        if outcome is not None:
            status = S(outcome.status).value
            document.update(status=status, reason=outcome.reason, next_attempt_at=outcome.next_attempt_at,
                            lease_owner=None, lease_until=None, **(outcome.changes or {}))
            document["status_history"].append({"status": status, "at": now, "reason": outcome.reason,
                                               "channel": document.get("channel")})
        elif start is not None:
            document.update(begun_fields(self.leases.lease_fields(now), start, now))
        else:
            document.update(self.leases.lease_fields(now))
        return document

    def create_and_resume(self, document, now, resumption, outcome=None, start=None):
        """create() and resume() in one round trip (case_routed's staff alert and the
        acknowledgement it completes): one update command of two, the insert being an
        upsert that inserts only if the delivery's key is new (pymongo sends a bulk of
        mixed inserts and updates as two commands). `resumption`: resume()'s arguments
        for one waiting delivery. (the delivery created or None, the delivery resumed or
        None), each as create() and resume() would answer."""
        document = self._new(document, now, outcome, start)
        document.setdefault("_id", ObjectId())
        key = {name: document[name] for name in ("case_id", "kind", "recipient")}  # the unique index
        insert = UpdateOne(key, {"$setOnInsert": {k: v for k, v in document.items() if k not in key}}, upsert=True)
        where, operations, resumed = self._resumption(**resumption)
        try:
            result = self.deliveries.bulk_write([insert, UpdateOne(where, operations)], ordered=False).bulk_api_result
        except BulkWriteError as error:  # two upserts of one new key at once: the other one inserted it
            result = error.details
            if any(failure.get("code") != DUPLICATE_KEY or failure.get("index") != 0
                   for failure in result.get("writeErrors", [])) or result.get("writeConcernErrors"):
                raise
        created = document if any(u["index"] == 0 for u in result.get("upserted", [])) else None
        return created, (resumed if result.get("nModified") else None)

    def claim_due(self, now):
        """The delivery due first (quiet hours over, retry time come), leased to the
        caller: deferred messages go out in the order they were due, then created."""
        return self.leases.claim({"status": {"$in": DUE_STATUSES}, "next_attempt_at": {"$lte": now}},
                                 {"$set": {"status": S.SENDING.value, "updated_at": now}},
                                 sort=[("next_attempt_at", ASCENDING), ("created_at", ASCENDING)], now=now)

    def claim(self, delivery_id, now):
        """This delivery, if it is due and nobody holds it."""
        return self.leases.claim({"_id": delivery_id, "status": {"$in": DUE_STATUSES},
                                  "next_attempt_at": {"$lte": now}},
                                 {"$set": {"status": S.SENDING.value, "updated_at": now}}, now=now)

    def remember_completion(self, case_id, event_type, facts, now):
        """A later event's facts for a case (kinds.COMPLETIONS), for a notification whose
        own event has not arrived yet; forgotten after a day."""
        self.take([], now, arrived=(case_id, event_type, facts))

    def completion(self, case_id, event_type):
        found = self.counters.find_one({"_id": _completion_key(case_id, event_type)})
        return (found or {}).get("facts")

    def take(self, limits, now, waits=None, arrived=None):
        """One round trip for what a notification's event needs from the counters
        collection (a bulk write of conditional upserts, each answered by its error):
        - `limits` [(key, limit, expires_at)]: count one more in each window that is
          under its limit; a window at its limit is left as it is (the upsert's insert
          hits the existing key) and reported over; a limit of 0 or less refuses
          everything without writing;
        - `waits` (case_id, event_type): whether that event's facts came first, on its
          own queue (then they are read: the rare order);
        - `arrived` (case_id, event_type, facts): remember an event's facts for a
          notification still to come, for a day.
        A window's first count (or a completion's first write) can lose its insert to a
        concurrent one of the same key (both found no document): that refusal is no
        answer, so refused counts and facts are tried once more, when the key exists (a
        round trip only then: a second refusal is the limit). A refused `waits` needs no
        second try: the facts are read, and are there only if they came first.
        Returns ([over the limit?, per limit], the facts `waits` asks for or None)."""
        operations, counting = [], []  # counting: per limit, its operation's index (None: refused unwritten)
        for key, limit, expires_at in limits:
            counting.append(len(operations) if limit > 0 else None)
            if limit > 0:
                operations.append(UpdateOne({"_id": key, "n": {"$lt": limit}},
                                            {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": expires_at}},
                                            upsert=True))
        asks = None
        if waits is not None:
            asks = len(operations)
            operations.append(UpdateOne({"_id": _completion_key(*waits), "facts": {"$exists": False}},
                                        {"$setOnInsert": {"expires_at": now + COMPLETION_KEPT}}, upsert=True))
        if arrived is not None:
            case_id, event_type, facts = arrived
            operations.append(UpdateOne({"_id": _completion_key(case_id, event_type)},
                                        {"$set": {"facts": facts, "expires_at": now + COMPLETION_KEPT}}, upsert=True))
        refused = self._upserts(self.counters, operations)
        again = sorted(refused - {asks})
        if again:
            refused_again = self._upserts(self.counters, [operations[index] for index in again])
            refused = (refused - set(again)) | {again[index] for index in refused_again}
        facts = self.completion(*waits) if asks is not None and asks in refused else None
        return [index is None or index in refused for index in counting], facts

    @staticmethod
    def _upserts(collection, operations):
        """Run conditional upserts in one bulk write on `collection`: the indexes of those
        refused by a duplicate key (their filter matched nothing and the key exists)."""
        if not operations:
            return set()
        try:
            collection.bulk_write(operations, ordered=False)
        except BulkWriteError as error:
            failures = error.details.get("writeErrors", [])
            if any(failure.get("code") != DUPLICATE_KEY for failure in failures) \
                    or error.details.get("writeConcernErrors"):
                raise
            return {failure["index"] for failure in failures}
        return set()

    def waiting(self, case_id, event_type):
        """The case's deliveries waiting for `event_type`'s facts (kinds.COMPLETIONS), in
        the order they were made; resume() takes each."""
        return list(self.deliveries.find({"case_id": case_id, "status": S.DEFERRED.value,
                                          "waiting_for": event_type}).sort("created_at", ASCENDING))

    def resume(self, delivery, event_type, now, changes, history, release=False, outcome=None):
        """Take a delivery waiting for `event_type` (as waiting() read it), in one
        conditional write: the new `changes` (its contents rendered with the facts), the
        lines of `history`, and either `release` (queued, due now and leased to the
        caller, its attempt NOT begun: the caller's attempt() begins it with
        start_attempt, which a lost lease or a withdrawal of consent refuses, however
        long the caller took to get to it) or `outcome` (still waiting: deferred to a
        time). The delivery as it now is, or None if it is no longer waiting (taken by
        another replica, ended by a withdrawal of consent, or marked by one)."""
        where, operations, resumed = self._resumption(delivery, event_type, now, changes, history, release, outcome)
        return resumed if self.deliveries.update_one(where, operations).modified_count else None

    def _resumption(self, delivery, event_type, now, changes, history, release=False, outcome=None):
        """resume()'s (filter, update, the delivery as the update leaves it)."""
        update = {"updated_at": now, **changes}
        if release:
            update.update(self.leases.lease_fields(now), status=S.QUEUED.value, reason=None, next_attempt_at=now)
        else:
            update.update(status=S(outcome.status).value, reason=outcome.reason,
                          next_attempt_at=outcome.next_attempt_at, **(outcome.changes or {}))
        where = {"_id": delivery["_id"], "status": S.DEFERRED.value, "waiting_for": event_type,
                 "consent_withdrawn_at": None, **not_leased(now)}
        operations = {"$set": update, "$push": {"status_history": {"$each": list(history)}}}
        return where, operations, {**delivery, **update, "status_history": [*delivery["status_history"], *history]}

    def claim_stalled(self, now):
        """One delivery whose sender died mid-send (its lease ran out), leased to the
        caller and marked as a possible repeat; its unfinished attempt says so."""
        claimed = self.leases.claim({"status": S.SENDING.value, **not_leased(now)},
                                    {"$set": {"possible_repeat": True, "updated_at": now}}, now=now)
        if claimed is None:
            return None
        attempts = claimed["attempt_log"]
        if attempts and "outcome" not in attempts[-1]:
            field = f"attempt_log.{len(attempts) - 1}"
            self.deliveries.update_one(
                {"_id": claimed["_id"], "lease_owner": claimed["lease_owner"]},
                {"$set": {f"{field}.outcome": "unrecorded", f"{field}.finished_at": now}})
            attempts[-1].update(outcome="unrecorded", finished_at=now)
        log.warning("delivery taken over from a sender that stopped", extra={
            "case_id": claimed["case_id"], "kind": claimed["kind"], "attempts": claimed["attempts"]})
        return claimed

    def start_attempt(self, delivery, channel, now):
        """Record that an attempt by `channel` begins (status sending: if the sender dies
        now, claim_stalled takes it over), only while the caller holds the lease and the
        customer has not withdrawn consent. The delivery as it now is; None if the lease
        was lost meanwhile (whoever took it over sends it); the delivery unchanged, its
        consent_withdrawn_at set, if a withdrawal marked it while the caller held it
        (mark_withdrawn): no attempt begun, the caller ends it (a read, only then)."""
        entry = attempt_entry(delivery["lease_owner"], channel, now)
        held = {"_id": delivery["_id"], "lease_owner": delivery["lease_owner"]}
        changes = {"channel": channel, "status": S.SENDING.value, "updated_at": now}
        # update_one, not find_one_and_update (which scans the collection on the MongoDB
        # stand-in): the lease means nobody else changed what the caller holds, so the
        # delivery as it now is can be written out here
        if self.deliveries.update_one(
                {**held, "consent_withdrawn_at": None},
                {"$push": {"attempt_log": entry}, "$inc": {"attempts": 1, "channel_attempts": 1},
                 "$set": changes}).matched_count:
            return {**delivery, **changes, "attempt_log": [*delivery.get("attempt_log", []), entry],
                    "attempts": delivery.get("attempts", 0) + 1,
                    "channel_attempts": delivery.get("channel_attempts", 0) + 1}
        return self.deliveries.find_one({**held, "consent_withdrawn_at": {"$ne": None}})

    def hold(self, delivery):
        """Renew the delivery's lease while the block runs (a send in progress)."""
        if not delivery.get("lease_owner"):
            return contextlib.nullcontext(delivery)
        return self.leases.hold(delivery)

    # -- outcomes ------------------------------------------------------------------------

    def finish(self, delivery, status, now, reason=None, attempt=None, next_attempt_at=None,
               changes=None, events=()):
        """Record an outcome and release the lease in one write: the status (with a line
        in its history), the current attempt's result (`attempt`: outcome, code,
        request_id, provider_message_id, response), more fields, and events for the
        outbox. False if another replica took the delivery over meanwhile."""
        status = S(status).value
        update = {"status": status, "updated_at": now, "reason": reason,
                  "next_attempt_at": next_attempt_at, **(changes or {})}
        if attempt is not None and delivery.get("attempt_log"):
            index = len(delivery["attempt_log"]) - 1
            for name, value in {**attempt, "finished_at": now}.items():
                update[f"attempt_log.{index}.{name}"] = value
        history = {"status": status, "at": now, "reason": reason, "channel": delivery.get("channel")}
        operations = {"$set": update, "$push": {"status_history": history}}
        if events:
            update["outbox_pending"] = True
            operations["$push"]["outbox"] = {"$each": list(events)}
        released = self.leases.release(delivery, operations)
        if not released:
            log.warning("delivery was taken over before its outcome was recorded", extra={
                "case_id": delivery["case_id"], "kind": delivery["kind"], "outcome": status})
        return released

    # -- consent withdrawn ---------------------------------------------------------------------

    def held_for_customer(self, member_id, customer_keys):
        """Deliveries to a customer not sent yet (waiting, due, or claimed by a sender),
        found by their member id or by any handle's digest; each once, in the order they
        were made. Which of them a withdrawal stops is policy.Withdrawal.stops's to say, by
        when each one's cause happened (caused_at, else created_at: no one field to bound
        a query by). Each read's filter is exactly an index's keys (customer_keys; member_id
        and status): the stand-in scans the whole collection for a filter with a field its
        index lacks, so a handle's deliveries not sent yet are picked out here (a customer
        has few; a withdrawal is rare). Each comes with the fields the withdrawal reads
        (HELD_FIELDS) only: the handle's read returns everything ever sent to it."""
        found = {}
        if customer_keys:
            for delivery in self.deliveries.find({"customer_keys": {"$in": list(customer_keys)}}, HELD_FIELDS):
                if delivery["status"] in NOT_SENT_STATUSES and delivery.get("audience") == Audience.CUSTOMER.value:
                    found[delivery["_id"]] = delivery
        if member_id:  # set on customer deliveries only
            for delivery in self.deliveries.find({"member_id": member_id, "status": {"$in": NOT_SENT_STATUSES}},
                                                 HELD_FIELDS):
                found[delivery["_id"]] = delivery
        return sorted(found.values(), key=lambda d: d["created_at"])

    def record_withdrawal(self, member_id, customer_keys, withdrawn_at):
        """Remember a customer's withdrawal of consent under their member id and each
        handle's digest, one document per key keeping the latest withdrawn_at, for the
        messages whose events notify hears of after it (withdrawals_of). A redelivered
        withdrawal changes nothing. One bulk write of upserts; one that loses its insert
        to a concurrent one of the same key is written again (the key exists then)."""
        operations = [UpdateOne({"_id": key}, {"$max": {"withdrawn_at": withdrawn_at}}, upsert=True)
                      for key in _withdrawal_keys(member_id, customer_keys)]
        refused = self._upserts(self.withdrawals, operations)
        if refused:
            self.withdrawals.bulk_write([operations[index] for index in sorted(refused)], ordered=False)

    def withdrawals_of(self, member_id, customer_keys):
        """When the customer withdrew consent, as recorded under their member id or any
        handle's digest (record_withdrawal): one read by _id."""
        keys = _withdrawal_keys(member_id, customer_keys)
        if not keys:
            return []
        return [found["withdrawn_at"] for found in self.withdrawals.find({"_id": {"$in": keys}}, {"withdrawn_at": 1})]

    def claim_held(self, delivery, now):
        """Lease a delivery still waiting (nobody sending it, not sent): the delivery with
        its lease, or None if a sender holds it or it went meanwhile."""
        claimed = self.leases.claim_by_id(delivery["_id"], {"status": {"$in": DUE_STATUSES}}, now=now)
        return dict(delivery, **claimed) if claimed else None

    def mark_withdrawn(self, delivery, withdrawn_at):
        """Tell the sender holding a delivery that its customer withdrew consent: it ends
        the delivery instead of sending it (flows.attempt), unless it is sent already.
        False if it was sent or ended meanwhile."""
        return self.deliveries.update_one(
            {"_id": delivery["_id"], "status": {"$in": NOT_SENT_STATUSES}},
            {"$set": {"consent_withdrawn_at": withdrawn_at}}).modified_count == 1

    def mark_withdrawn_made(self, case_id, kind, recipient, withdrawn_at):
        """mark_withdrawn for a delivery known by its key (the unique index's fields), as a
        redelivered event knows the one its first handling made."""
        return self.deliveries.update_one(
            {"case_id": case_id, "kind": kind, "recipient": recipient, "status": {"$in": NOT_SENT_STATUSES}},
            {"$set": {"consent_withdrawn_at": withdrawn_at}}).modified_count == 1

    # -- provider receipts -------------------------------------------------------------------

    @staticmethod
    def _reported(channel, match):
        """The sent delivery a provider's report names: `match` is our idempotency key
        (SMS OutId) or the provider's message id (WeChat msgid)."""
        (field, value), = match.items()
        if field not in ("idempotency_key", "provider_message_id"):
            raise ValueError(f"a report cannot name a delivery by {field}")
        return {field: value, "channel": channel, "status": S.SENT.value}

    def mark_delivered(self, channel, match, now, receipt):
        """The provider reports a sent message delivered: the delivery's template, or None
        if no such sent delivery (unknown, another channel's, or already recorded)."""
        history = {"status": S.DELIVERED.value, "at": now, "reason": None, "channel": channel}
        # a read through the report's index, then a write by _id that only a sent delivery
        # matches (two reports of one message record it once); find_one_and_update would
        # scan the collection on the MongoDB stand-in
        reported = self.deliveries.find_one(self._reported(channel, match), {"template": 1})
        if reported is None or not self.deliveries.update_one(
                {"_id": reported["_id"], "status": S.SENT.value},
                {"$set": {"status": S.DELIVERED.value, "delivered_at": now, "receipt": receipt, "updated_at": now},
                 "$push": {"status_history": history}}).modified_count:
            return None
        return reported["template"]

    def claim_undelivered(self, channel, match, now):
        """A sent delivery the provider reports undelivered, leased to the caller."""
        return self.leases.claim(self._reported(channel, match),
                                 {"$set": {"status": S.SENDING.value, "updated_at": now}}, now=now)

    # -- counters and endpoints -------------------------------------------------------------

    def count(self, key, expires_at):
        """Count one more for `key` (a quota's or a limit's window); the new count."""
        return self.counters.find_one_and_update(
            {"_id": key}, {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": expires_at}},
            upsert=True, return_document=ReturnDocument.AFTER)["n"]

    def uncount(self, key):
        """Take back a count made for a delivery that turned out to exist already (a
        redelivered event): counts are taken before the insert, so that the insert can
        record the outcome they decide."""
        self.counters.update_one({"_id": key}, {"$inc": {"n": -1}})

    def endpoint_disabled(self, endpoint_id):
        return bool((self.endpoints.find_one({"_id": endpoint_id}) or {}).get("disabled_at"))

    def endpoint_failed(self, endpoint_id, now, threshold):
        """One more abandoned delivery to an endpoint; True if this disabled it."""
        endpoint = self.endpoints.find_one_and_update(
            {"_id": endpoint_id}, {"$inc": {"failures": 1}, "$set": {"last_failure_at": now}},
            upsert=True, return_document=ReturnDocument.AFTER)
        if endpoint["failures"] >= threshold and not endpoint.get("disabled_at"):
            return self.endpoints.update_one({"_id": endpoint_id, "disabled_at": None},
                                             {"$set": {"disabled_at": now}}).modified_count == 1
        return False

    def endpoint_succeeded(self, endpoint_id):
        self.endpoints.update_one({"_id": endpoint_id, "failures": {"$gt": 0}}, {"$set": {"failures": 0}})

    # -- reads -------------------------------------------------------------------------------

    def for_case(self, case_id):
        return list(self.deliveries.find({"case_id": case_id}).sort("created_at", ASCENDING))

    def for_customer(self, customer_key, limit=200):
        return list(self.deliveries.find({"customer_keys": customer_key})
                    .sort("created_at", ASCENDING).limit(limit))
