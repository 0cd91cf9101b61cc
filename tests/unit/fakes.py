"""In-memory stand-ins for repositories, for unit tests of the flows."""
import copy
from functools import lru_cache
from pathlib import Path

from closeloop_shared import org
from closeloop_shared.config import CALENDAR_DEFAULT_HOURS, CASE_TIMELINE_KEPT, DEFAULTS
from services.routing import calendar_flows, deadline_flows, duty, ladder, policy
from services.routing.calendar import StoreCalendar
from services.routing.lifecycle import ACTIVE

ACTIVE_STATUSES = {status.value for status in ACTIVE}


@lru_cache(maxsize=None)
def seed_chart():
    """The organisation of deploy/seeds/org.yaml."""
    return org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")


def rules(policies=(), hours=DEFAULTS[CALENDAR_DEFAULT_HOURS], timeouts=ladder.DEFAULT_TIMEOUTS, chart=None,
          open_counts=None):
    """deadline_flows.CaseRules without stores: `policies` beside the built-in ones,
    every store on one Shanghai calendar open `hours`, new cases assigned from an empty
    roster over `chart` (the seed organisation unless given) to whoever has the fewest
    `open_counts` ({staff_id: open cases}; a tie goes to the smaller staff id)."""
    chart, open_counts = chart or seed_chart(), dict(open_counts or {})
    calendar = StoreCalendar("Asia/Shanghai", calendar_flows.store_hours(None, hours))
    return deadline_flows.CaseRules(
        choose_policy=lambda facts: policy.choose(policies, facts),
        calendar_of=lambda store_id: calendar,
        assign=lambda store_id, category, severity, now: duty.assign(
            duty.Roster(store_id), chart, store_id, category, severity, open_counts, now),
        ack_timeouts=timeouts,
        rungs_of=lambda store_id: ladder.resolve_rungs(chart, store_id))


class FakeCases:
    """The CaseRepository contract in memory, including the version check."""

    def __init__(self, timeline_kept=DEFAULTS[CASE_TIMELINE_KEPT]):
        self.docs, self.lose_next_updates = {}, 0
        self.timelines, self.timeline_kept = {}, timeline_kept  # case_timeline: every entry

    def get(self, case_id):
        return copy.deepcopy(self.docs.get(case_id))

    def insert(self, case):
        if case["_id"] in self.docs:
            return False
        entries = [dict(e, seq=n) for n, e in enumerate(case.get("timeline") or [], start=1)]
        self.timelines[case["_id"]] = copy.deepcopy(entries)
        self.docs[case["_id"]] = copy.deepcopy(dict(case, timeline=entries[-self.timeline_kept:],
                                                    timeline_count=len(entries)))
        return True

    def of_customer(self, keys, since):
        return [copy.deepcopy(d) for d in self.docs.values()
                if set(keys) & set(d.get("customer_keys") or ()) and d["submitted_at"] >= since]

    def timeline_page(self, case, before=None, limit=50):
        upper = self.docs[case["_id"]]["timeline_count"] if before is None else before - 1
        return copy.deepcopy([e for e in reversed(self.timelines[case["_id"]]) if e["seq"] <= upper][:limit])

    def update(self, case, changes, entries, events, now):
        stored = self.docs[case["_id"]]
        if self.lose_next_updates:
            self.lose_next_updates -= 1
            stored["version"] += 1  # someone else wrote first
            return None
        if stored["version"] != case["version"]:
            return None
        stored.update(copy.deepcopy(changes), updated_at=now, version=stored["version"] + 1)
        count = stored.get("timeline_count", len(stored["timeline"]))
        entries = [dict(e, seq=count + n) for n, e in enumerate(entries, start=1)]
        self.timelines.setdefault(case["_id"], []).extend(copy.deepcopy(entries))
        stored["timeline"] = (stored["timeline"] + copy.deepcopy(entries))[-self.timeline_kept:]
        stored["timeline_count"] = count + len(entries)
        stored["outbox"] = stored.get("outbox", []) + events
        return {k: v for k, v in self.get(case["_id"]).items() if k != "outbox"}  # as CaseRepository.update

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
    """notify's DeliveryRepository contract in memory, leases, counters, webhook
    endpoints, withdrawals of consent and the outbox included (the test drives the clock
    it passes)."""

    LEASE = 10  # seconds
    DUE = ("queued", "deferred", "failed")
    NOT_SENT = (*DUE, "sending")

    def __init__(self, now):
        from datetime import timedelta
        from services.notify.repository import attempt_entry, begun_fields, identity
        self.now, self.identity, self.lease = now, identity, timedelta(seconds=self.LEASE)
        self.attempt_entry, self.begun_fields = attempt_entry, begun_fields
        self.docs, self.tokens, self.counts, self.endpoints = {}, iter(range(1, 10**9)), {}, {}
        self.published, self.completions = [], {}
        self.withdrawals = {}  # consent_withdrawals: key -> the latest withdrawn_at
        self.outbox = self

    def _lease(self, document, now):
        document.update(lease_owner=f"t{next(self.tokens)}", lease_until=now + self.lease)

    def _free(self, document, now):
        return not (document.get("lease_until") and document["lease_until"] > now)

    def create(self, document, now, outcome=None, start=None):
        key = (document["case_id"], document["kind"], document["recipient"])
        if key in self.docs:
            return None
        idempotency_key, message_id = self.identity(*key)
        document = copy.deepcopy({
            **document, "_id": key, "idempotency_key": idempotency_key, "message_id": message_id,
            "status": "queued", "status_history": [{"status": "queued", "at": now}], "attempts": 0,
            "channel_attempts": 0, "route_index": 0, "possible_repeat": False, "attempt_log": [],
            "next_attempt_at": now, "created_at": now, "outbox": []})
        if outcome is not None:
            status = getattr(outcome.status, "value", outcome.status)
            document.update(status=status, reason=outcome.reason, next_attempt_at=outcome.next_attempt_at,
                            lease_owner=None, lease_until=None, **copy.deepcopy(outcome.changes or {}))
            document["status_history"].append({"status": status, "at": now, "reason": outcome.reason})
        else:
            self._lease(document, now)
            if start is not None:
                lease = {"lease_owner": document["lease_owner"], "lease_until": document["lease_until"]}
                document.update(self.begun_fields(lease, start, now))
        self.docs[key] = document
        return copy.deepcopy(document)

    def create_and_resume(self, document, now, resumption, outcome=None, start=None):
        return self.create(document, now, outcome, start), self.resume(**resumption)

    def _claim(self, due, now, **changes):
        for document in sorted(self.docs.values(), key=lambda d: (d["next_attempt_at"] or now, d["created_at"])):
            if due(document) and self._free(document, now):
                self._lease(document, now)
                document.update(status="sending", **changes)
                return copy.deepcopy(document)
        return None

    def claim_due(self, now):
        return self._claim(lambda d: d["status"] in self.DUE and d["next_attempt_at"] <= now, now)

    def claim(self, delivery_id, now):
        return self._claim(lambda d: d["_id"] == delivery_id and d["status"] in self.DUE
                           and d["next_attempt_at"] <= now, now)

    def remember_completion(self, case_id, event_type, facts, now):
        self.completions[(case_id, event_type)] = copy.deepcopy(facts)

    def completion(self, case_id, event_type):
        return copy.deepcopy(self.completions.get((case_id, event_type)))

    def waiting(self, case_id, event_type):
        return [copy.deepcopy(d) for d in sorted(self.docs.values(), key=lambda d: d["created_at"])
                if d["case_id"] == case_id and d["status"] == "deferred" and d.get("waiting_for") == event_type]

    def resume(self, delivery, event_type, now, changes, history, release=False, outcome=None):
        document = self.docs[delivery["_id"]]
        if not (document["status"] == "deferred" and document.get("waiting_for") == event_type
                and not document.get("consent_withdrawn_at") and self._free(document, now)):
            return None
        document.update(copy.deepcopy(changes))
        document["status_history"].extend(copy.deepcopy(list(history)))
        if release:
            self._lease(document, now)
            document.update(status="queued", reason=None, next_attempt_at=now)
        else:
            document.update(status=getattr(outcome.status, "value", outcome.status), reason=outcome.reason,
                            next_attempt_at=outcome.next_attempt_at, **copy.deepcopy(outcome.changes or {}))
        return copy.deepcopy(document)

    def claim_stalled(self, now):
        claimed = self._claim(lambda d: d["status"] == "sending", now, possible_repeat=True)
        if claimed is not None and claimed["attempt_log"] and "outcome" not in claimed["attempt_log"][-1]:
            for document in (claimed, self.docs[claimed["_id"]]):
                document["attempt_log"][-1]["outcome"] = "unrecorded"
        return claimed

    def start_attempt(self, delivery, channel, now):
        document = self.docs[delivery["_id"]]
        if document.get("lease_owner") != delivery.get("lease_owner"):
            return None
        if document.get("consent_withdrawn_at"):  # refused: no attempt begins
            return copy.deepcopy(document)
        document["attempt_log"].append(self.attempt_entry(document["lease_owner"], channel, now))
        document.update(attempts=document["attempts"] + 1, channel_attempts=document["channel_attempts"] + 1,
                        channel=channel, status="sending")
        return copy.deepcopy(document)

    def hold(self, delivery):
        import contextlib
        return contextlib.nullcontext(delivery)

    def finish(self, delivery, status, now, reason=None, attempt=None, next_attempt_at=None, changes=None,
               events=()):
        document = self.docs[delivery["_id"]]
        if document.get("lease_owner") != delivery.get("lease_owner"):
            return False
        status = getattr(status, "value", status)
        document.update(status=status, reason=reason, next_attempt_at=next_attempt_at, lease_owner=None,
                        lease_until=None, **copy.deepcopy(changes or {}))
        document["status_history"].append({"status": status, "at": now, "reason": reason})
        if attempt is not None and delivery.get("attempt_log"):
            document["attempt_log"][len(delivery["attempt_log"]) - 1].update(attempt)
        document["outbox"].extend(copy.deepcopy(list(events)))
        return True

    def flush(self, document_id, events, publish):
        for event in events:
            publish(event["type"], event["payload"])
            self.published.append(event)
        self.docs[document_id]["outbox"] = []

    def _sent(self, channel, match):
        (field, value), = match.items()
        return next((d for d in self.docs.values() if d.get(field) == value
                     and d.get("channel") == channel and d["status"] == "sent"), None)

    def mark_delivered(self, channel, match, now, receipt):
        document = self._sent(channel, match)
        if document is None:
            return None
        document.update(status="delivered", delivered_at=now, receipt=copy.deepcopy(receipt))
        document["status_history"].append({"status": "delivered", "at": now, "reason": None})
        return document["template"]

    def claim_undelivered(self, channel, match, now):
        document = self._sent(channel, match)
        return None if document is None else self._claim(lambda d: d is document, now)

    def count(self, key, expires_at):
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]

    def uncount(self, key):
        self.counts[key] -= 1

    def take(self, limits, now, waits=None, arrived=None):
        over = []
        for key, limit, _ in limits:  # a limit of 0 or less: refused, nothing written (as the repository)
            over.append(limit <= 0 or self.counts.get(key, 0) >= limit)
            if not over[-1]:
                self.counts[key] = self.counts.get(key, 0) + 1
        facts = self.completion(*waits) if waits is not None else None
        if arrived is not None:
            self.remember_completion(*arrived, now)
        return over, facts

    @staticmethod
    def _withdrawal_keys(member_id, customer_keys):
        return [*([f"member|{member_id}"] if member_id else []), *(f"handle|{key}" for key in customer_keys)]

    def record_withdrawal(self, member_id, customer_keys, withdrawn_at):
        for key in self._withdrawal_keys(member_id, customer_keys):
            self.withdrawals[key] = max(self.withdrawals.get(key, withdrawn_at), withdrawn_at)

    def withdrawals_of(self, member_id, customer_keys):
        return [self.withdrawals[key] for key in self._withdrawal_keys(member_id, customer_keys)
                if key in self.withdrawals]

    def held_for_customer(self, member_id, customer_keys):
        """As the repository: only the fields it projects (HELD_FIELDS), so a flow reading
        another one of a held delivery fails here as it would there."""
        from services.notify.repository import HELD_FIELDS
        return [{name: copy.deepcopy(d[name]) for name in ("_id", *HELD_FIELDS) if name in d}
                for d in sorted(self.docs.values(), key=lambda d: d["created_at"])
                if d["audience"] == "customer" and d["status"] in self.NOT_SENT
                and ((member_id and d.get("member_id") == member_id)
                     or set(customer_keys) & set(d.get("customer_keys") or ()))]

    def claim_held(self, delivery, now):
        document = self.docs[delivery["_id"]]
        if document["status"] not in self.DUE or not self._free(document, now):
            return None
        self._lease(document, now)
        return dict(delivery, _id=document["_id"], lease_owner=document["lease_owner"])  # as the repository

    def mark_withdrawn(self, delivery, withdrawn_at):
        document = self.docs[delivery["_id"]]
        if document["status"] not in self.NOT_SENT:
            return False
        document["consent_withdrawn_at"] = withdrawn_at
        return True

    def mark_withdrawn_made(self, case_id, kind, recipient, withdrawn_at):
        return (case_id, kind, recipient) in self.docs and self.mark_withdrawn(
            {"_id": (case_id, kind, recipient)}, withdrawn_at)

    def endpoint_disabled(self, endpoint_id):
        return bool(self.endpoints.get(endpoint_id, {}).get("disabled_at"))

    def endpoint_failed(self, endpoint_id, now, threshold):
        endpoint = self.endpoints.setdefault(endpoint_id, {"failures": 0})
        endpoint["failures"] += 1
        if endpoint["failures"] >= threshold and not endpoint.get("disabled_at"):
            endpoint["disabled_at"] = now
            return True
        return False

    def endpoint_succeeded(self, endpoint_id):
        self.endpoints.setdefault(endpoint_id, {})["failures"] = 0


class FakeChannel:
    """A channel adapter that records every message handed over; `failures` are raised
    by the next sends, in order; `crash_after_handoff` makes the next send hand the
    message over and then die before returning (the repeat window)."""

    def __init__(self, failures=()):
        self.sent, self.failures, self.crash_after_handoff = [], list(failures), False

    def send(self, outgoing):
        from services.notify.channels import Receipt
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append({"address": outgoing.address, "message_id": outgoing.message_id,
                          "idempotency_key": outgoing.idempotency_key, "content": outgoing.content})
        if self.crash_after_handoff:
            self.crash_after_handoff = False
            raise Crash("died after the provider took the message")
        return Receipt(request_id=f"req-{len(self.sent)}", provider_message_id=f"msg-{len(self.sent)}",
                       response="ok")


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
