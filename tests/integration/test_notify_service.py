"""The notify service against real RabbitMQ, the Mongo-protocol stand-in and local
stand-ins of its providers (tests/integration/notify_providers.py): a phone-only
customer gets exactly one signed SMS through a gateway that was down, WeChat with an
expired token and a refusing user, quiet hours that hold customers but not urgent staff
alerts, an abandoned notification announced and visible, signed webhook copies."""
import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from services.notify.service import NotifyService
from tests.fixtures import wait_for
from tests.integration.notify_providers import AliyunSms, WebhookReceiver, WeChatApi, WeComRobot, new_secret

pytestmark = pytest.mark.integration

REGIONAL = {"staff_id": "rm-east", "name": "陈立华", "role": "regional_manager", "email": "rm.east@yueyan.example"}
MANAGER = {"staff_id": "sh-xh-mg", "name": "张丽", "role": "store_manager", "email": "zhang.li@yueyan.example"}
OLD, NEW = new_secret("rotating-old"), new_secret("rotating-new")


@pytest.fixture
def providers():
    started = {"sms": AliyunSms(), "wechat": WeChatApi(), "wecom": WeComRobot(keys=("robot-east",)),
               "hooks": WebhookReceiver([NEW])}
    yield started
    for server in started.values():
        server.stop()


def notify_config(service_config, web_config, providers, **overrides):
    return dict(
        service_config, **web_config, NOTIFY_RETRY_INTERVAL_SECONDS=0.5, NOTIFY_PROVIDER_TIMEOUT_SECONDS=2,
        NOTIFY_SMS_ENDPOINT=providers["sms"].url + "/", NOTIFY_SMS_ACCESS_KEY_ID=providers["sms"].access_key_id,
        NOTIFY_SMS_ACCESS_KEY_SECRET=providers["sms"].secret, NOTIFY_SMS_SIGN_NAME="悦颜美容",
        NOTIFY_SMS_TEMPLATES=json.dumps({"acknowledgement": "SMS_300001"}), NOTIFY_SMS_RECEIPT_TOKEN="rcpt-token",
        NOTIFY_WECHAT_API_BASE=providers["wechat"].url, NOTIFY_WECHAT_APP_ID=providers["wechat"].app_id,
        NOTIFY_WECHAT_APP_SECRET=providers["wechat"].secret, NOTIFY_WECHAT_SERVER_TOKEN="server-token",
        NOTIFY_WECHAT_TEMPLATES=json.dumps({"acknowledgement": "tmpl-ack"}),
        NOTIFY_WECOM_API_BASE=providers["wecom"].url, NOTIFY_WECOM_ROBOTS=json.dumps({"region:east": "robot-east"}),
        NOTIFY_WEBHOOKS=json.dumps([{"id": "crm", "url": providers["hooks"].url + "/hooks",
                                     "secrets": [OLD, NEW], "kinds": ["acknowledgement"]}]),
        **overrides)


@pytest.fixture
def notify(container_factory, service_config, web_config, providers):
    config = notify_config(service_config, web_config, providers)
    container_factory(NotifyService, config).start()
    return config


def emit(config, event_type, data):
    event_dispatcher(config)(ev.EMITTERS[event_type], event_type, ev.dump(event_type, data))


def submitted(case_id, **contact):
    now = utcnow()
    return {"case_id": case_id, "case_number": "CL-20261124-000321", "store_id": "SH-XH-001",
            "store_name": "上海徐汇店", "channel": "hotline",
            "customer": {"name": "王女士", "phone": None, "email": None, **contact},
            "content": "毛巾不干净", "occurred_at": now, "submitted_at": now}


def escalated(case_id):
    return {"case_id": case_id, "case_number": "CL-20261124-000321", "store_id": "SH-XH-001",
            "severity": "critical", "reason": "critical_referral", "rung": 3, "previous_assignee": MANAGER,
            "assignee": REGIONAL, "escalated_at": utcnow()}


def deliveries(session, case_id):
    return session.get("/v1/deliveries", params={"case_id": case_id}).json()["deliveries"]


def test_a_phone_only_customer_gets_exactly_one_signed_sms_though_the_gateway_was_down(notify, providers,
                                                                                      web_session):
    gateway = providers["sms"]
    gateway.fail_next.extend([503, "timeout"])
    case_id = uuid.uuid4().hex
    for _ in range(3):  # redelivered
        emit(notify, ev.CASE_SUBMITTED, submitted(case_id, phone="+8613912345678"))
    wait_for(lambda: gateway.sent, timeout=20, what="the SMS")
    eventlet.sleep(1.5)
    assert len(gateway.sent) == 1
    assert gateway.sent[0]["PhoneNumbers"] == "13912345678" and gateway.sent[0]["TemplateCode"] == "SMS_300001"
    (delivery,) = wait_for(lambda: [d for d in deliveries(web_session, case_id)
                                    if d["status"] == "sent" and d["audience"] == "customer"], what="sent in the log")
    assert [(a["channel"], a["outcome"], a["code"]) for a in delivery["attempt_log"]] == [
        ("sms", "transient", "http_503"), ("sms", "transient", "ReadTimeout"), ("sms", "sent", None)]
    assert delivery["attempt_log"][-1]["request_id"] == "req-1"
    assert delivery["attempt_log"][-1]["provider_message_id"] == "biz-1"
    assert [h["status"] for h in delivery["status_history"]] == ["queued", "failed", "failed", "sent"]
    assert delivery["recipient"] == "+8613912345678"  # the store manager may see it
    found = web_session.get("/v1/deliveries/by-customer", params={"contact": "139 1234 5678"}).json()
    assert case_id in {d["case_id"] for d in found["deliveries"]}


def test_wechat_survives_an_expired_token_and_a_refusal_falls_to_sms(notify, providers, web_session):
    wechat, gateway = providers["wechat"], providers["sms"]
    first, second, refused = (uuid.uuid4().hex for _ in range(3))
    emit(notify, ev.CASE_SUBMITTED, submitted(first, phone="+8613912345678", wechat_openid="o-wang"))
    wait_for(lambda: len(wechat.sent) == 1, what="first WeChat message")
    wechat.expire_tokens()
    emit(notify, ev.CASE_SUBMITTED, submitted(second, phone="+8613912345678", wechat_openid="o-wang"))
    wait_for(lambda: len(wechat.sent) == 2, what="second WeChat message")
    assert wechat.tokens == ["token-1", "token-2"] and gateway.sent == []
    assert wechat.sent[0]["data"]["character_string2"] == {"value": "CL-20261124-000321"}
    wechat.refused_openids.add("o-refuser")
    emit(notify, ev.CASE_SUBMITTED, submitted(refused, phone="+8613700000000", wechat_openid="o-refuser"))
    wait_for(lambda: gateway.sent, what="the SMS instead")
    (delivery,) = [d for d in deliveries(web_session, refused) if d["audience"] == "customer"]
    assert [(a["channel"], a["outcome"], a["code"]) for a in delivery["attempt_log"]] == [
        ("wechat", "permanent", "43101"), ("sms", "sent", None)]


def test_quiet_hours_hold_the_customer_but_not_an_urgent_alert(container_factory, service_config, web_config,
                                                              providers, web_session):
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    opens = now + timedelta(seconds=4)
    window = f"{(now - timedelta(hours=1)):%H:%M:%S}-{opens:%H:%M:%S}"
    config = notify_config(service_config, web_config, providers, NOTIFY_QUIET_HOURS=window)
    container_factory(NotifyService, config).start()
    case_id = uuid.uuid4().hex
    emit(config, ev.CASE_SUBMITTED, submitted(case_id, phone="+8613912345678"))
    emit(config, ev.CASE_ESCALATED, escalated(case_id))
    wait_for(lambda: providers["wecom"].sent, what="the urgent staff alert")
    ack = wait_for(lambda: [d for d in deliveries(web_session, case_id)
                            if d["kind"] == "acknowledgement" and d["status"] == "deferred"], what="deferred")[0]
    assert providers["sms"].sent == [] and ack["reason"] == "quiet hours"
    assert datetime.fromisoformat(ack["next_attempt_at"]) == opens.replace(microsecond=0).astimezone(timezone.utc)
    wait_for(lambda: providers["sms"].sent, timeout=15, what="the SMS once the window opened")
    assert "**【升级】顾客反馈 CL-20261124-000321**" in providers["wecom"].sent[0]["markdown"]["content"]


def test_nobody_reachable_is_announced_for_a_phone_call_and_visible_on_the_case(notify, record_events,
                                                                                 web_session):
    heard = record_events(ev.NOTIFICATION_FAILED)
    case_id = uuid.uuid4().hex
    emit(notify, ev.CASE_SUBMITTED, submitted(case_id, member_id="M-7"))
    (failed,) = wait_for(lambda: heard.of_type(ev.NOTIFICATION_FAILED), what="notification_failed")
    assert (failed["case_id"], failed["kind"], failed["action"]) == (case_id, "acknowledgement", "phone_call")
    (delivery,) = [d for d in deliveries(web_session, case_id) if d["audience"] == "customer"]
    assert (delivery["status"], delivery["reason"]) == ("abandoned", "no reachable channel")


def test_other_systems_get_a_signed_copy_under_the_notifications_identity(notify, providers, web_session):
    case_id = uuid.uuid4().hex
    emit(notify, ev.CASE_SUBMITTED, submitted(case_id, phone="+8613912345678"))
    received = wait_for(lambda: providers["hooks"].received, what="the webhook")
    assert received[0]["body"]["case_id"] == case_id and received[0]["body"]["type"] == "notification.acknowledgement"
    assert providers["hooks"].rejected == 0
    hook = next(d for d in deliveries(web_session, case_id) if d["audience"] == "system")
    assert hook["status"] == "sent" and hook["recipient"] == "crm"
    assert hook["attempt_log"][0]["request_id"] == received[0]["id"]
    metrics = web_session.get("/metrics").text
    assert 'closeloop_notifications_total{channel="webhook",kind="acknowledgement",outcome="sent"}' in metrics
    assert 'closeloop_notification_latency_seconds_count{channel="sms"}' in metrics


def test_the_gateways_delivery_receipt_marks_the_sms_delivered(notify, providers, web_session):
    case_id = uuid.uuid4().hex
    emit(notify, ev.CASE_SUBMITTED, submitted(case_id, phone="+8613912345678"))
    sent = wait_for(lambda: providers["sms"].sent, what="the SMS")[0]
    report = [{"phone_number": "13912345678", "send_time": "2026-11-24 11:00:00",
               "report_time": "2026-11-24 11:00:05", "success": True, "err_code": "DELIVERED",
               "err_msg": "用户接收成功", "sms_size": "1", "biz_id": "biz-1", "out_id": sent["OutId"]}]
    url = "/v1/receipts/sms"
    assert web_session.post(url, params={"token": "wrong"}, json=report).status_code == 404
    assert web_session.post(url, params={"token": "rcpt-token"}, json={"not": "a list"}).status_code == 422
    answer = web_session.post(url, params={"token": "rcpt-token"}, json=report)
    assert answer.status_code == 200 and answer.json()["code"] == 0
    (delivery,) = [d for d in deliveries(web_session, case_id) if d["audience"] == "customer"]
    assert [h["status"] for h in delivery["status_history"]] == ["queued", "sent", "delivered"]


def wechat_signed(token="server-token", timestamp="1764100000", nonce="n0nce"):
    signature = hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def send_report(msgid, status):
    return (f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[o-wang]]></FromUserName>"
            f"<CreateTime>1764100000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msgid}</MsgID>"
            f"<Status><![CDATA[{status}]]></Status></xml>").encode()


def test_wechat_send_reports_mark_delivered_or_move_the_message_on(notify, providers, web_session):
    url = "/v1/receipts/wechat"
    check = web_session.get(url, params={**wechat_signed(), "echostr": "echo-me"})
    assert check.status_code == 200 and check.text == "echo-me"
    assert web_session.get(url, params={**wechat_signed("forged"), "echostr": "x"}).status_code == 404
    delivered, blocked = uuid.uuid4().hex, uuid.uuid4().hex
    emit(notify, ev.CASE_SUBMITTED, submitted(delivered, phone="+8613912345678", wechat_openid="o-wang"))
    wait_for(lambda: len(providers["wechat"].sent) == 1, what="the first WeChat message")
    emit(notify, ev.CASE_SUBMITTED, submitted(blocked, phone="+8613700000000", wechat_openid="o-wang"))
    wait_for(lambda: len(providers["wechat"].sent) == 2, what="the second WeChat message")
    customer = lambda case_id: next(d for d in deliveries(web_session, case_id) if d["audience"] == "customer")  # noqa: E731
    wait_for(lambda: customer(blocked)["status"] == "sent", what="the second sent")
    assert web_session.post(url, params=wechat_signed("forged"), data=send_report(1001, "success")).status_code == 404
    for msgid, status in ((1001, "success"), (1002, "failed:user block")):
        answer = web_session.post(url, params=wechat_signed(), data=send_report(msgid, status),
                                  headers={"Content-Type": "text/xml"})
        assert answer.status_code == 200 and answer.text == "success"
    assert [h["status"] for h in customer(delivered)["status_history"]] == ["queued", "sent", "delivered"]
    wait_for(lambda: [s for s in providers["sms"].sent if s["PhoneNumbers"] == "13700000000"], what="SMS instead")
    moved = customer(blocked)
    assert [(a["channel"], a["code"]) for a in moved["attempt_log"]] == [("wechat", "failed:userblock"), ("sms", None)]


def test_the_acknowledgement_waits_for_routings_deadline_and_promises_it(container_factory, service_config,
                                                                         web_config, providers):
    config = notify_config(service_config, web_config, providers, NOTIFY_ACK_WAIT_SECONDS=10)
    container_factory(NotifyService, config).start()
    case_id, now = uuid.uuid4().hex, utcnow()
    emit(config, ev.CASE_SUBMITTED, submitted(case_id, phone="+8613912345678"))
    eventlet.sleep(1)
    assert providers["sms"].sent == []  # waiting for routing
    due = now + timedelta(hours=3)
    emit(config, ev.CASE_ROUTED, {
        "case_id": case_id, "case_number": "CL-20261124-000321", "store_id": "SH-XH-001", "category": "hygiene",
        "severity": "medium", "assignee": MANAGER, "rung": 2, "routed_at": now,
        "deadlines": {"first_response_due": due, "resolution_due": due + timedelta(hours=24)}})
    (sms,) = wait_for(lambda: providers["sms"].sent, what="the acknowledgement")
    promised = due.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d %H:%M")
    assert json.loads(sms["TemplateParam"])["promise"] == f"我们将于{promised}前联系您"


def weekly_digest(level, unit, managers, store_id=None):
    return {"digest_id": f"2026-11-16:{level}:{unit}:{uuid.uuid4().hex[:6]}", "level": level, "unit_id": unit,
            "unit_name": {"east": "华东", "yueyan": "悦颜"}[unit], "store_id": store_id, "managers": managers,
            "week_from": datetime(2026, 11, 16).date(), "week_to": datetime(2026, 11, 22).date(),
            "cases": 12, "first_response_rate": 0.9167, "resolution_rate": 0.75, "satisfaction_rate": 1.0,
            "repeat_30_rate": 0.0833, "cases_change": -3,
            "root_causes": [{"root_cause": "poor_communication", "cases": 3, "share": 0.75, "cumulative": 0.75},
                            {"root_cause": "expectation_gap", "cases": 1, "share": 0.25, "cumulative": 1.0}]}


def test_the_weekly_digest_reaches_each_manager_once_by_their_groups_robot_or_by_mail(notify, providers,
                                                                                    smtp_sink, web_session):
    gm = {"staff_id": "gm-001", "name": "周慧敏", "role": "general_manager", "email": "gm@yueyan.example"}
    service = {"staff_id": "cs-001", "name": "客服部 林静", "role": "customer_service",
               "email": "service@yueyan.example"}
    region = weekly_digest("region", "east", [REGIONAL], store_id="SH-XH-001")
    brand = weekly_digest("brand", "yueyan", [gm, service])
    for data in (region, brand, region):  # the region's digest redelivered
        emit(notify, ev.WEEKLY_DIGEST_READY, dict(data, event_id=uuid.uuid4().hex))
    # the regional manager's group has a robot (region:east); a brand's digest names no store: e-mail
    wait_for(lambda: providers["wecom"].sent, what="the region's digest in its WeCom group")
    wait_for(lambda: smtp_sink.to(gm["email"]) and smtp_sink.to(service["email"]), what="the brand's digest by mail")
    eventlet.sleep(1)
    (robot,) = providers["wecom"].sent
    assert robot["key"] == "robot-east"
    assert "**【周报】华东 2026-11-16 至 2026-11-22**" in robot["markdown"]["content"]
    assert "沟通不良 3 件(75.0%)" in robot["markdown"]["content"]
    (mail,) = smtp_sink.to(gm["email"])
    assert mail["Subject"] == "【周报】悦颜 2026-11-16 至 2026-11-22 顾客反馈汇总"
    assert "首次回应及时率:91.7%" in mail.get_body(("plain",)).get_content()
    logged = deliveries(web_session, region["digest_id"])
    assert [(d["kind"], d["audience"], d["channel"], d["status"]) for d in logged] == [
        ("weekly_digest", "staff", "wecom", "sent")]
    assert len(smtp_sink.to(gm["email"])) == len(smtp_sink.to(service["email"])) == 1
