"""Store calendars reach followup by events, against real RabbitMQ and the
MongoDB-protocol server: routing announces every store's calendar when it starts and
each change (store_calendar_changed); followup keeps its own copy (never reading
routing's collections) and moves a waiting revisit call off a closure and a day-before
reminder and a satisfaction revisit into the store's new opening hours; an older
announcement changes nothing."""
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest
import requests
from nameko.standalone.events import event_dispatcher

from closeloop_shared import bus
from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import connect, database_name
from closeloop_shared.standins import free_port
from services.followup.service import FollowupService
from services.routing import calendar_flows
from services.routing.calendar import StoreCalendar
from services.routing.service import RoutingService
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
STORE = "SH-XH-001"
CUSTOMER = {"member_id": "M-200", "name": "刘女士", "phone": "13812345678", "home_store_id": STORE,
            "contact_hours": "10-20", "consent": True}


@pytest.fixture
def stack(container_factory, service_config, web_config):
    """followup answers on web_session's address, routing on a port of its own."""
    config = dict(service_config, OUTBOX_RELAY_INTERVAL_SECONDS=1)
    container_factory(FollowupService, dict(config, **web_config)).start()
    routing_address = f"127.0.0.1:{free_port()}"
    container_factory(RoutingService, dict(config, WEB_SERVER_ADDRESS=routing_address)).start()
    return config, f"http://{routing_address}"


def followup_db(config):
    return connect(config["MONGO_URI"])[database_name(config, "followup")]


def local(moment):
    return moment.astimezone(SHANGHAI)


def test_closures_and_opening_hours_move_waiting_calls_and_reminders(stack, web_session, token_keys, amqp_bus):
    config, routing_url = stack
    db = followup_db(config)
    as_manager = token_keys.headers("sh-xh-mg")
    # routing announced its calendars when it started: followup has its copy
    copy = wait_for(lambda: db["store_calendars"].find_one({"_id": STORE}), what="the announced calendar")
    assert copy["timezone"] == "Asia/Shanghai" and copy["weekly"][1] == [{"start": 600, "end": 1260}]

    assert web_session.post("/v1/customers/import", json={"customers": [CUSTOMER]}).status_code == 200
    task = wait_for(lambda: db["revisit_tasks"].find_one({"member_id": "M-200"}), what="a planned revisit")
    planned = local(task["due_at"])
    assert planned.hour == 10  # the store opens at 10:00, the customer may be called from 10
    starts = datetime.combine(local(utcnow()).date() + timedelta(days=3), time(15), SHANGHAI)
    amqp_bus.publish_feedback({"appointment_id": "A-50", "store_id": STORE, "service_item": "补水面部护理",
                               "customer": {"name": "刘女士", "phone": "13812345678", "member_id": "M-200"},
                               "starts_at": starts.isoformat(), "version": 1}, routing_key=bus.APPOINTMENT_BOOKED_KEY)
    booked = wait_for(lambda: db["appointments"].find_one({"_id": "A-50"}), what="the booking")
    assert local(booked["reminder_at"]).hour == 10
    # a case resolved at 22:00, after closing: its satisfaction revisit (3 days on) waits
    # until the store opens at 10:00
    resolved_at = datetime.combine(local(utcnow()).date(), time(22), SHANGHAI)
    event_dispatcher(config)(ev.ROUTING, ev.CASE_RESOLVED, ev.dump(ev.CASE_RESOLVED, {
        "case_id": "c-late", "case_number": "CL-20270310-000001", "store_id": STORE, "category": "hygiene",
        "remedy": {"type": "apology"}, "resolved_at": resolved_at, "on_time": True, "resolution_round": 1,
        "customer": {"name": "刘女士", "phone": "+8613812345678"},
        "revisit_owner": {"staff_id": "sh-xh-rv", "name": "赵敏", "role": "store_staff"}}))
    survey = wait_for(lambda: db["revisits"].find_one({"case_id": "c-late"}), what="the satisfaction revisit")
    assert local(survey["due_at"]) == datetime.combine(resolved_at.date() + timedelta(days=4), time(10), SHANGHAI)

    # a closure on the planned day: the call moves to the next day, same hour
    closed = requests.post(f"{routing_url}/v1/calendars/stores/{STORE}/closures", headers=as_manager, timeout=10,
                           json={"first_day": planned.date().isoformat(), "last_day": planned.date().isoformat(),
                                 "reason": "消防检查"})
    assert closed.status_code == 201, closed.text
    wait_for(lambda: local(db["revisit_tasks"].find_one({"_id": task["_id"]})["due_at"]).date()
             == planned.date() + timedelta(days=1), what="the call moved off the closure")

    # the store now opens at 14:00: the call and the reminder move into its hours
    afternoons = [{"start": "14:00", "end": "21:00"}]
    hours = {"weekly": {day: afternoons for day in calendar_flows.WEEKDAYS}, "workday": afternoons,
             "observes_holidays": False}
    assert requests.put(f"{routing_url}/v1/calendars/stores/{STORE}", headers=as_manager, json=hours,
                        timeout=10).status_code == 200
    moved = wait_for(lambda: [t for t in [db["revisit_tasks"].find_one({"_id": task["_id"]})]
                              if local(t["due_at"]).hour == 14], what="the call in the new hours")[0]
    assert local(moved["due_at"]).date() == planned.date() + timedelta(days=1)
    reminder = wait_for(lambda: [a for a in [db["appointments"].find_one({"_id": "A-50"})]
                                 if local(a["reminder_at"]).hour == 14], what="the reminder in the new hours")[0]
    assert local(reminder["reminder_at"]).date() == starts.date() - timedelta(days=1)
    survey = wait_for(lambda: [r for r in [db["revisits"].find_one({"case_id": "c-late"})]
                               if local(r["due_at"]).hour == 14], what="the satisfaction revisit in the new hours")[0]
    assert local(survey["due_at"]).date() in (resolved_at.date() + timedelta(days=4),  # or the day after, if
                                              resolved_at.date() + timedelta(days=5))  # the closure fell on it

    # an older announcement (a replica behind, a redelivery) changes nothing
    newest = db["store_calendars"].find_one({"_id": STORE})
    stale = calendar_flows.announcement(StoreCalendar("Asia/Shanghai", calendar_flows.store_hours(None, "08:00-22:00")),
                                        STORE, "Asia/Shanghai", local(utcnow()).date(), utcnow() - timedelta(hours=1))
    event_dispatcher(config)(ev.ROUTING, ev.STORE_CALENDAR_CHANGED, ev.dump(ev.STORE_CALENDAR_CHANGED, stale))
    event_dispatcher(config)(ev.ROUTING, ev.STORE_CALENDAR_CHANGED, ev.dump(ev.STORE_CALENDAR_CHANGED, dict(
        stale, as_of=newest["as_of"], event_id=newest["event_id"])))
    marker = dict(stale, store_id="HZ-XH-001", as_of=utcnow())  # dispatched last
    event_dispatcher(config)(ev.ROUTING, ev.STORE_CALENDAR_CHANGED, ev.dump(ev.STORE_CALENDAR_CHANGED, marker))
    wait_for(lambda: db["store_calendars"].find_one({"_id": "HZ-XH-001", "event_id": marker["event_id"]}),
             what="the later announcement handled")
    eventlet.sleep(0.5)  # handlers run side by side: let the stale ones finish too
    assert db["store_calendars"].find_one({"_id": STORE})["weekly"] == newest["weekly"]
    assert local(db["revisit_tasks"].find_one({"_id": task["_id"]})["due_at"]).hour == 14
