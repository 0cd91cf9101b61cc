"""Stateful properties of notify's flows (hypothesis RuleBasedStateMachine) over the
in-memory repository: any interleaving of events delivered and redelivered, providers
failing (transient, throttled, permanent), a sender dying after the provider took the
message, takeovers, the send timer and the clock moving on (across quiet hours) gives
at most one message per logical notification and channel, the only repeats being
deaths after hand-over, each flagged possible_repeat with the same identity; and once
the providers recover, every notification ends sent or abandoned, never lost."""
from collections import Counter
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from closeloop_shared import events as ev
from services.notify import flows, kinds
from services.notify.channels import ChannelError, Failure
from services.notify.configuration import load_settings
from tests.unit.fakes import Crash, FakeChannel, FakeDeliveries
from tests.unit.test_notify_flows import CHART, customer
from tests.unit.test_notify_templates import escalated, routed

START = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)  # 20:00 in Shanghai: quiet hours an hour away
FAILURES = st.sampled_from([Failure.TRANSIENT, Failure.THROTTLED, Failure.PERMANENT])


def event_for(index):
    """A small set of logical notifications: customers reached by SMS or e-mail (or
    both, WeChat first), a manager's assignment, a regional manager's escalation."""
    if index < 3:
        contact = ({"phone": "+8613800000001"}, {"email": "b@example.com"},
                   {"phone": "+8613800000003", "email": "c@example.com", "wechat_openid": "o-c"})[index]
        return ev.CASE_SUBMITTED, dict(customer(**contact), case_id=f"c{index}")
    if index == 3:
        return ev.CASE_ROUTED, dict(routed(), case_id="c3")
    return ev.CASE_ESCALATED, dict(escalated(), case_id="c4")


class Notify(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.now = START
        self.deliveries = FakeDeliveries(lambda: self.now)
        self.channels = {name: FakeChannel() for name in ("wechat", "sms", "email", "wecom")}
        self.settings = load_settings({"NOTIFY_SMS_TEMPLATES": '{"acknowledgement": "SMS_1"}',
                                       "NOTIFY_WECHAT_TEMPLATES": '{"acknowledgement": "t-1"}',
                                       "NOTIFY_WECOM_ROBOTS": '{"region:east": "robot-east"}',
                                       "NOTIFY_ACK_WAIT_SECONDS": 5})
        self.deaths = Counter()  # idempotency key -> deaths after hand-over
        self.published = []

    def clock(self):
        return self.now

    def publish(self, event_type, payload):
        self.published.append(payload)

    @rule(index=st.integers(0, 4))
    def event_arrives(self, index):
        """An event, for the first time or redelivered."""
        event_type, event = event_for(index)
        flows.deliver(self.deliveries, self.channels, self.settings, CHART, kinds.notification(event_type, event),
                      self.clock, self.publish)

    @rule(index=st.integers(0, 2))
    def routing_decides(self, index):
        """case_routed for a customer's case, before or after the acknowledgement's event,
        perhaps redelivered: its deadline completes the waiting acknowledgement."""
        event = dict(routed(), case_id=f"c{index}")
        flows.complete(self.deliveries, self.channels, self.settings, ev.CASE_ROUTED, event, self.clock,
                       self.publish)

    @rule(channel=st.sampled_from(["wechat", "sms", "email", "wecom"]), failure=FAILURES)
    def provider_fails_next(self, channel, failure):
        self.channels[channel].failures.append(ChannelError(failure, "test"))

    @rule(channel=st.sampled_from(["wechat", "sms", "email", "wecom"]))
    def sender_dies_after_handoff(self, channel):
        """The next send hands the message over, then the process dies (the timer's
        attempt, so the key of whatever it was sending is known from the channel)."""
        self.channels[channel].crash_after_handoff = True
        try:
            flows.send_due(self.deliveries, self.channels, self.settings, self.clock, self.publish, 50)
        except Crash:
            self.deaths[self.channels[channel].sent[-1]["idempotency_key"]] += 1
        finally:
            self.channels[channel].crash_after_handoff = False

    @rule(minutes=st.integers(1, 240))
    def time_passes(self, minutes):
        self.now += timedelta(minutes=minutes)
        flows.take_over_stalled(self.deliveries, self.channels, self.settings, self.clock, self.publish, 50)
        flows.send_due(self.deliveries, self.channels, self.settings, self.clock, self.publish, 50)

    @invariant()
    def one_message_per_notification_and_channel_but_flagged_repeats(self):
        for name, channel in self.channels.items():
            copies = Counter(m["idempotency_key"] for m in channel.sent)
            for key, count in copies.items():
                assert count <= 1 + self.deaths[key], (name, key, count)
                if count > 1:
                    (document,) = [d for d in self.deliveries.docs.values() if d["idempotency_key"] == key]
                    assert document["possible_repeat"]
        assert len({(d["case_id"], d["kind"], d["recipient"]) for d in self.deliveries.docs.values()}) \
            == len(self.deliveries.docs)

    @invariant()
    def each_abandonment_is_announced_once(self):
        abandoned = [d for d in self.deliveries.docs.values() if d["status"] == "abandoned"]
        assert sorted(p["kind"] + p["recipient"] for p in self.published) == \
            sorted(d["kind"] + d["recipient"] for d in abandoned)

    def teardown(self):
        for channel in self.channels.values():
            channel.failures.clear()
        for _ in range(40):  # providers recovered: a day passes, hour by hour
            self.now += timedelta(hours=1)
            flows.take_over_stalled(self.deliveries, self.channels, self.settings, self.clock, self.publish, 50)
            flows.send_due(self.deliveries, self.channels, self.settings, self.clock, self.publish, 50)
        for document in self.deliveries.docs.values():
            assert document["status"] in ("sent", "abandoned"), document["status_history"]


Notify.TestCase.settings = settings(max_examples=80, stateful_step_count=25, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
TestNotify = Notify.TestCase
