"""Appointments from a booking system on closeloop.inbound, through followup and notify,
against real RabbitMQ and the MongoDB-protocol server: booked and confirmed, changed
(reconfirmed, reminder moved), reminded the day before once, a cancelled one never
reminded, a no-show turned into a care revisit, bad messages dead-lettered."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest

from closeloop_shared import bus
from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import connect, database_name
from services.followup.service import FollowupService
from services.notify.service import NotifyService
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


def booking(appointment_id, starts_at, version=1, **overrides):
    return {"appointment_id": appointment_id, "store_id": "SH-XH-001", "service_item": "补水面部护理",
            "customer": {"name": "刘女士", "phone": "13812345678", "member_id": f"M-{appointment_id}"},
            "starts_at": starts_at.isoformat(), "version": version, "source_system": "meiye-pos", **overrides}


def in_days(days, hour=15):
    day = (utcnow().astimezone(SHANGHAI) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


@pytest.fixture
def heard(record_events):
    return record_events(ev.APPOINTMENT_CONFIRMED, ev.APPOINTMENT_REMINDER_DUE, ev.REVISIT_COMPLAINT_VOICED)


@pytest.fixture
def stack(container_factory, service_config, web_config, heard):
    config = dict(service_config, NOTIFY_QUIET_HOURS="off", NOTIFY_CUSTOMER_CHANNELS="email",
                  NOTIFY_STAFF_CHANNELS="email", OUTBOX_RELAY_INTERVAL_SECONDS=1)
    container_factory(FollowupService, dict(config, **web_config)).start()
    container_factory(NotifyService, dict(config, WEB_SERVER_ADDRESS="127.0.0.1:0")).start()
    return config


def appointments(config):
    return connect(config["MONGO_URI"])[database_name(config, "followup")]["appointments"]


def publish(amqp_bus, key, body):
    amqp_bus.publish_feedback(body, routing_key=key)


def test_booked_confirmed_changed_and_reminded_the_day_before_once(stack, amqp_bus, heard, smtp_sink):
    starts = in_days(3)
    booked = booking("A-1", starts, customer={"name": "刘女士", "phone": "13812345678", "email": "a1@example.com"})
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booked)
    # a repeat, delivered as the booking system retries: the same message (two workers may
    # take them in either order)
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booked)
    [confirmed] = wait_for(lambda: heard.of_type(ev.APPOINTMENT_CONFIRMED), what="confirmation")
    assert confirmed["appointment_id"] == "A-1" and confirmed["change"] is False
    assert confirmed["customer"]["phone"] == "+8613812345678"
    stored = appointments(stack).find_one({"_id": "A-1"})
    assert stored["reminder_at"].astimezone(SHANGHAI) == in_days(2, hour=10)
    wait_for(lambda: smtp_sink.to("a1@example.com"), what="the confirmation e-mail")

    moved = in_days(4)
    publish(amqp_bus, bus.APPOINTMENT_CHANGED_KEY, booking("A-1", moved, version=2,
                                                           customer=confirmed["customer"] | {"email": "a1@example.com"}))
    publish(amqp_bus, bus.APPOINTMENT_CHANGED_KEY, booking("A-1", starts, version=1))  # older news
    wait_for(lambda: len(heard.of_type(ev.APPOINTMENT_CONFIRMED)) == 2, what="the new time confirmed")
    assert heard.of_type(ev.APPOINTMENT_CONFIRMED)[1]["change"] is True
    wait_for(lambda: appointments(stack).find_one({"_id": "A-1"})["reminder_at"].astimezone(SHANGHAI)
             == in_days(3, hour=10), what="the reminder moved")

    # the day before has come
    appointments(stack).update_one({"_id": "A-1"}, {"$set": {"reminder_at": utcnow()}})
    [reminder] = wait_for(lambda: heard.of_type(ev.APPOINTMENT_REMINDER_DUE), what="the reminder")
    assert reminder["starts_at"] == moved
    wait_for(lambda: [m for m in smtp_sink.to("a1@example.com") if "明天" in m["Subject"]], what="reminder e-mail")
    eventlet.sleep(2)
    assert len(heard.of_type(ev.APPOINTMENT_REMINDER_DUE)) == 1


def test_a_cancelled_appointment_is_never_reminded_even_when_the_cancellation_comes_first(stack, amqp_bus, heard):
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-2", in_days(3)))
    wait_for(lambda: heard.of_type(ev.APPOINTMENT_CONFIRMED), what="confirmation")
    publish(amqp_bus, bus.APPOINTMENT_CANCELLED_KEY, {"appointment_id": "A-2", "version": 2, "reason": "顾客出差"})
    wait_for(lambda: appointments(stack).find_one({"_id": "A-2"})["status"] == "cancelled", what="cancelled")
    publish(amqp_bus, bus.APPOINTMENT_CANCELLED_KEY, {"appointment_id": "A-3", "version": 2})
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-3", in_days(3), version=1))  # late
    wait_for(lambda: appointments(stack).find_one({"_id": "A-3"}), what="the cancellation recorded")
    for appointment_id in ("A-2", "A-3"):
        appointments(stack).update_one({"_id": appointment_id}, {"$set": {"reminder_at": utcnow()}})
    eventlet.sleep(3)
    assert heard.of_type(ev.APPOINTMENT_REMINDER_DUE) == []
    assert [c["appointment_id"] for c in heard.of_type(ev.APPOINTMENT_CONFIRMED)] == ["A-2"]


def test_a_no_show_becomes_a_care_revisit_and_bad_messages_are_dead_lettered(stack, amqp_bus, web_session, heard):
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-4", in_days(1)))
    wait_for(lambda: appointments(stack).find_one({"_id": "A-4"}), what="booked")
    publish(amqp_bus, bus.APPOINTMENT_CHANGED_KEY, booking("A-4", in_days(1), version=2, status="no_show"))
    tasks = connect(stack["MONGO_URI"])[database_name(stack, "followup")]["revisit_tasks"]
    task = wait_for(lambda: tasks.find_one({"_id": "no-show:A-4"}), what="a care revisit")
    assert task["purpose"] == "care" and task["owner_id"] == "sh-xh-rv" and task["status"] == "scheduled"
    assert task["due_at"].astimezone(SHANGHAI).date() == in_days(2).date()
    # on the care call the customer reports a booking problem: a case of category booking
    soon = (utcnow() + timedelta(seconds=1)).isoformat()
    assert web_session.post("/v1/revisit-tasks/no-show:A-4/reschedule", json={"due_at": soon}).status_code == 200
    wait_for(lambda: tasks.find_one({"_id": "no-show:A-4"})["status"] == "due", what="the care call due")
    called = web_session.post("/v1/revisit-tasks/no-show:A-4/attempts", json={
        "reached": True, "note": "顾客说按时到店", "complaint": "我按时到店了,前台说没有我的预约",
        "complaint_category": "booking"})
    assert called.status_code == 200, called.text
    [voiced] = wait_for(lambda: heard.of_type(ev.REVISIT_COMPLAINT_VOICED), what="the booking problem voiced")
    assert voiced["category"] == "booking" and voiced["task_id"] == "no-show:A-4"

    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-5", in_days(2), customer={"name": "x", "phone": "123"}))
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-6", in_days(2), store_id="NOWHERE"))
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-7", in_days(-1)))
    dead = []  # dead_letters() takes them off the queue: gather until all three are in
    wait_for(lambda: dead.extend(amqp_bus.dead_letters()) or len(dead) >= 3, what="3 dead letters")
    reasons = sorted(d["headers"][bus.REASON_HEADER] for d in dead)
    assert any("phone" in r for r in reasons) and any("unknown store NOWHERE" in r for r in reasons)
    assert any("starts_at has passed" in r for r in reasons)


def test_a_change_asked_of_us_checks_the_customers_phone_and_tells_the_store(
        stack, amqp_bus, smtp_sink, web_session):
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-8", in_days(3)))
    wait_for(lambda: appointments(stack).find_one({"_id": "A-8"}), what="booked")
    path, wanted = "/v1/appointments/A-8/change-requests", in_days(5).isoformat()
    wrong = web_session.post(path, json={"phone": "13900001111", "starts_at": wanted})
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "identity_mismatch"
    assert "phone" in wrong.json()["error"]["fields"]
    asked = web_session.post(path, json={"phone": "138 1234 5678", "starts_at": wanted, "note": "出差"})
    assert asked.status_code == 202, asked.text
    assert appointments(stack).find_one({"_id": "A-8"})["change_requests"][0]["by"] == "sh-xh-mg"
    wait_for(lambda: [m for m in smtp_sink.to("zhang.li@yueyan.example") if "改约申请" in m["Subject"]],
             what="the store manager told")
    elsewhere = web_session.post("/v1/appointments/nobody/change-requests",
                                              json={"phone": "13812345678", "starts_at": wanted})
    assert elsewhere.status_code == 404


def test_consent_withdrawn_stops_reminders_and_confirmations_of_the_customers_bookings(
        stack, amqp_bus, heard, web_session):
    customer = {"member_id": "M-A-9", "name": "刘女士", "phone": "13812345678", "home_store_id": "SH-XH-001",
                "consent": True}
    assert web_session.post("/v1/customers/import", json={"customers": [customer]}).status_code == 200
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-9", in_days(3)))  # member M-A-9
    wait_for(lambda: heard.of_type(ev.APPOINTMENT_CONFIRMED), what="confirmation")
    assert appointments(stack).find_one({"_id": "A-9"})["reminder_at"] is not None

    answer = web_session.post("/v1/customers/M-A-9/withdraw-consent")
    assert answer.status_code == 200 and answer.json()["stopped_reminders"] == 1
    stopped = appointments(stack).find_one({"_id": "A-9"})
    assert stopped["reminder_at"] is None and stopped["contact_stopped"] == "consent_withdrawn"
    # the booking system moves it, and books another: kept, neither confirmed nor reminded
    publish(amqp_bus, bus.APPOINTMENT_CHANGED_KEY, booking("A-9", in_days(4), version=2))
    publish(amqp_bus, bus.APPOINTMENT_BOOKED_KEY, booking("A-10", in_days(5), customer={
        "name": "刘女士", "phone": "13812345678", "member_id": "M-A-9"}))
    wait_for(lambda: appointments(stack).find_one({"_id": "A-10"}) and
             appointments(stack).find_one({"_id": "A-9"})["version"] == 2, what="both recorded")
    assert appointments(stack).find_one({"_id": "A-9"})["reminder_at"] is None
    assert appointments(stack).find_one({"_id": "A-10"})["reminder_at"] is None
    # a reminder already claimed when consent went: dropped at the last moment
    appointments(stack).update_one({"_id": "A-9"}, {"$set": {"reminder_at": utcnow()}})
    eventlet.sleep(2)
    assert heard.of_type(ev.APPOINTMENT_REMINDER_DUE) == []
    assert [c["appointment_id"] for c in heard.of_type(ev.APPOINTMENT_CONFIRMED)] == ["A-9"]
