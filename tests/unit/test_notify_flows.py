"""services/notify/flows.py over in-memory fakes (tests/unit/fakes.py): which channel
carries a notification, what happens on each kind of failure, quiet hours, quotas and
limits, the delivery log and notification_failed."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from closeloop_shared import events as ev
from closeloop_shared import org
from services.notify import flows, kinds, policy, receipts
from services.notify.channels import ChannelError, Failure
from services.notify.configuration import load_settings
from tests.unit.fakes import FakeChannel, FakeDeliveries
from tests.unit.test_notify_templates import CUSTOMER, escalated, routed, submitted

CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
DAYTIME = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)       # 11:00 in Shanghai
NIGHT = datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc)       # 23:30 in Shanghai
NINE = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)          # 09:00 the next morning


class World:
    def __init__(self, now=DAYTIME, channels=("wechat", "sms", "email", "wecom"), **config):
        self.now = now
        self.deliveries = FakeDeliveries(lambda: self.now)
        self.channels = {name: FakeChannel() for name in channels}
        self.settings = load_settings({
            "NOTIFY_SMS_TEMPLATES": json.dumps({"acknowledgement": "SMS_300001"}),
            "NOTIFY_WECHAT_TEMPLATES": json.dumps({"acknowledgement": "tmpl-ack"}),
            "NOTIFY_WECOM_ROBOTS": json.dumps({"store:SH-XH-001": "robot-xh", "region:east": "robot-east"}),
            "NOTIFY_SMS_SIGN_NAME": "悦颜美容", "NOTIFY_ACK_WAIT_SECONDS": 0, **config})
        self.published = []

    def clock(self):
        return self.now

    def publish(self, event_type, payload):
        self.published.append((event_type, payload))

    def event(self, event_type, event):
        flows.deliver(self.deliveries, self.channels, self.settings, CHART, kinds.notification(event_type, event),
                      self.clock, self.publish)

    def tick(self):
        return flows.send_due(self.deliveries, self.channels, self.settings, self.clock, self.publish, 50)

    def only(self):
        (delivery,) = self.deliveries.docs.values()
        return delivery

    def sent(self, channel):
        return self.channels[channel].sent


def customer(**contact):
    return submitted(customer={**CUSTOMER, "phone": None, "email": None, **contact})


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- channel choice and fallback ----------------------------------------------------------------

def test_a_customer_with_only_a_phone_gets_an_sms_with_the_providers_ids_logged():
    world = World()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    (sms,) = world.sent("sms")
    assert sms["address"] == "+8613812345678" and sms["content"].template == "SMS_300001"
    delivery = world.only()
    assert delivery["status"] == "sent" and delivery["channel"] == "sms"
    assert {"channel": "sms", "outcome": "sent", "request_id": "req-1",
            "provider_message_id": "msg-1"}.items() <= delivery["attempt_log"][0].items()
    assert [h["status"] for h in delivery["status_history"]] == ["queued", "sent"]


def test_wechat_first_and_a_refusal_falls_through_to_sms_at_once():
    world = World()
    world.channels["wechat"].failures.append(ChannelError(Failure.PERMANENT, 43101, "user refuse"))
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678", wechat_openid="o-liu", email="liu@example.com"))
    assert len(world.sent("sms")) == 1 and world.sent("email") == []
    delivery = world.only()
    assert [(a["channel"], a["outcome"], a.get("code")) for a in delivery["attempt_log"]] == [
        ("wechat", "permanent", "43101"), ("sms", "sent", None)]
    assert [h["status"] for h in delivery["status_history"]] == ["queued", "queued", "sent"]


def test_the_preferred_channel_goes_first():
    world = World()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678", wechat_openid="o-liu",
                                            email="liu@example.com", preferred_channel="email"))
    assert len(world.sent("email")) == 1 and world.sent("wechat") == world.sent("sms") == []


def test_a_channel_not_configured_is_skipped():
    world = World(channels=("email",))
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678", email="liu@example.com"))
    assert len(world.sent("email")) == 1


def test_staff_hear_through_their_own_groups_wecom_robot_then_email():
    world = World()
    world.event(ev.CASE_ROUTED, routed())
    world.event(ev.CASE_ESCALATED, escalated())  # to the regional manager: the region's group
    assert [m["address"] for m in world.sent("wecom")] == ["robot-xh", "robot-east"]
    world.channels["wecom"].failures.append(ChannelError(Failure.PERMANENT, 93000, "invalid webhook url"))
    world.event(ev.CASE_ESCALATED, escalated(rung=4))
    assert [m["address"] for m in world.sent("email")] == ["rm.east@yueyan.example"]


def test_a_person_without_a_group_of_their_own_is_told_in_their_stores():
    world = World(NOTIFY_WECOM_ROBOTS=json.dumps({"store:SH-XH-001": "robot-xh"}))
    world.event(ev.CASE_ESCALATED, escalated())
    assert [m["address"] for m in world.sent("wecom")] == ["robot-xh"]


# -- failures -------------------------------------------------------------------------------------

def test_a_gateway_down_for_a_minute_is_retried_and_the_message_arrives_once():
    world = World()
    world.channels["sms"].failures.extend([ChannelError(Failure.TRANSIENT, "ConnectionError")] * 2)
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    delivery = world.only()
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] == DAYTIME + timedelta(seconds=30)
    world.now += timedelta(seconds=30)
    world.tick()
    assert world.only()["next_attempt_at"] == world.now + timedelta(seconds=60)  # backoff doubles
    world.now += timedelta(seconds=60)
    world.tick()
    world.now += timedelta(minutes=5)
    world.tick()
    assert len(world.sent("sms")) == 1 and world.only()["status"] == "sent"
    assert world.only()["attempts"] == 3


def test_a_permanent_failure_everywhere_is_abandoned_with_notification_failed():
    world = World()
    world.channels["sms"].failures.append(ChannelError(Failure.PERMANENT, "isv.MOBILE_NUMBER_ILLEGAL"))
    before = metric("closeloop_notifications_total", channel="sms", kind="acknowledgement", outcome="abandoned")
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    delivery = world.only()
    assert delivery["status"] == "abandoned" and delivery["reason"] == "sms: isv.MOBILE_NUMBER_ILLEGAL"
    ((event_type, payload),) = world.published
    assert event_type == ev.NOTIFICATION_FAILED
    failed = ev.load(ev.NOTIFICATION_FAILED, payload)
    assert failed["action"] == "phone_call" and failed["channels_tried"] == ["sms"]
    assert (failed["case_id"], failed["kind"], failed["recipient"]) == ("c42", "acknowledgement", delivery["recipient"])
    assert failed["event_id"] and "13812345678" not in json.dumps(payload)
    assert metric("closeloop_notifications_total", channel="sms", kind="acknowledgement",
                  outcome="abandoned") == before + 1


def test_transient_failures_move_on_after_the_channels_attempts_then_abandon():
    world = World(channels=("sms", "email"))
    for channel in ("sms", "email"):
        world.channels[channel].failures.extend(
            [ChannelError(Failure.TRANSIENT, "http_503")] * flows.ATTEMPTS_PER_CHANNEL)
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678", email="liu@example.com"))
    for _ in range(2 * flows.ATTEMPTS_PER_CHANNEL):
        world.now += timedelta(hours=1)
        world.tick()
    delivery = world.only()
    assert delivery["status"] == "abandoned" and delivery["attempts"] == 2 * flows.ATTEMPTS_PER_CHANNEL
    assert [event_type for event_type, _ in world.published] == [ev.NOTIFICATION_FAILED]


def test_nobody_reachable_is_a_phone_call_task_for_the_store():
    world = World()
    world.event(ev.CASE_SUBMITTED, customer())
    assert world.only()["status"] == "abandoned" and world.only()["reason"] == "no reachable channel"
    assert ev.load(ev.NOTIFICATION_FAILED, world.published[0][1])["action"] == "phone_call"


def test_a_message_no_channel_can_carry_says_why():
    world = World(NOTIFY_SMS_TEMPLATES="{}")  # no template code registered for the acknowledgement
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert world.only()["status"] == "abandoned"
    assert world.only()["reason"] == "no channel could carry it: sms: no sms template code configured for acknowledgement"


def test_a_provider_rate_limit_defers_without_counting_as_a_failure():
    world = World()
    world.channels["sms"].failures.append(ChannelError(Failure.THROTTLED, "isv.BUSINESS_LIMIT_CONTROL"))
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    delivery = world.only()
    assert delivery["status"] == "deferred" and delivery["next_attempt_at"] == DAYTIME + flows.THROTTLE_PAUSE
    world.now += flows.THROTTLE_PAUSE
    world.tick()
    assert world.only()["status"] == "sent" and len(world.sent("sms")) == 1


def test_a_delivery_recorded_before_routes_is_closed_not_resent():
    world = World()
    world.deliveries.docs["old"] = {"_id": "old", "case_id": "c0", "kind": "acknowledgement", "recipient": "a@b.cn",
                                    "status": "failed", "next_attempt_at": DAYTIME, "created_at": DAYTIME,
                                    "attempt_log": [], "status_history": [], "outbox": []}
    world.tick()
    assert world.deliveries.docs["old"]["status"] == "abandoned" and world.sent("email") == []


def test_a_redelivered_event_is_sent_once():
    world = World()
    for _ in range(3):
        world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert len(world.sent("sms")) == 1 and len(world.deliveries.docs) == 1


# -- quiet hours -------------------------------------------------------------------------------------

def test_an_acknowledgement_at_23_30_waits_for_09_00_while_an_escalation_goes_at_once():
    world = World(now=NIGHT)
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    world.event(ev.CASE_ESCALATED, escalated())
    assert world.sent("sms") == [] and len(world.sent("wecom")) == 1
    ack = next(d for d in world.deliveries.docs.values() if d["kind"] == "acknowledgement")
    assert ack["status"] == "deferred" and ack["next_attempt_at"] == NINE and ack["reason"] == "quiet hours"
    world.now = NINE - timedelta(seconds=1)
    world.tick()
    assert world.sent("sms") == []
    world.now = NINE
    world.tick()
    assert len(world.sent("sms")) == 1


def test_deferred_messages_go_out_in_the_order_they_came():
    world = World(now=NIGHT)
    for index, phone in enumerate(("+8613800000001", "+8613800000002", "+8613800000003")):
        world.event(ev.CASE_SUBMITTED, dict(customer(phone=phone), case_id=f"c{index}"))
        world.now += timedelta(minutes=5)
    world.now = NINE
    world.tick()
    assert [m["address"] for m in world.sent("sms")] == ["+8613800000001", "+8613800000002", "+8613800000003"]


def test_quiet_hours_can_be_switched_off():
    world = World(now=NIGHT, NOTIFY_QUIET_HOURS="off")
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert len(world.sent("sms")) == 1


# -- quotas and limits -------------------------------------------------------------------------------

def test_a_flood_naming_one_customer_is_capped_per_day():
    world = World(NOTIFY_CUSTOMER_DAILY_QUOTA=3)
    for index in range(5):
        world.event(ev.CASE_SUBMITTED, dict(customer(phone="+8613812345678"), case_id=f"c{index}"))
    statuses = sorted(d["status"] for d in world.deliveries.docs.values())
    assert statuses == ["sent"] * 3 + ["suppressed"] * 2 and len(world.sent("sms")) == 3


def test_a_staff_members_hourly_limit_defers_all_but_urgent_alerts():
    world = World(NOTIFY_STAFF_HOURLY_QUOTA=2, NOTIFY_PROVIDER_PER_MINUTE="{}")
    for index in range(3):
        world.event(ev.CASE_ROUTED, dict(routed(), case_id=f"c{index}"))
    world.event(ev.CASE_ROUTED, dict(routed(severity="critical"), case_id="urgent"))
    statuses = {d["case_id"]: d["status"] for d in world.deliveries.docs.values()}
    assert statuses == {"c0": "sent", "c1": "sent", "c2": "deferred", "urgent": "sent"}
    assert world.deliveries.docs[("c2", "assigned", "staff:sh-xh-mg")]["next_attempt_at"] == \
        DAYTIME.replace(minute=0) + timedelta(hours=1)


def test_a_wecom_robot_takes_20_a_minute_and_the_rest_wait_for_the_next_minute():
    world = World()
    for index in range(21):
        world.event(ev.CASE_ROUTED, dict(routed(severity="critical"), case_id=f"c{index}"))
    assert len(world.sent("wecom")) == 20
    late = world.deliveries.docs[("c20", "assigned", "staff:sh-xh-mg")]
    assert late["status"] == "deferred" and late["next_attempt_at"] == DAYTIME + timedelta(minutes=1)
    world.now += timedelta(minutes=1)
    world.tick()
    assert len(world.sent("wecom")) == 21


# -- outbound webhooks ---------------------------------------------------------------------------------

SECRET = "whsec_" + "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="


def test_webhook_endpoints_get_their_copy_without_personal_data():
    world = World(channels=("sms", "webhook"), NOTIFY_WEBHOOKS=json.dumps([
        {"id": "crm", "url": "http://crm.example/hooks", "secrets": [SECRET], "kinds": ["acknowledgement"]}]))
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    world.event(ev.CASE_ROUTED, routed())
    (copy,) = world.sent("webhook")
    assert copy["address"] == "crm" and copy["content"].params["type"] == "notification.acknowledgement"
    assert "13812345678" not in json.dumps(copy["content"].params)


def test_an_endpoint_failing_persistently_is_disabled_with_a_metric():
    world = World(channels=("sms", "webhook"), NOTIFY_WEBHOOKS=json.dumps([
        {"id": "crm", "url": "http://crm.example/hooks", "secrets": [SECRET]}]))
    world.channels["webhook"].failures.extend([ChannelError(Failure.PERMANENT, "http_410")] * 3)
    before = metric("closeloop_notify_webhooks_disabled_total")
    for index in range(4):
        world.event(ev.CASE_SUBMITTED, dict(customer(phone="+8613812345678"), case_id=f"c{index}"))
    hooks = [d for d in world.deliveries.docs.values() if d["audience"] == "system"]
    assert [d["status"] for d in hooks] == ["abandoned"] * 3  # the fourth case found the endpoint disabled
    assert metric("closeloop_notify_webhooks_disabled_total") == before + 1
    assert world.published == []  # an endpoint is not a person: no phone-call task for the store


@pytest.mark.parametrize("outcome", ["sent", "failed", "deferred", "abandoned", "suppressed"])
def test_every_series_exists_at_zero_from_the_start(outcome):
    assert REGISTRY.get_sample_value("closeloop_notifications_total",
                                     {"channel": "wechat", "kind": "revisit_due", "outcome": outcome}) is not None
    assert REGISTRY.get_sample_value("closeloop_notify_provider_requests_total",
                                     {"channel": "webhook", "result": "error"}) is not None


# -- provider receipts ----------------------------------------------------------------------------------

def receipt(delivery, success, code="DELIVERED"):
    return receipts.from_aliyun({"out_id": delivery["idempotency_key"], "success": success, "err_code": code,
                                 "err_msg": "", "biz_id": "biz-1", "report_time": "2026-11-24 11:00:05"})


def test_a_delivered_receipt_marks_the_sms_delivered_once():
    world = World()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    reports = [receipt(world.only(), True)] * 2 + [receipt({"idempotency_key": "unknown"}, True)]
    assert flows.record_receipts(world.deliveries, world.channels, world.settings, "sms", reports, world.clock,
                                 world.publish) == 1
    assert world.only()["status"] == "delivered"
    assert [h["status"] for h in world.only()["status_history"]] == ["queued", "sent", "delivered"]


def test_an_undelivered_sms_moves_on_to_email_else_is_abandoned():
    world = World()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678", email="liu@example.com"))
    world.event(ev.CASE_SUBMITTED, dict(customer(phone="+8613800000002"), case_id="c-phone-only"))
    with_email, phone_only = (world.deliveries.docs[(c, "acknowledgement", r)] for c, _, r in
                              sorted(world.deliveries.docs, key=lambda k: k[0] != "c42"))
    flows.record_receipts(world.deliveries, world.channels, world.settings, "sms",
                          [receipt(with_email, False, "MK:0001"), receipt(phone_only, False, "MK:0001")],
                          world.clock, world.publish)
    assert world.deliveries.docs[with_email["_id"]]["status"] == "sent"
    assert [m["address"] for m in world.sent("email")] == ["liu@example.com"]
    assert world.deliveries.docs[with_email["_id"]]["attempt_log"][0]["code"] == "MK:0001"
    assert world.deliveries.docs[phone_only["_id"]]["status"] == "abandoned"
    assert [ev.load(ev.NOTIFICATION_FAILED, p)["case_id"] for _, p in world.published] == ["c-phone-only"]


def test_a_wechat_message_the_user_blocked_is_reported_and_moves_on_to_sms():
    world = World()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678", wechat_openid="o-liu"))
    assert world.only()["provider_message_id"] == "msg-1" and world.sent("sms") == []
    blocked = receipts.Report({"provider_message_id": "msg-1"}, False, "failed:userblock", "failed:user block")
    flows.record_receipts(world.deliveries, world.channels, world.settings, "wechat", [blocked], world.clock,
                          world.publish)
    assert len(world.sent("sms")) == 1 and world.only()["status"] == "sent" and world.only()["channel"] == "sms"


# -- the acknowledgement waits for routing's deadlines ---------------------------------------------------

def waiting_world(now=DAYTIME):
    return World(now=now, NOTIFY_ACK_WAIT_SECONDS=20)


def routed_for(case_id, first=timedelta(hours=4)):
    return dict(routed(first=first), case_id=case_id)


def complete(world, event):
    flows.complete(world.deliveries, world.channels, world.settings, ev.CASE_ROUTED, event, world.clock,
                   world.publish)


def test_the_acknowledgement_promises_the_cases_own_first_response_time_once_routed():
    world = waiting_world()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert world.sent("sms") == [] and world.only()["reason"] == "waiting for case_routed"
    world.now += timedelta(seconds=1)
    complete(world, routed_for("c42"))
    (sms,) = world.sent("sms")
    assert sms["content"].params["promise"] == "我们将于11-24 05:30前联系您"  # the event's first_response_due
    assert world.only()["context"] is None and world.only()["status"] == "sent"


def test_routing_first_on_its_own_queue_is_remembered():
    world = waiting_world()
    complete(world, routed_for("c42"))
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert "前联系您" in world.sent("sms")[0]["content"].params["promise"]


def test_without_routing_the_acknowledgement_goes_after_the_wait_without_a_promise():
    world = waiting_world()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    world.now += timedelta(seconds=19)
    world.tick()
    assert world.sent("sms") == []
    world.now += timedelta(seconds=1)
    world.tick()
    assert world.sent("sms")[0]["content"].params["promise"] == "我们将尽快联系您"
    complete(world, routed_for("c42"))  # too late: nothing is sent twice
    assert len(world.sent("sms")) == 1


def handle(world, event_type, event):
    """As notify's service handles an event (flows.handle_event)."""
    flows.handle_event(world.deliveries, world.channels, world.settings, CHART, event_type, event, world.clock,
                       world.publish)


def test_case_routed_tells_its_staff_and_releases_the_waiting_acknowledgement_together():
    world = waiting_world()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    world.now += timedelta(seconds=1)
    handle(world, ev.CASE_ROUTED, routed_for("c42"))
    (sms,) = world.sent("sms")
    assert sms["content"].params["promise"] == "我们将于11-24 05:30前联系您"
    assert len(world.sent("wecom")) == 1                                   # the assignee's alert
    ack = next(d for d in world.deliveries.docs.values() if d["kind"] == "acknowledgement")
    assert [h["status"] for h in ack["status_history"]] == ["queued", "deferred", "queued", "sent"]
    assert [a["outcome"] for a in ack["attempt_log"]] == ["sent"] and ack["context"] is None
    handle(world, ev.CASE_ROUTED, routed_for("c42"))                       # redelivered: nothing again
    assert len(world.sent("sms")) == 1 and len(world.sent("wecom")) == 1


def test_case_routed_handled_first_is_remembered_with_its_staff_alerts_quota():
    world = waiting_world()
    handle(world, ev.CASE_ROUTED, routed_for("c42"))                     # facts and quota: one round trip
    (alert,) = [d for d in world.deliveries.docs.values() if d["audience"] == "staff"]
    assert world.deliveries.counts[policy.staff_counter(alert["recipient"], world.now)[0]] == 1
    assert world.deliveries.completion("c42", ev.CASE_ROUTED) is not None
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert "前联系您" in world.sent("sms")[0]["content"].params["promise"]
    assert len(world.sent("wecom")) == 1


def test_at_night_the_promise_is_added_and_the_message_still_waits_for_the_morning():
    world = waiting_world(now=NIGHT)
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    complete(world, routed_for("c42"))
    assert world.sent("sms") == [] and world.only()["reason"] == "quiet hours"
    assert world.only()["next_attempt_at"] == NINE
    world.now = NINE
    world.tick()
    assert "前联系您" in world.sent("sms")[0]["content"].params["promise"]


def test_a_released_acknowledgement_is_sent_once_though_the_staff_alert_outlasts_its_lease():
    world = waiting_world()
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    world.now += timedelta(seconds=1)
    wecom, slow = world.channels["wecom"], [True]
    send_alert = wecom.send

    def send_at_the_providers_timeout(outgoing):  # 11 s: the acknowledgement's 10 s lease runs out meanwhile
        if slow.pop() if slow else False:
            world.now += timedelta(seconds=11)
            for delivery in world.deliveries.docs.values():  # the alert's own lease is renewed by hold()
                if delivery["kind"] != "acknowledgement" and delivery.get("lease_owner"):
                    delivery["lease_until"] = world.now + timedelta(seconds=10)
            # meanwhile any replica's timers: the take-over scan (every 2 s) and the send timer
            flows.take_over_stalled(world.deliveries, world.channels, world.settings, world.clock, world.publish, 10)
            world.tick()
        return send_alert(outgoing)
    wecom.send = send_at_the_providers_timeout
    handle(world, ev.CASE_ROUTED, routed_for("c42"))
    assert len(world.sent("sms")) == 1 and len(world.sent("wecom")) == 1
    ack = next(d for d in world.deliveries.docs.values() if d["kind"] == "acknowledgement")
    assert ack["status"] == "sent" and [a["outcome"] for a in ack["attempt_log"]] == ["sent"]


def test_a_failure_before_the_delivery_is_recorded_gives_its_quota_counts_back():
    world = World(NOTIFY_CUSTOMER_DAILY_QUOTA=1)
    create = world.deliveries.create

    def storage_down(*args, **kwargs):
        raise ConnectionError("storage unreachable")
    world.deliveries.create = storage_down
    for _ in range(2):  # the event, then its redelivery: each fails
        with pytest.raises(ConnectionError):
            world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert set(world.deliveries.counts.values()) == {0}
    world.deliveries.create = create
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))  # storage back: within the quota of 1
    assert len(world.sent("sms")) == 1 and world.only()["status"] == "sent"


def test_a_customer_quota_of_zero_suppresses_every_message_and_counts_none():
    world = World(NOTIFY_CUSTOMER_DAILY_QUOTA=0)
    world.event(ev.CASE_SUBMITTED, customer(phone="+8613812345678"))
    assert world.sent("sms") == [] and world.only()["status"] == "suppressed"
    assert world.deliveries.counts == {}
