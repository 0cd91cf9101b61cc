"""Stateful properties of the consumers' idempotency (hypothesis RuleBasedStateMachine):
intake, routing and notify as their real flows and handlers, over in-memory
repositories (tests/unit/fakes.py) and an in-memory bus with at-least-once delivery.

Any interleaving of delivering, redelivering (a crash before the ack), delivering out
of order, failing mid-publish (events left in the outbox for the relay), racing deadline
checks of two replicas, a notify process dying after the provider took a message, and
the clock moving on must give: one case per external reference; at most one escalation
per case and rung; one notification per logical message (case, kind, recipient), the
only exception being a death after hand-over, whose repeat carries the same Message-ID
and is flagged possible_repeat. When everything is finally delivered, nothing is lost."""
import inspect
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from closeloop_shared import events as ev
from closeloop_shared import org
from services.intake import cases as intake_cases
from services.intake import flows as intake_flows
from services.notify import flows as notify_flows
from services.notify.configuration import load_settings
from services.notify.kinds import notification
from closeloop_shared.contract import REFERRAL_CHANNELS, Channel, ClockBasis, ClockName
from services.routing import deadline_flows, policy
from services.routing import flows as routing_flows
from tests.unit.fakes import Crash, FakeCases, FakeChannel, FakeDeliveries, FakeFeedback, rules


T0 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")


def _short(name, hours, basis=ClockBasis.WALL):
    return policy.ClockSpec(name, timedelta(hours=hours), basis, timedelta(minutes=30))


# Short clocks, so that warnings, breaches and the climbs they cause happen within a run
# (beside the ladder's own: a rung that does not acknowledge within 30 min to 4 h climbs).
SHORT = (_short(ClockName.FIRST_RESPONSE, 2), _short(ClockName.UPDATE, 1, ClockBasis.BUSINESS),
         _short(ClockName.RESOLUTION, 6))
RULES = rules((
    policy.validate(policy.SlaPolicy("short", 1, "Short", policy.Conditions(), SHORT)),
    policy.validate(policy.SlaPolicy(
        "short-referral", 1, "Short referral",
        policy.Conditions(channels=frozenset(Channel(c) for c in REFERRAL_CHANNELS)),
        SHORT + (_short(ClockName.REPORT, 1),)))))
CHANNELS = ("hotline", "wechat", "media")  # media: a referral, starting on the store manager's rung
REFS = 4

# who consumes what, in this model of the bus
CONSUMERS = {ev.CASE_SUBMITTED: ("routing", "notify"), ev.CASE_ROUTED: ("notify",),
             ev.CASE_ESCALATED: ("notify",)}


class NotifyWorker:
    """notify's flows (services/notify/flows.py) on fake dependencies: e-mail only, no
    quiet hours (the property is about identity, not timing)."""

    def __init__(self, deliveries, mailer, clock):
        self.deliveries, self.channels, self.clock = deliveries, {"email": mailer}, clock
        self.settings = load_settings({"NOTIFY_QUIET_HOURS": "off", "NOTIFY_ACK_WAIT_SECONDS": 0})

    def deliver(self, event_type, event):
        notify_flows.deliver(self.deliveries, self.channels, self.settings, CHART, notification(event_type, event),
                             self.clock, lambda *_: None)

    def send(self, delivery):
        notify_flows.attempt(self.deliveries, self.channels, self.settings, delivery, self.clock, lambda *_: None)


def submission(ref, channel):
    return {"store_id": "SH-XH-001", "channel": channel,
            "customer": {"name": "陈女士", "phone": "+8613912345678", "email": f"c{ref}@example.com"},
            "content": "做完护理脸上过敏红肿", "occurred_at": T0, "category": None,
            "external_ref": {"source": "pos", "id": str(ref)}, "service_context": None, "locale": "zh-CN"}


def accept(repository, publish, sub, now):
    """intake's flow, whichever signature it has (bus submissions are attributed to
    their AMQP user where the flow knows about submitters)."""
    kwargs = dict(repository=repository, publish=publish, submission=sub,
                  store=CHART.store(sub["store_id"]), via="bus", now=now)
    if "submitted_by" in inspect.signature(intake_flows.accept).parameters:
        kwargs["submitted_by"] = intake_cases.submitter(bus_publisher="guest")
    return intake_flows.accept(**kwargs)


class Consumers(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.now = T0
        self.feedback, self.cases = FakeFeedback(), FakeCases()
        self.deliveries, self.mailer = FakeDeliveries(lambda: self.now), FakeChannel()
        self.notify = NotifyWorker(self.deliveries, self.mailer, lambda: self.now)
        self.queue = []  # unacked messages: (consumer, kind, body)
        self.submitted = set()
        self.handoff_deaths = Counter()  # logical key -> deaths after hand-over

    def teardown(self):
        self.drain()
        self.check_complete()

    # -- the bus ---------------------------------------------------------------------

    def publish(self, event_type, payload):
        # through the event schemas, as on the wire
        body = ev.dump(event_type, ev.load(event_type, payload)) if event_type in CONSUMERS else None
        for consumer in CONSUMERS.get(event_type, ()):
            self.queue.append((consumer, event_type, body))

    def handle(self, consumer, kind, body):
        if consumer == "intake":
            accept(self.feedback, self.publish, body, self.now)
        elif consumer == "routing":
            case, events = routing_flows.route(self.cases, CHART, RULES, ev.load(kind, body), self.now)
            self.cases_outbox().flush(case["_id"], events, self.publish)
        else:
            self.notify.deliver(kind, ev.load(kind, body))

    def cases_outbox(self):
        if not hasattr(self, "_cases_outbox"):
            from tests.unit.fakes import FakeOutbox
            self._cases_outbox = FakeOutbox(self.cases.docs)
        return self._cases_outbox

    # -- rules -------------------------------------------------------------------------

    @rule(ref=st.integers(0, REFS - 1), channel=st.sampled_from(CHANNELS))
    def submit(self, ref, channel):
        """Another system sends feedback (again, perhaps: same external reference)."""
        self.submitted.add(ref)
        self.queue.append(("intake", "feedback", submission(ref, channel)))

    @precondition(lambda self: self.queue)
    @rule(pick=st.integers(0, 10**6), ack=st.booleans(), stale=st.booleans(),
          publish_fails_after=st.none() | st.integers(0, 2))
    def deliver(self, pick, ack, stale, publish_fails_after):
        """Any queued message, in any order; without the ack it is redelivered later (the
        consumer died after its work); a stale read stands for a concurrent duplicate;
        publishing may fail part-way (the events wait in the outbox for the relay)."""
        index = pick % len(self.queue)
        consumer, kind, body = self.queue[index]
        self.feedback.stale_reads = stale
        self.feedback.outbox.fail_after = self.cases_outbox().fail_after = publish_fails_after
        try:
            self.handle(consumer, kind, body)
        finally:
            self.feedback.stale_reads = False
            self.feedback.outbox.fail_after = self.cases_outbox().fail_after = None
        if ack:
            self.queue.pop(index)

    @precondition(lambda self: any(c == "notify" for c, _, _ in self.queue))
    @rule(pick=st.integers(0, 10**6))
    def notify_dies_after_handoff(self, pick):
        """notify hands a message to the provider and dies before recording it (and so
        before acking the event)."""
        candidates = [m for m in self.queue if m[0] == "notify"]
        _, kind, body = candidates[pick % len(candidates)]
        message = notification(kind, ev.load(kind, body))
        self.mailer.crash_after_handoff = True
        try:
            self.notify.deliver(kind, ev.load(kind, body))
        except Crash:
            self.handoff_deaths[(message.case_id, message.kind, message.recipient)] += 1
        finally:
            self.mailer.crash_after_handoff = False

    @rule()
    def relay(self):
        self.feedback.outbox.relay(self.publish)
        self.cases_outbox().relay(self.publish)

    @rule(minutes=st.integers(1, 90))
    def clock_moves_on(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule(race=st.booleans())
    def check_deadlines(self, race):
        """The SLA timer; with `race`, a second replica read the same due cases first and
        writes after this one (its writes must lose)."""
        stale = self.cases.due(self.now, 200) if race else []
        for case, events in deadline_flows.check_due(self.cases, CHART, RULES, self.now, grace=timedelta(0)):
            self.cases_outbox().flush(case["_id"], events, self.publish)
        for case in stale:
            for updated, events in deadline_flows._check(self.cases, CHART, RULES, case, self.now):
                self.cases_outbox().flush(updated["_id"], events, self.publish)

    @rule()
    def take_over_stalled_sends(self):
        """notify's takeover timer, once the dead sender's lease has run out."""
        self.now += timedelta(seconds=FakeDeliveries.LEASE + 1)
        while (delivery := self.deliveries.claim_stalled(self.now)) is not None:
            self.notify.send(delivery)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def one_case_per_external_reference(self):
        refs = Counter(d["external_ref"]["id"] for d in self.feedback.docs.values())
        assert all(n == 1 for n in refs.values()), refs

    @invariant()
    def one_escalation_per_case_and_rung(self):
        for case in self.cases.docs.values():
            rungs = [e["rung"] for e in case["timeline"] if e["action"] == "escalated"]
            assert len(rungs) == len(set(rungs)), (case["_id"], rungs)

    @invariant()
    def one_notification_per_logical_message(self):
        sent = Counter()
        ids = {}
        keys = {self.deliveries.identity(*key)[0]: key for key in self.deliveries.docs}
        for mail in self.mailer.sent:
            key = keys[mail["idempotency_key"]]
            sent[key] += 1
            assert ids.setdefault(key, mail["message_id"]) == mail["message_id"], "a copy with a new Message-ID"
        for key, count in sent.items():
            deaths = self.handoff_deaths[key]
            assert count <= 1 + deaths, (key, count)
            if count > 1:
                assert self.deliveries.docs[key]["possible_repeat"], key

    # -- the end: everything delivered, nothing lost ---------------------------------------

    def drain(self):
        for _ in range(1000):
            self.relay()
            while self.queue:
                consumer, kind, body = self.queue.pop(0)
                self.handle(consumer, kind, body)
            self.take_over_stalled_sends()
            if not self.queue and not any(d.get("outbox") for d in self.feedback.docs.values()) \
                    and not any(d.get("outbox") for d in self.cases.docs.values()):
                return
        raise AssertionError("the bus never drained")

    def check_complete(self):
        self.one_case_per_external_reference()
        self.one_escalation_per_case_and_rung()
        self.one_notification_per_logical_message()
        assert {d["external_ref"]["id"] for d in self.feedback.docs.values()} == {str(r) for r in self.submitted}
        assert set(self.cases.docs) == set(self.feedback.docs)  # every case routed
        sent = {(d["case_id"], d["kind"]) for d in self.deliveries.docs.values()
                if d["status"] in ("sent", "abandoned")}  # abandoned: no e-mail address (nor other channel)
        for case_id in self.feedback.docs:
            assert (case_id, "acknowledgement") in sent and (case_id, "assigned") in sent
        for case in self.cases.docs.values():
            for entry in case["timeline"]:
                if entry["action"] == "escalated":
                    assert (case["_id"], f"escalated:{entry['rung']}") in sent


Consumers.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
TestConsumers = Consumers.TestCase
