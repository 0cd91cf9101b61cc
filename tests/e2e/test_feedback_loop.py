"""The whole loop across the five services, run as in production."""
import re
import uuid

import requests

import pytest

from tests.fixtures import ALWAYS_OPEN, wait_for

pytestmark = pytest.mark.e2e


def feedback(**overrides):
    body = {
        "store_id": "SH-XH-001", "channel": "wechat",
        "customer": {"name": "刘女士", "phone": "138 1234 5678", "email": f"c{uuid.uuid4().hex[:8]}@example.com"},
        "content": "上周做的补水项目完全没有效果,还被推销办卡,要求退款",
        "occurred_at": "2026-11-20T19:30:00+08:00",
    }
    body.update(overrides)
    return body


def metric(text, name, **labels):
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + ("{" + label_text + "}" if labels else "")) + r" ([0-9.e+]+)"
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None


def test_complaint_travels_the_whole_loop(stack, smtp_sink, amqp_bus):
    system = stack({"REVISIT_DELAY_SECONDS": 1, **ALWAYS_OPEN, "REVISIT_SCAN_INTERVAL_SECONDS": 0.5,
                    "SLA_SCAN_INTERVAL_SECONDS": 0.5})

    # 1. in by HTTP and by bus
    by_http = feedback()
    receipt = system.post("intake", "/v1/feedback", by_http)
    assert receipt.status_code == 201, receipt.text
    case_id, case_number = receipt.json()["case_id"], receipt.json()["case_number"]
    by_bus = feedback(channel="hotline", external_ref={"source": "crm", "id": uuid.uuid4().hex},
                      content="技师操作仪器时把我脸烫伤了", store_id="HZ-XH-002")
    amqp_bus.publish_feedback(by_bus)

    # 2. acknowledgements with the case number reach both customers
    ack = wait_for(lambda: smtp_sink.to(by_http["customer"]["email"]), timeout=30, what="HTTP ack")[0]
    assert case_number in ack["Subject"]
    assert wait_for(lambda: smtp_sink.to(by_bus["customer"]["email"]), timeout=30, what="bus ack")

    # 3. routed to the right person, who is told
    case = wait_for(lambda: system.get("routing", f"/v1/cases/{case_id}").json()
                    if system.get("routing", f"/v1/cases/{case_id}").status_code == 200 else None,
                    timeout=30, what="routed case")
    assert case["category"] == "product_efficacy" and case["severity"] == "medium"
    assert case["assignee"]["role"] == "store_staff" and case["ladder"]["people"] == [case["assignee"]["staff_id"]]
    wait_for(lambda: [m for m in smtp_sink.to(case["assignee"]["email"]) if case_number in m["Subject"]],
             timeout=30, what="assignment e-mail")
    bus_case = wait_for(lambda: system.get("routing", "/v1/cases", params={"store": "HZ-XH-002"}).json()["cases"],
                        timeout=30, what="bus case routed")[0]
    # a possible injury: a manager on the floor (supervisor or store manager) takes it
    assert bus_case["severity"] == "high" and bus_case["assignee"]["role"] in ("supervisor", "store_manager")

    # 4. first response, then resolved with a partial refund (option B, 268 yuan in fen)
    assert system.post("routing", f"/v1/cases/{case_id}/respond",
                       {"note": "已致电致歉"}).status_code == 200
    assert system.post("routing", f"/v1/cases/{case_id}/propose-remedy", {
        "type": "refund", "refund_option": "partial_continue", "amount_fen": 26_800}).status_code == 200
    resolved = system.post("routing", f"/v1/cases/{case_id}/resolve", {"note": "退还部分费用,疗程继续"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["remedy"]["amount_fen"] == 26_800

    # 5. the revisit falls due and its owner is told
    revisit = wait_for(lambda: [r for r in system.get("followup", "/v1/revisits", params={"case_id": case_id})
                                .json()["revisits"] if r["status"] == "due"], timeout=30, what="due revisit")[0]
    wait_for(lambda: [m for m in smtp_sink.to("zhao.min@yueyan.example") if case_number in m["Subject"]],
             timeout=30, what="revisit e-mail")

    # 6. a low score reopens the case
    assert system.post("followup", f"/v1/revisits/{revisit['revisit_id']}/outcome",
                       {"score": 1, "comment": "还是没效果"}).status_code == 200
    wait_for(lambda: system.get("routing", f"/v1/cases/{case_id}").json()["status"] == "reopened",
             timeout=30, what="reopened")
    actions = [e["action"] for e in system.get("routing", f"/v1/cases/{case_id}").json()["timeline"]]
    assert actions[:2] == ["submitted", "routed"]
    assert actions[-4:] == ["responded", "remedy_proposed", "resolved", "reopened"]

    # 7. the report and the metrics reflect all of it
    def report():
        body = system.get("reporting", "/v1/reports/summary").json()
        return body if body["cases"] == 2 and body["satisfaction"]["revisits"] == 1 and \
            body["by_status"].get("reopened") == 1 else None
    summary = wait_for(report, timeout=30, what="report")
    assert summary["by_category"] == {"product_efficacy": 1, "technician_skill": 1}
    assert summary["first_response"]["on_time"] == 1
    # reopened, so its resolution no longer counts; its new clock has not run out yet
    assert summary["resolution"]["counted"] == 0
    assert summary["satisfaction"]["rate"] == 0.0 and summary["reopened"]["cases"] == 1

    assert metric(system.get("intake", "/metrics").text, "closeloop_feedback_received_total",
                  channel="wechat", via="http") == 1.0
    assert metric(system.get("intake", "/metrics").text, "closeloop_feedback_received_total",
                  channel="hotline", via="bus") == 1.0
    assert metric(system.get("routing", "/metrics").text, "closeloop_time_to_first_response_seconds_count") == 1.0
    reporting_metrics = system.get("reporting", "/metrics").text
    assert metric(reporting_metrics, "closeloop_open_cases", severity="medium") == 1.0
    assert metric(reporting_metrics, "closeloop_open_cases", severity="high") == 1.0
    assert metric(system.get("notify", "/metrics").text, "closeloop_notifications_total",
                  channel="email", kind="acknowledgement", outcome="sent") == 2.0


def test_unacknowledged_case_climbs_and_each_rung_is_told_once_with_two_routing_replicas(stack, smtp_sink):
    system = stack({"LADDER_ACK_STORE_STAFF_SECONDS": 1, "LADDER_ACK_SUPERVISOR_SECONDS": 1,
                    "LADDER_ACK_STORE_MANAGER_SECONDS": 1, "LADDER_ACK_REGIONAL_SECONDS": 1},
                   replicas={"routing": 2})
    receipt = system.post("intake", "/v1/feedback", feedback(content="前台态度很差,预约被无故取消")).json()
    case_id, number = receipt["case_id"], receipt["case_number"]

    def climbed():
        case = system.get("routing", f"/v1/cases/{case_id}")
        return case.json() if case.status_code == 200 and case.json()["rung"] == 4 else None
    case = wait_for(climbed, timeout=60, what="top of the ladder")
    assert [e["reason"] for e in case["timeline"] if e["action"] == "escalated"] == ["unacknowledged"] * 4
    # every rung's people, the regional rung's customer-service department too, told once each
    for address in ("li.na@yueyan.example", "zhang.li@yueyan.example", "rm.east@yueyan.example",
                    "service@yueyan.example", "gm@yueyan.example"):
        wait_for(lambda: [m for m in smtp_sink.to(address) if number in m["Subject"] and "升级" in m["Subject"]],
                 timeout=30, what=f"escalation mail to {address}")
    import time
    time.sleep(3)  # time for any double escalation or mail to show up
    for address in ("li.na@yueyan.example", "zhang.li@yueyan.example", "rm.east@yueyan.example",
                    "gm@yueyan.example"):
        assert len([m for m in smtp_sink.to(address) if number in m["Subject"] and "升级" in m["Subject"]]) == 1
    escalations = sum(metric(requests.get(system.url("routing", i) + "/metrics").text,
                             "closeloop_escalations_total", reason="unacknowledged") or 0 for i in range(2))
    assert escalations == 4.0
