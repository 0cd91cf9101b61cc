"""notify end to end: the five services as processes (deploy/local.py), with local
stand-ins of the SMS gateway (Aliyun Dysms shape) and a WeCom group robot. One stack:
yueyan is in quiet hours (its brand policy: a window that closes a few seconds after
start), muyun is not.
- a referral at yueyan at night: the customer's acknowledgement waits for the window
  (and meanwhile takes routing's first-response deadline into its promise), the urgent
  staff alerts go to the store's WeCom group at once;
- a muyun customer with only a phone gets an SMS, through a gateway that fails at first,
  exactly once;
- a number the gateway refuses for good, with no other channel: abandoned, visible on
  the case with the provider's answer."""
import json
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests

from tests.fixtures import feedback_body, wait_for
from tests.integration.notify_providers import AliyunSms, WeComRobot

QUIET_SECONDS = 40  # from start: long enough for the stack to come up and take the referral


def test_quiet_hours_urgent_alerts_sms_retries_and_abandonment(stack, token_keys):
    gateway, robot = AliyunSms(), WeComRobot(keys=("robot-xh",))
    try:
        now = datetime.now(ZoneInfo("Asia/Shanghai"))
        window = f"{now - timedelta(hours=1):%H:%M:%S}-{now + timedelta(seconds=QUIET_SECONDS):%H:%M:%S}"
        started = time.monotonic()
        system = stack({
            "NOTIFY_RETRY_INTERVAL_SECONDS": 0.5, "NOTIFY_QUIET_HOURS": "off",
            "NOTIFY_BRAND_POLICIES": json.dumps({"yueyan": {"quiet_hours": window}}),
            "NOTIFY_SMS_ENDPOINT": gateway.url + "/", "NOTIFY_SMS_ACCESS_KEY_ID": gateway.access_key_id,
            "NOTIFY_SMS_ACCESS_KEY_SECRET": gateway.secret, "NOTIFY_SMS_SIGN_NAME": "悦颜美容",
            "NOTIFY_SMS_TEMPLATES": json.dumps({"acknowledgement": "SMS_300001"}),
            "NOTIFY_WECOM_API_BASE": robot.url, "NOTIFY_WECOM_ROBOTS": json.dumps({"store:SH-XH-001": "robot-xh"}),
        })
        assert time.monotonic() - started < QUIET_SECONDS - 10, "the stack took too long to start"

        # 1. a media referral at yueyan during quiet hours
        referral = system.post("intake", "/v1/feedback", feedback_body(
            channel="media", referral={"authority": "新民晚报"},
            customer={"name": "刘女士", "phone": "13812345678"})).json()
        wait_for(lambda: robot.sent, timeout=20, what="the urgent alert in the store's WeCom group")
        assert referral["case_number"] in robot.sent[0]["markdown"]["content"]

        def customer_delivery(service_headers, case_id):
            found = requests.get(system.url("notify") + "/v1/deliveries", params={"case_id": case_id},
                                 headers=service_headers, timeout=10).json()["deliveries"]
            return next((d for d in found if d["audience"] == "customer"), None)

        deferred = wait_for(lambda: customer_delivery(system.headers, referral["case_id"]), what="the ack")
        assert deferred["status"] == "deferred" and deferred["reason"] == "quiet hours"
        assert gateway.sent == []

        # 2. a muyun customer with only a phone; the gateway fails twice first
        muyun = token_keys.headers("bj-cy-mg", ttl=timedelta(hours=1))  # the muyun store's manager

        def submit_at_muyun(phone):
            return requests.post(system.url("intake") + "/v1/feedback", headers=muyun, timeout=10, json=feedback_body(
                store_id="BJ-CY-101", customer={"name": "陈女士", "phone": phone})).json()

        gateway.fail_next.extend([503, 503])
        phone_only = submit_at_muyun("13912345678")

        # 3. a number the gateway refuses, and no other channel
        gateway.refused_numbers.add("13700000000")
        refused = submit_at_muyun("13700000000")

        wait_for(lambda: [s for s in gateway.sent if s["PhoneNumbers"] == "13912345678"], timeout=20,
                 what="the SMS after the gateway recovered")
        abandoned = wait_for(lambda: (customer_delivery(muyun, refused["case_id"]) or {}).get("status") == "abandoned"
                             and customer_delivery(muyun, refused["case_id"]), what="abandoned")
        assert abandoned["reason"] == "sms: isv.MOBILE_NUMBER_ILLEGAL"
        assert abandoned["attempt_log"][-1]["request_id"] == "req-refused"

        # the quiet window opens: the referral's acknowledgement goes out
        (ack,) = wait_for(lambda: [s for s in gateway.sent if s["PhoneNumbers"] == "13812345678"],
                          timeout=QUIET_SECONDS + 15, what="the deferred acknowledgement")
        sent = customer_delivery(system.headers, referral["case_id"])
        statuses = [h["status"] for h in sent["status_history"]]
        assert statuses[0] == "queued" and statuses[-1] == "sent" and "deferred" in statuses
        # it waited for routing's deadline: the customer is promised the case's own time
        assert json.loads(ack["TemplateParam"])["promise"].endswith("前联系您")
        time.sleep(1)
        assert len([s for s in gateway.sent if s["PhoneNumbers"] == "13912345678"]) == 1
        delivered = customer_delivery(muyun, phone_only["case_id"])
        codes = [a["code"] for a in delivered["attempt_log"]]  # the two 503s fall on whichever SMS came first
        assert codes[-1] is None and set(codes[:-1]) <= {"http_503"}
        assert len([a for s in (delivered, abandoned) for a in s["attempt_log"] if a["code"] == "http_503"]) == 2
        assert delivered["attempt_log"][-1]["provider_message_id"].startswith("biz-")
    finally:
        gateway.stop()
        robot.stop()
