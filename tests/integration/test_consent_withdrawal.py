"""Consent withdrawn reaches what notify holds back, against real RabbitMQ and the
MongoDB-protocol server: a day-before reminder deferred by quiet hours, then the
customer's consent withdrawn on followup's HTTP API, and the reminder is never sent
(suppressed, "consent withdrawn", in notify's delivery log); a redelivered
customer_consent_withdrawn changes nothing. And a reminder due before the withdrawal
that notify handles after it (its own queue) is recorded suppressed, never sent."""
import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from closeloop_shared import bus
from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import connect, database_name
from services.followup.service import FollowupService
from services.notify.kinds import customer_keys
from services.notify.service import NotifyService
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
EMAIL = "consent.cw1@example.com"
STAFF_EMAIL = "zhang.li@yueyan.example"


@pytest.fixture
def heard(record_events):
    return record_events(ev.APPOINTMENT_REMINDER_DUE, ev.CUSTOMER_CONSENT_WITHDRAWN)


@dataclass
class Stack:
    config: dict
    notify: ServiceContainer  # to wait for its handlers (entrypoint_waiter)


@pytest.fixture
def stack(container_factory, service_config, web_config, heard):
    now = datetime.now(SHANGHAI)  # quiet for the whole test, whatever the hour it runs at
    quiet = f"{(now - timedelta(hours=1)):%H:%M:%S}-{(now + timedelta(hours=2)):%H:%M:%S}"
    config = dict(service_config, NOTIFY_QUIET_HOURS=quiet, NOTIFY_CUSTOMER_CHANNELS="email",
                  NOTIFY_STAFF_CHANNELS="email", NOTIFY_RETRY_INTERVAL_SECONDS=0.5, OUTBOX_RELAY_INTERVAL_SECONDS=1)
    container_factory(FollowupService, dict(config, **web_config)).start()
    notify = container_factory(NotifyService, dict(config, WEB_SERVER_ADDRESS="127.0.0.1:0"))
    notify.start()
    return Stack(config, notify)


def collection(stack, service, name):
    return connect(stack.config["MONGO_URI"])[database_name(stack.config, service)][name]


def withdrawals_handled(stack, count):
    """Wait (a context manager) until notify has handled `count` customer_consent_withdrawn
    events; the list it yields fills with each handler's (deliveries stopped, exc_info)."""
    handled = []

    def done(worker_ctx, result, exc_info):
        handled.append((result, exc_info))
        return len(handled) == count
    return handled, entrypoint_waiter(stack.notify, "on_customer_consent_withdrawn", callback=done)


def in_days(days, hour=15):
    day = (utcnow().astimezone(SHANGHAI) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


def test_a_reminder_deferred_by_quiet_hours_is_never_sent_once_consent_is_withdrawn(
        stack, amqp_bus, heard, web_session, smtp_sink):
    customer = {"member_id": "M-CW-1", "name": "刘女士", "phone": "13812345678", "email": EMAIL,
                "home_store_id": "SH-XH-001", "consent": True}
    assert web_session.post("/v1/customers/import", json={"customers": [customer]}).status_code == 200
    amqp_bus.publish_feedback({
        "appointment_id": "A-CW-1", "store_id": "SH-XH-001", "service_item": "补水面部护理",
        "customer": {"name": "刘女士", "phone": "13812345678", "email": EMAIL, "member_id": "M-CW-1"},
        "starts_at": in_days(3).isoformat(), "version": 1, "source_system": "meiye-pos"},
        routing_key=bus.APPOINTMENT_BOOKED_KEY)
    appointments = collection(stack, "followup", "appointments")
    wait_for(lambda: appointments.find_one({"_id": "A-CW-1"}), what="the booking")
    appointments.update_one({"_id": "A-CW-1"}, {"$set": {"reminder_at": utcnow()}})  # the day before has come
    wait_for(lambda: heard.of_type(ev.APPOINTMENT_REMINDER_DUE), what="the reminder")

    deliveries = collection(stack, "notify", "deliveries")
    held = wait_for(lambda: [d for d in deliveries.find({"case_id": "A-CW-1", "audience": "customer"})
                             if d["status"] == "deferred"] if deliveries.count_documents(
        {"case_id": "A-CW-1", "status": "deferred"}) == 2 else None, what="confirmation and reminder deferred")
    assert {d["template"] for d in held} == {"appointment_confirmation", "appointment_reminder"}
    assert {d["reason"] for d in held} == {"quiet hours"} and all(d["member_id"] == "M-CW-1" for d in held)

    answer = web_session.post("/v1/customers/M-CW-1/withdraw-consent")
    assert answer.status_code == 200
    [withdrawn] = wait_for(lambda: heard.of_type(ev.CUSTOMER_CONSENT_WITHDRAWN), what="the withdrawal announced")
    assert withdrawn["member_id"] == "M-CW-1"
    assert withdrawn["customer_keys"] == customer_keys({"phone": "+8613812345678", "email": EMAIL})
    assert "13812345678" not in str(withdrawn) and EMAIL not in str(withdrawn)  # no contact data on the bus

    stopped = wait_for(lambda: [d for d in deliveries.find({"case_id": "A-CW-1"})
                                if d["status"] == "suppressed"] if deliveries.count_documents(
        {"case_id": "A-CW-1", "status": "suppressed"}) == 2 else None, what="both stopped")
    assert {d["reason"] for d in stopped} == {"consent withdrawn"}
    assert all([h["status"] for h in d["status_history"]] == ["queued", "deferred", "suppressed"] for d in stopped)

    # the morning comes (their time is due): the send timer has nothing to send
    deliveries.update_many({"case_id": "A-CW-1"}, {"$set": {"next_attempt_at": utcnow()}})
    eventlet.sleep(2)
    assert smtp_sink.to(EMAIL) == []
    before = {d["_id"]: copy.deepcopy(d) for d in deliveries.find({"case_id": "A-CW-1"})}
    assert {d["status"] for d in before.values()} == {"suppressed"}

    # the withdrawal redelivered (an at-least-once bus): handled, it stops nothing and changes nothing
    handled, waiter = withdrawals_handled(stack, 1)
    with waiter:
        event_dispatcher(stack.config)(ev.FOLLOWUP, ev.CUSTOMER_CONSENT_WITHDRAWN,
                                       ev.dump(ev.CUSTOMER_CONSENT_WITHDRAWN, withdrawn))
    assert handled == [(0, None)]
    assert {d["_id"]: d for d in deliveries.find({"case_id": "A-CW-1"})} == before
    assert smtp_sink.to(EMAIL) == []


def test_a_reminder_due_before_the_withdrawal_but_handled_after_it_is_recorded_suppressed_and_never_sent(
        stack, amqp_bus, heard, smtp_sink):
    """notify gives each event its own queue: here it handles the withdrawal first, then
    the reminder that fell due a moment before it, which must not go out."""
    email = "consent.cw2@example.com"
    keys = customer_keys({"phone": "+8613812345679", "email": email})
    publish = event_dispatcher(stack.config)
    withdrawn_at = utcnow()
    withdrawal = ev.new_event(ev.CUSTOMER_CONSENT_WITHDRAWN, {
        "member_id": "M-CW-2", "customer_keys": keys, "withdrawn_at": withdrawn_at})["payload"]
    handled, waiter = withdrawals_handled(stack, 2)
    with waiter:
        publish(ev.FOLLOWUP, ev.CUSTOMER_CONSENT_WITHDRAWN, withdrawal)
        publish(ev.FOLLOWUP, ev.CUSTOMER_CONSENT_WITHDRAWN, withdrawal)  # redelivered
    assert handled == [(0, None), (0, None)]  # both handled, nothing held to stop
    withdrawals = collection(stack, "notify", "consent_withdrawals")
    # one record per key, the repeat's included: as many as the first wrote
    assert {d["_id"]: d["withdrawn_at"] for d in withdrawals.find({})} == {
        key: withdrawn_at.replace(microsecond=withdrawn_at.microsecond // 1000 * 1000)
        for key in ("member|M-CW-2", *(f"handle|{k}" for k in keys))}

    customer = {"name": "刘女士", "phone": "+8613812345679", "email": email, "member_id": "M-CW-2"}
    appointment = {"case_id": "A-CW-2", "appointment_id": "A-CW-2", "store_id": "SH-XH-001", "customer": customer,
                   "service_item": "补水面部护理", "starts_at": in_days(1)}
    publish(ev.FOLLOWUP, ev.APPOINTMENT_REMINDER_DUE, ev.new_event(ev.APPOINTMENT_REMINDER_DUE, dict(
        appointment, reminded_at=withdrawn_at - timedelta(seconds=1)))["payload"])
    # confirmed after the withdrawal (consent given again, say): that one is not stopped
    publish(ev.FOLLOWUP, ev.APPOINTMENT_CONFIRMED, ev.new_event(ev.APPOINTMENT_CONFIRMED, dict(
        appointment, confirmed_at=withdrawn_at + timedelta(seconds=1)))["payload"])

    deliveries = collection(stack, "notify", "deliveries")
    wait_for(lambda: deliveries.count_documents({"case_id": "A-CW-2"}) == 2, what="both messages recorded")
    # recorded first, then ended by the read of the withdrawals that follows the insert
    wait_for(lambda: deliveries.find_one({"case_id": "A-CW-2", "template": "appointment_reminder",
                                          "status": "suppressed"}), what="the reminder ended")
    found = {d["template"]: d for d in deliveries.find({"case_id": "A-CW-2"})}
    reminder, confirmation = found["appointment_reminder"], found["appointment_confirmation"]
    assert reminder["status"] == "suppressed" and reminder["reason"] == "consent withdrawn"
    # recorded deferred (quiet hours) by its insert, then ended by the read of the withdrawals after it
    assert [h["status"] for h in reminder["status_history"]] == ["queued", "deferred", "suppressed"]
    assert reminder["attempt_log"] == [] and reminder["caused_at"] < withdrawn_at
    assert confirmation["status"] == "deferred" and confirmation["reason"] == "quiet hours"

    # its time is due: the send timer has nothing of the reminder's to send
    deliveries.update_one({"_id": reminder["_id"]}, {"$set": {"next_attempt_at": utcnow()}})
    eventlet.sleep(1.5)
    assert deliveries.find_one({"_id": reminder["_id"]})["status"] == "suppressed"
    assert smtp_sink.to(email) == []
