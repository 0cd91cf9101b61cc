"""The staff console in a real headless browser (Debian's chromium through selenium),
against the five services and the console running as processes, as `make run` starts
them: a day's case from the front desk to the revisit, the regional manager's approval
in between, and another store's staff who never see it."""
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.console_browser import PHONE, chromium, console_for  # noqa: F401  (fixtures)
from tests.fixtures import ALWAYS_OPEN, wait_for

pytestmark = pytest.mark.e2e
SHANGHAI = ZoneInfo("Asia/Shanghai")
STAFF = ("sh-xh-s1", "sh-xh-rv", "hz-xh-s1", "rm-east", "sh-xh-mg")


def submit_booking_complaint(system):
    """A medium-severity booking complaint at store A (SH-XH-001): it goes to the store's staff."""
    receipt = system.post("intake", "/v1/feedback", {
        "store_id": "SH-XH-001", "channel": "hotline",
        "customer": {"name": "刘女士", "phone": "13812345678", "email": f"c{uuid.uuid4().hex[:8]}@example.com"},
        "content": "预约好的时间到店后说没有记录,让我白跑一趟",
        "occurred_at": datetime.now(SHANGHAI).replace(microsecond=0).isoformat()})
    assert receipt.status_code == 201, receipt.text
    case_id = receipt.json()["case_id"]
    return wait_for(lambda: _routed(system, case_id), timeout=30, what="the case routed")


def _routed(system, case_id):
    found = system.get("routing", f"/v1/cases/{case_id}")
    return found.json() if found.status_code == 200 else None


def test_a_case_from_the_front_desk_to_the_revisit(stack, console_for):  # noqa: F811
    system = stack({"REVISIT_DELAY_SECONDS": 1, **ALWAYS_OPEN, "REVISIT_SCAN_INTERVAL_SECONDS": 1})
    console = console_for(system, STAFF)

    # the store manager's queue picks up a new complaint by itself (short polling)
    console.log_in("sh-xh-mg")
    console.open("/queue")
    console.wait_for("#queue")
    case = submit_booking_complaint(system)
    case_id = case["case_id"]
    console.wait_for(f'li[data-case-id="{case_id}"]', timeout=15)

    clerk = case["assignee"]["staff_id"]
    assert case["assignee"]["role"] == "store_staff", case["assignee"]

    # the store's staff: the case in the queue, with its countdowns and the customer masked
    console.log_in(clerk)
    console.open("/queue")
    row = console.wait_for(f'li[data-case-id="{case_id}"]')
    assert case["case_number"] in row.text and "刘**" in row.text and "138****5678" in row.text
    assert row.find_elements("css selector", ".clock[data-due]"), "no countdown on the queue"
    console.screenshot("queue-phone", PHONE)

    # acknowledge in one tap, then answer the customer
    console.open(f"/cases/{case_id}")
    console.wait_for("#do-acknowledge").click()
    assert console.flashed("接单"), console.text("#flash")
    assert console.wait_for("#case-status").get_attribute("data-status") == "acknowledged"
    console.wait_for("#respond-note").send_keys("已致电刘女士致歉,核实预约系统记录")
    console.driver.find_element("css selector", "#form-respond button[type=submit]").click()
    assert console.flashed("回复顾客"), console.text("#flash")
    assert console.wait_for("#case-status").get_attribute("data-status") == "investigating"

    # a remedy above the staff's limit: the form says who approves it, routing agrees
    console.driver.find_element("xpath", "//summary[text()='提出处理方案']").click()
    console.wait_for("#type-compensation").click()
    console.driver.find_element("id", "remedy-amount").send_keys("800")
    assert "区域经理" in console.text("#approval-hint")
    console.driver.find_element("id", "remedy-note").send_keys("补偿往返交通与误工")
    console.driver.find_element("id", "do-propose").click()
    assert console.flashed("提出处理方案"), console.text("#flash")
    remedies = console.text("#remedies")
    assert "待审批" in remedies and "陈立华" in remedies and "800.00" in remedies
    assert not console.driver.find_elements("id", "do-approve"), "store staff were offered the approval"
    console.screenshot("case-phone", PHONE)
    console.driver.execute_script("document.getElementById('remedies').scrollIntoView()")
    console.screenshot("case-remedy-phone")
    console.driver.set_window_size(1280, 900)
    console.log_out()

    # another store's staff never see it, not even by its address
    console.log_in("hz-xh-s1")
    console.open("/queue")
    console.wait_for("#queue")
    assert case_id not in console.driver.page_source and case["case_number"] not in console.driver.page_source
    console.open(f"/cases/{case_id}")
    assert "找不到这个投诉单" in console.text("h1")
    console.log_out()

    # the regional manager: the approval waits in the inbox; approve it on the case
    console.log_in("rm-east")
    console.open("/escalations")
    assert case["case_number"] in console.text("#approvals")
    console.open(f"/cases/{case_id}")
    console.wait_for("#do-approve").click()
    assert console.flashed("批准方案"), console.text("#flash")
    assert console.wait_for('#remedies li[data-remedy-status="approved"]')
    console.log_out()

    # back at the desk: resolve with the approved remedy
    console.log_in(clerk)
    console.open(f"/cases/{case_id}")
    console.driver.find_element("xpath", "//summary[text()='办结']").click()
    console.wait_for("#resolve-note").send_keys("已按批准方案赔付800元,顾客接受")
    console.driver.find_element("id", "do-resolve").click()
    assert console.flashed("办结"), console.text("#flash")
    assert console.wait_for("#case-status").get_attribute("data-status") == "resolved"

    # the satisfaction revisit, recorded on the case page when it is made
    wait_for(lambda: system.get("followup", "/v1/revisits", params={"case_id": case_id}).json()["revisits"],
             timeout=20, what="the revisit")
    console.open(f"/cases/{case_id}")
    console.wait_for("#score-5").click()
    console.driver.find_element("id", "revisit-comment").send_keys("顾客表示满意")
    console.driver.find_element("id", "do-revisit").click()
    assert console.flashed("回访已记录"), console.text("#flash")
    [revisit] = system.get("followup", "/v1/revisits", params={"case_id": case_id}).json()["revisits"]
    assert revisit["status"] == "completed" and revisit["score"] == 5
    console.screenshot("case-desktop")

    # a page the role has not, an expired session, and the way back to where one was
    console.open("/dashboard")
    assert "不能查看" in console.text("h1")
    console.driver.delete_cookie("cl_session")
    console.open("/revisits")
    console.wait_for("#login-form")
    console.driver.find_element("id", "staff_id").send_keys("sh-xh-mg")
    console.driver.find_element("id", "password").send_keys("console-e2e-password")
    console.driver.find_element("css selector", "#login-form button[type=submit]").click()
    console.wait_for("#who")
    assert console.driver.current_url.endswith("/revisits")
    assert console.wait_for("#appointments-title").text.startswith("预约")  # the store's bookings of the day
    console.open("/language?to=en&next=/dashboard")
    assert "Store dashboard" in console.text("h1")
    assert console.text("#kpi-resolution") != "—"  # the resolution above counts

