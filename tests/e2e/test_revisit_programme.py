"""The revisit programme across the five services, run as in production: a key
customer's monthly revisit reaches its owner, is answered and the next one planned a
month on; an unreachable customer is retried then marked; a resolved complaint gets
exactly one satisfaction revisit by someone other than whoever resolved it; an
appointment is booked and moved through notify, its reminder planned; consent withdrawn
stops everything, reminders included; a store's new opening hours, set on routing, move
a waiting revisit call into them (the day-before reminder at the right hour and a
cancelled booking never reminded: tests/integration/test_followup_appointments.py)."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from closeloop_shared import bus
from closeloop_shared.clock import utcnow
from tests.fixtures import ALWAYS_OPEN, wait_for

pytestmark = pytest.mark.e2e
SHANGHAI = ZoneInfo("Asia/Shanghai")
OWNER = "sh-xh-rv"


def customer(member_id, email):
    return {"member_id": member_id, "name": "刘女士", "phone": "13812345678", "home_store_id": "SH-XH-001",
            "contact_hours": "10-20", "consent": True, "email": email, "preferred_channel": "email"}


def test_the_revisit_programme_end_to_end(stack, smtp_sink, amqp_bus, token_keys):
    system = stack({"REVISIT_DELAY_SECONDS": 1, **ALWAYS_OPEN, "REVISIT_SCAN_INTERVAL_SECONDS": 1, "FOLLOWUP_MAX_ATTEMPTS": 2,
                    "OUTBOX_RELAY_INTERVAL_SECONDS": 1})

    def as_staff(staff_id, method, path, body=None):
        return requests.request(method, system.url("followup" if "revisit" in path or "customers" in path
                                                   else "routing") + path, json=body, timeout=10,
                                headers=token_keys.headers(staff_id, ttl=timedelta(hours=1)))

    def open_revisit(member_id):
        return system.get("followup", f"/v1/customers/{member_id}").json()["open_revisits"]

    def bring_due(member_id):
        [task] = wait_for(lambda: open_revisit(member_id), timeout=30, what="an open revisit")
        soon = (utcnow() + timedelta(seconds=1)).isoformat()
        assert system.post("followup", f"/v1/revisit-tasks/{task['task_id']}/reschedule",
                           {"due_at": soon}).status_code == 200
        wait_for(lambda: [t for t in as_staff(OWNER, "GET", "/v1/revisit-tasks/due-today").json()["tasks"]
                          if t["task_id"] == task["task_id"]], timeout=30, what="on the owner's list")
        return task["task_id"]

    # 1. a key customer is revisited monthly: answered, the next one a month on
    report = system.post("followup", "/v1/customers/import",
                         {"customers": [customer("M-1", "m1@example.com"), customer("M-2", "m2@example.com"),
                                        dict(customer("M-3", "m3@example.com"), phone="12345")]}).json()
    assert report["accepted"] == 2 and [r["row"] for r in report["rejected"]] == [3]
    assert system.post("followup", "/v1/customers/M-1/tier", {"tier": "key", "reason": "年卡会员"}).status_code == 200
    task_id = bring_due("M-1")
    answered = as_staff(OWNER, "POST", f"/v1/revisit-tasks/{task_id}/attempts",
                        {"reached": True, "score": 5, "note": "很满意", "next_step": "下月提醒做护理"})
    assert answered.status_code == 200 and answered.json()["status"] == "completed"
    [following] = wait_for(lambda: open_revisit("M-1"), timeout=30, what="the next revisit")
    assert timedelta(days=27) < datetime.fromisoformat(following["planned_at"]) - utcnow() < timedelta(days=32)

    # 2. an unreachable customer is retried at another hour, then marked
    task_id = bring_due("M-2")
    assert as_staff(OWNER, "POST", f"/v1/revisit-tasks/{task_id}/attempts",
                    {"reached": False}).json()["status"] == "scheduled"
    assert bring_due("M-2") == task_id
    assert as_staff(OWNER, "POST", f"/v1/revisit-tasks/{task_id}/attempts",
                    {"reached": False}).json()["status"] == "unreachable"
    rates = system.get("followup", "/v1/revisit-tasks/completion").json()["completion"]
    assert rates == [{"store_id": "SH-XH-001", "owner_id": OWNER, "due": 2, "completed": 1, "unreachable": 1,
                      "rate": 0.5}]

    # 3. a complaint resolved by the revisit owner: one satisfaction revisit, by someone else
    receipt = system.post("intake", "/v1/feedback", {
        "store_id": "SH-XH-001", "channel": "hotline", "content": "做完面部护理后脸上红肿刺痛",
        "customer": {"name": "刘女士", "phone": "13812345678", "member_id": "M-1"},
        "occurred_at": "2026-11-20T19:30:00+08:00"}).json()
    wait_for(lambda: system.get("routing", f"/v1/cases/{receipt['case_id']}").status_code == 200, timeout=30,
             what="routed")
    assert as_staff(OWNER, "POST", f"/v1/cases/{receipt['case_id']}/resolve", {"note": "致歉"}).status_code == 200
    wait_for(lambda: [r for r in system.get("followup", "/v1/revisits", params={
        "case_id": receipt["case_id"]}).json()["revisits"] if r["status"] == "due"], timeout=30, what="due revisit")
    revisits = system.get("followup", "/v1/revisits", params={"case_id": receipt["case_id"]}).json()["revisits"]
    assert len(revisits) == 1 and revisits[0]["owner"]["staff_id"] not in (OWNER, None)

    # 4. an appointment booked, moved, reminded the day before through notify
    day_after = (utcnow().astimezone(SHANGHAI) + timedelta(days=3)).date()
    starts = datetime(day_after.year, day_after.month, day_after.day, 15, tzinfo=SHANGHAI)
    booking = {"appointment_id": "A-1", "store_id": "SH-XH-001", "service_item": "补水面部护理", "version": 1,
               "customer": {"name": "刘女士", "phone": "13812345678", "email": "m1@example.com", "member_id": "M-1"},
               "starts_at": starts.isoformat()}
    amqp_bus.publish_feedback(booking, routing_key=bus.APPOINTMENT_BOOKED_KEY)
    wait_for(lambda: [m for m in smtp_sink.to("m1@example.com") if "预约确认" in m["Subject"]], timeout=30,
             what="the confirmation")
    moved = dict(booking, version=2, starts_at=(starts + timedelta(days=1)).isoformat())
    amqp_bus.publish_feedback(moved, routing_key=bus.APPOINTMENT_CHANGED_KEY)
    wait_for(lambda: [m for m in smtp_sink.to("m1@example.com") if "更改" in m["Subject"]], timeout=30,
             what="the new time confirmed")

    # 5. consent withdrawn: every open revisit stops, and the appointment's reminder
    withdrawn = system.post("followup", "/v1/customers/M-1/withdraw-consent", {})
    assert withdrawn.status_code == 200 and withdrawn.json()["cancelled_revisits"] >= 1
    assert withdrawn.json()["stopped_reminders"] == 1
    assert open_revisit("M-1") == []

    # 6. the store opens at 14:00 from now on (routing owns calendars): M-2's waiting call moves there
    afternoons = [{"start": "14:00", "end": "21:00"}]
    hours = {"weekly": {day: afternoons for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
             "workday": afternoons, "observes_holidays": False}
    assert as_staff("sh-xh-mg", "PUT", "/v1/calendars/stores/SH-XH-001", hours).status_code == 200
    wait_for(lambda: [t for t in open_revisit("M-2")
                      if datetime.fromisoformat(t["planned_at"]).astimezone(SHANGHAI).hour == 14],
             timeout=30, what="the waiting call in the new opening hours")
