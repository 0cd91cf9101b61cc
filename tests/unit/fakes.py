"""In-memory stand-ins for repositories, for unit tests of the flows."""
import copy

from services.routing.lifecycle import ACTIVE

ACTIVE_STATUSES = {status.value for status in ACTIVE}


class FakeCases:
    """The CaseRepository contract in memory, including the version check."""

    def __init__(self):
        self.docs, self.lose_next_updates = {}, 0

    def get(self, case_id):
        return copy.deepcopy(self.docs.get(case_id))

    def insert(self, case):
        if case["_id"] in self.docs:
            return False
        self.docs[case["_id"]] = copy.deepcopy(case)
        return True

    def update(self, case, changes, entries, events, now):
        stored = self.docs[case["_id"]]
        if self.lose_next_updates:
            self.lose_next_updates -= 1
            stored["version"] += 1  # someone else wrote first
            return None
        if stored["version"] != case["version"]:
            return None
        stored.update(copy.deepcopy(changes), updated_at=now, version=stored["version"] + 1)
        stored["timeline"] += entries
        stored["outbox"] = stored.get("outbox", []) + events
        return self.get(case["_id"])

    def due(self, now, limit):
        due = [d for d in self.docs.values() if d.get("next_check_at") and d["next_check_at"] <= now]
        return copy.deepcopy(sorted(due, key=lambda d: d["next_check_at"])[:limit])

    def find(self, scope, store_id=None, status=None, limit=50):
        """The newest cases within `scope`; a store filter outside the scope finds
        nothing."""
        found = [d for d in self.docs.values()
                 if scope.allows(d["store_id"], d.get("submitted_by"))
                 and (store_id is None or d["store_id"] == store_id)
                 and (status is None or d["status"] == status)]
        found.sort(key=lambda d: d["submitted_at"], reverse=True)
        return [{k: v for k, v in copy.deepcopy(d).items() if k != "outbox"} for d in found[:limit]]

    def active_assigned_to(self, staff_id):
        return [{"_id": d["_id"]} for d in self.docs.values()
                if d["assignee"]["staff_id"] == staff_id and d["status"] in ACTIVE_STATUSES]


class FakeOrgStore:
    """routing's OrgRepository.replace in memory (conditional on the version)."""

    def __init__(self, snapshot):
        self.snapshot, self.events = snapshot, []

    def replace(self, expected_version, snapshot, event, now):
        if self.snapshot["version"] != expected_version:
            return False
        self.snapshot = snapshot
        self.events.append(event)
        return True


class Crash(BaseException):
    """A process dying at this point (raised by fakes told to fail). Not an Exception:
    no handler's `except Exception` may catch a death."""


class FakeFeedback:
    """intake's FeedbackRepository contract in memory: the unique dedupe key as the
    unique index enforces it. `stale_reads` makes find_by_dedupe_key miss what is
    there, as a concurrent submission not yet visible would."""

    def __init__(self):
        self.docs, self.sequences, self.stale_reads = {}, {}, False
        self.outbox = FakeOutbox(self.docs)

    def find_by_dedupe_key(self, key):
        if self.stale_reads:
            return None
        return copy.deepcopy(next((d for d in self.docs.values() if d["dedupe_key"] == key), None))

    def next_sequence(self, name):
        self.sequences[name] = self.sequences.get(name, 0) + 1
        return self.sequences[name]

    def insert(self, case):
        existing = next((d for d in self.docs.values() if d["dedupe_key"] == case["dedupe_key"]), None)
        if existing:
            return copy.deepcopy(existing), False
        self.docs[case["_id"]] = copy.deepcopy(case)
        return case, True

    def get(self, case_id):
        return copy.deepcopy(self.docs.get(case_id))


class FakeOutbox:
    """closeloop_shared.outbox.Outbox over a dict of documents. `fail_after` makes the
    next flush fail after publishing that many events (the broker went away, or the
    process died): the events stay in the outbox for the relay, as in the real one."""

    def __init__(self, docs):
        self.docs, self.fail_after = docs, None

    def flush(self, document_id, pending, publish):
        fail_after, self.fail_after = self.fail_after, None
        try:
            for n, event in enumerate(pending):
                if fail_after is not None and n >= fail_after:
                    raise Crash("publish failed")
                publish(event["type"], event["payload"])
        except Crash:
            return
        ids = {e["id"] for e in pending}
        document = self.docs.get(document_id)
        if document is not None:
            document["outbox"] = [e for e in document.get("outbox", []) if e["id"] not in ids]

    def relay(self, publish):
        for document in self.docs.values():
            for event in list(document.get("outbox", [])):
                publish(event["type"], event["payload"])
            document["outbox"] = []


class FakeDeliveries:
    """notify's DeliveryRepository contract in memory, leases included (on the clock
    `now()` the test drives)."""

    LEASE = 10  # seconds

    def __init__(self, now):
        from datetime import timedelta
        from services.notify.repository import identity
        self.now, self.identity, self.lease = now, identity, timedelta(seconds=self.LEASE)
        self.docs, self.tokens = {}, iter(range(1, 10**9))

    def _lease(self, document, now):
        document.update(lease_owner=f"t{next(self.tokens)}", lease_until=now + self.lease)

    def claim_new(self, message, now):
        key = (message.case_id, message.kind, message.recipient)
        if key in self.docs:
            return None
        idempotency_key, message_id = self.identity(*key)
        document = {"_id": key, "case_id": message.case_id, "kind": message.kind,
                    "recipient": message.recipient, "subject": message.subject, "body": message.body,
                    "message_id": message_id, "idempotency_key": idempotency_key,
                    "status": "sending", "attempts": 1, "possible_repeat": False}
        self._lease(document, now)
        document["attempt_log"] = [{"started_at": now, "by": document["lease_owner"]}]
        self.docs[key] = document
        return copy.deepcopy(document)

    def _claim(self, due, now, **changes):
        for document in self.docs.values():
            if due(document) and not (document.get("lease_until") and document["lease_until"] > now):
                self._lease(document, now)
                document.update(status="sending", attempts=document["attempts"] + 1, **changes)
                document["attempt_log"].append({"started_at": now, "by": document["lease_owner"]})
                return copy.deepcopy(document)
        return None

    def claim_retry(self, now):
        return self._claim(lambda d: d["status"] == "failed" and d["next_attempt_at"] <= now, now)

    def claim_stalled(self, now):
        return self._claim(lambda d: d["status"] == "sending", now, possible_repeat=True)

    def hold(self, delivery):
        import contextlib
        return contextlib.nullcontext(delivery)

    def count_for_recipient(self, key, expires_at):
        self.day_counts = getattr(self, "day_counts", {})
        self.day_counts[key] = self.day_counts.get(key, 0) + 1
        return self.day_counts[key]

    def finish(self, delivery, status, now, error=None, next_attempt_at=None):
        document = self.docs[delivery["_id"]]
        if document.get("lease_owner") != delivery.get("lease_owner"):
            return False
        document.update(status=status, error=error, next_attempt_at=next_attempt_at,
                        lease_owner=None, lease_until=None)
        document["attempt_log"][len(delivery["attempt_log"]) - 1]["outcome"] = status
        return True


class FakeMailer:
    """Records every message handed over; `crash_after_handoff` makes the next send
    hand the message over and then die before returning (the repeat window)."""

    def __init__(self):
        self.sent, self.crash_after_handoff = [], False

    def send(self, recipient, subject, body, message_key, message_id, idempotency_key):
        self.sent.append({"recipient": recipient, "key": message_key, "message_id": message_id,
                          "idempotency_key": idempotency_key})
        if self.crash_after_handoff:
            self.crash_after_handoff = False
            raise Crash("died after the provider took the message")


class FakeAccounts:
    """routing's AccountRepository in memory."""

    def __init__(self, accounts=None):
        self.accounts = copy.deepcopy(accounts or {})

    def get(self, staff_id):
        return copy.deepcopy(self.accounts.get(staff_id))

    def set_password(self, staff_id, password_hash, now):
        self.accounts.setdefault(staff_id, {}).update(
            password_hash=password_hash, failures=0, locked_until=None, password_changed_at=now)

    def record(self, staff_id, changes):
        if changes and staff_id in self.accounts:
            self.accounts[staff_id].update(copy.deepcopy(changes))


class FakeIntegrations:
    """routing's IntegrationRepository in memory (inserts once, updates on the version)."""

    def __init__(self):
        self.docs, self.events = {}, []

    def insert(self, client, event, now):
        if client["_id"] in self.docs:
            return False
        self.docs[client["_id"]] = copy.deepcopy(dict(client, updated_at=now))
        self.events.append(event)
        return True

    def get(self, client_id):
        return copy.deepcopy(self.docs.get(client_id))

    def update(self, client, changes, event, now):
        stored = self.docs.get(client["_id"])
        if stored is None or stored["version"] != client["version"]:
            return None
        stored.update(copy.deepcopy(changes), updated_at=now)
        self.events.append(event)
        return self.get(client["_id"])
