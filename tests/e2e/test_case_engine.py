"""The case engine (issue 7) with the five services running as processes: business
calendars with holidays and make-up workdays, pauses, the ladder where every rung must
acknowledge, the 12315 fast track with its signed-off report, remedy approval limits,
and exactly one escalation per rung with three routing replicas."""
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.fixtures import wait_for

pytestmark = pytest.mark.e2e
SHANGHAI = ZoneInfo("Asia/Shanghai")


class As:
    """HTTP calls to a running stack as one staff member (their own token)."""

    def __init__(self, system, token_keys, staff_id):
        self.system, self.headers = system, token_keys.headers(staff_id, ttl=timedelta(hours=1))

    def get(self, service, path, **kwargs):
        return requests.get(self.system.url(service) + path, headers=self.headers, timeout=10, **kwargs)

    def post(self, service, path, body=None, method="post"):
        return requests.request(method, self.system.url(service) + path, json=body or {},
                                headers=self.headers, timeout=10)


def feedback(**overrides):
    body = {"store_id": "SH-XH-001", "channel": "hotline",
            "customer": {"name": "刘女士", "phone": "13812345678", "email": f"c{uuid.uuid4().hex[:8]}@example.com"},
            "content": "预约好的时间到店后说没有记录,让我白跑一趟",
            "occurred_at": datetime.now(SHANGHAI).replace(microsecond=0).isoformat()}
    body.update(overrides)
    return body


def submit(system, **overrides):
    receipt = system.post("intake", "/v1/feedback", feedback(**overrides))
    assert receipt.status_code == 201, receipt.text
    return receipt.json()["case_id"]


def routed(system, case_id):
    def probe():
        found = system.get("routing", f"/v1/cases/{case_id}")
        return found.json() if found.status_code == 200 else None
    return wait_for(probe, timeout=30, what=f"case {case_id} routed")


def actions(case):
    return [entry["action"] for entry in case["timeline"]]


def test_a_hotline_complaint_on_the_eve_of_a_holiday_waits_for_the_make_up_saturday(stack, token_keys):
    """Today is made the eve of a week-long holiday whose make-up workday is a Saturday
    (as National Day's 调休 are): the store's staff standard (8 business hours of
    keep-in-loop update) skips the holiday and lands on that Saturday, while the
    customer's 24-hour promise counts wall time."""
    system = stack()
    gm = As(system, token_keys, "gm-001")
    today = datetime.now(SHANGHAI).date()
    saturday = today + timedelta(days=2 + (5 - (today + timedelta(days=2)).weekday()) % 7)
    holidays = [today + timedelta(days=n) for n in range(1, (saturday - today).days)]
    for year in sorted({day.year for day in holidays + [saturday]}):
        listed = gm.post("routing", f"/v1/calendars/years/{year}", method="put", body={
            "holidays": [d.isoformat() for d in holidays if d.year == year],
            "workdays": [saturday.isoformat()] if saturday.year == year else [],
            "source": "a holiday week made for this test"})
        assert listed.status_code == 200, listed.text
    # two hours on weekdays, closed at weekends; a make-up workday opens 10:00-21:00
    weekday = [{"start": "10:00", "end": "12:00"}]
    hours = gm.post("routing", "/v1/calendars/stores/SH-XH-001", method="put", body={
        "weekly": {day: weekday for day in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [], "sun": []},
        "workday": [{"start": "10:00", "end": "21:00"}], "observes_holidays": True})
    assert hours.status_code == 200, hours.text

    case = routed(system, submit(system))
    submitted_at = datetime.fromisoformat(case["submitted_at"])
    local = submitted_at.astimezone(SHANGHAI)
    if today.weekday() < 5:  # what is left of today's 10:00-12:00 counts first
        opens = datetime.combine(today, datetime.min.time().replace(hour=10), SHANGHAI)
        closes = opens + timedelta(hours=2)
        left_today = max(timedelta(0), closes - max(local, opens))
    else:
        left_today = timedelta(0)
    expected = datetime.combine(saturday, datetime.min.time().replace(hour=10), SHANGHAI) \
        + (timedelta(hours=8) - left_today)
    assert datetime.fromisoformat(case["deadlines"]["update_due"]) == expected
    assert datetime.fromisoformat(case["deadlines"]["first_response_due"]) == submitted_at + timedelta(hours=24)


def test_a_paused_case_moves_its_deadlines_by_the_pause(shared_stack, token_keys):
    system = shared_stack()
    clerk = As(system, token_keys, "sh-xh-s1")
    case = routed(system, submit(system))
    before = datetime.fromisoformat(case["deadlines"]["resolution_due"])
    assert clerk.post("routing", f"/v1/cases/{case['case_id']}/acknowledge").status_code == 200
    paused = clerk.post("routing", f"/v1/cases/{case['case_id']}/request-info",
                        {"question": "请提供预约截图"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "pending_customer"
    time.sleep(2)
    resumed = clerk.post("routing", f"/v1/cases/{case['case_id']}/resume", {"answer": "顾客已发来截图"})
    assert resumed.status_code == 200, resumed.text
    after = datetime.fromisoformat(resumed.json()["deadlines"]["resolution_due"])
    assert timedelta(seconds=2) <= after - before < timedelta(seconds=10)
    assert {"info_requested", "resumed"} <= set(actions(resumed.json()))


def test_the_ladder_climbs_two_rungs_and_stops_at_an_acknowledgement(stack, token_keys):
    system = stack({"LADDER_ACK_STORE_STAFF_SECONDS": 1, "LADDER_ACK_SUPERVISOR_SECONDS": 1,
                    "LADDER_ACK_STORE_MANAGER_SECONDS": 3})
    manager = As(system, token_keys, "sh-xh-mg")
    case_id = submit(system)

    def on_rung(level):
        found = system.get("routing", f"/v1/cases/{case_id}").json()
        return found if found.get("rung") == level else None
    case = wait_for(lambda: on_rung(2), timeout=30, what="the store manager's rung")
    acknowledged = manager.post("routing", f"/v1/cases/{case_id}/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.text
    time.sleep(5)  # past the store manager's timeout: an acknowledged rung stays
    case = system.get("routing", f"/v1/cases/{case_id}").json()
    escalations = [e for e in case["timeline"] if e["action"] == "escalated"]
    assert [(e["rung"], e["reason"]) for e in escalations] == [(1, "unacknowledged"), (2, "unacknowledged")]
    assert case["rung"] == 2 and case["ladder"]["acknowledged_by"] == "sh-xh-mg"


def test_a_12315_referral_owes_a_report_signed_off_by_the_general_manager(shared_stack, token_keys):
    system = shared_stack()
    manager, gm = As(system, token_keys, "sh-xh-mg"), As(system, token_keys, "gm-001")
    case_id = submit(system, channel="consumer_association", content="消协转来投诉:顾客办卡后被多收费用,要求说明",
                     referral={"authority": "上海市消费者权益保护委员会", "reference_number": "12315-2026-0042",
                               "body": "请于八小时内书面说明情况"})
    case = routed(system, case_id)
    assert case["severity"] == "critical" and case["assignee"]["staff_id"] == "sh-xh-mg"
    assert [p["staff_id"] for p in case["informed"]] == ["cs-001"]
    assert case["referral"]["reference_number"] == "12315-2026-0042"
    submitted_at = datetime.fromisoformat(case["submitted_at"])
    assert datetime.fromisoformat(case["deadlines"]["report_due"]) == submitted_at + timedelta(hours=8)
    filed = manager.post("routing", f"/v1/cases/{case_id}/file-report", {"summary": "已核实:系统重复扣费,已全额退还"})
    assert filed.status_code == 200, filed.text
    assert filed.json()["clocks"]["report"]["met_at"] is None  # delivered only when signed off
    assert manager.post("routing", f"/v1/cases/{case_id}/sign-off-report").status_code == 403
    signed = gm.post("routing", f"/v1/cases/{case_id}/sign-off-report")
    assert signed.status_code == 200, signed.text
    assert signed.json()["clocks"]["report"]["met_at"] is not None
    assert {"report_filed", "report_signed_off"} <= set(actions(signed.json()))


def test_a_remedy_above_the_store_managers_limit_waits_for_the_regional_manager(shared_stack, token_keys):
    system = shared_stack()
    manager, regional = As(system, token_keys, "sh-xh-mg"), As(system, token_keys, "rm-east")
    case_id = routed(system, submit(system, content="做完光子嫩肤脸上起了水泡,要求赔偿医药费"))["case_id"]
    proposed = manager.post("routing", f"/v1/cases/{case_id}/propose-remedy",
                            {"type": "compensation", "amount_fen": 80_000, "note": "医药费与误工"})
    assert proposed.status_code == 200, proposed.text
    [remedy] = proposed.json()["remedies"]
    assert remedy["status"] == "pending_approval" and remedy["approver_role"] == "regional_manager"
    refused = manager.post("routing", f"/v1/cases/{case_id}/approve-remedy", {"remedy_id": remedy["remedy_id"]})
    assert refused.status_code == 403, refused.text
    approved = regional.post("routing", f"/v1/cases/{case_id}/approve-remedy", {"remedy_id": remedy["remedy_id"]})
    assert approved.status_code == 200, approved.text
    resolved = manager.post("routing", f"/v1/cases/{case_id}/resolve",
                            {"remedy_id": remedy["remedy_id"], "note": "已赔付"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"


def test_three_routing_replicas_escalate_each_rung_exactly_once(stack):
    system = stack({"LADDER_ACK_STORE_STAFF_SECONDS": 1, "LADDER_ACK_SUPERVISOR_SECONDS": 1,
                    "LADDER_ACK_STORE_MANAGER_SECONDS": 1, "LADDER_ACK_REGIONAL_SECONDS": 1},
                   replicas={"routing": 3})
    case_ids = [submit(system, content=f"前台态度很差,预约被无故取消 #{n}") for n in range(5)]

    def at_top(case_id):
        found = system.get("routing", f"/v1/cases/{case_id}").json()
        return found if found.get("rung") == 4 else None
    for case_id in case_ids:
        wait_for(lambda: at_top(case_id), timeout=60, what="the top of the ladder")
    time.sleep(3)  # time for any double escalation to show up
    for case_id in case_ids:
        case = system.get("routing", f"/v1/cases/{case_id}").json()
        assert [e["rung"] for e in case["timeline"] if e["action"] == "escalated"] == [1, 2, 3, 4]
