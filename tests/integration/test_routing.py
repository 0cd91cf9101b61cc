"""routing against real RabbitMQ and the MongoDB-protocol server."""
import json
import uuid
from collections import Counter

import pytest
from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.standins import free_port
from tests.fixtures import wait_for
from services.routing.service import RoutingService

pytestmark = pytest.mark.integration


def submitted(channel="hotline", content="前台预约时间搞错了,到店等了一个小时", **extra):
    now = utcnow()
    return ev.dump(ev.CASE_SUBMITTED, {
        "case_id": uuid.uuid4().hex, "case_number": f"CL-20261124-{uuid.uuid4().int % 10**6:06d}",
        "store_id": "SH-XH-001", "store_name": "上海徐汇店", "channel": channel,
        "customer": {"name": "陈女士", "phone": "+8613912345678", "email": "chen@example.com"},
        "content": content, "occurred_at": now, "submitted_at": now, "locale": "zh-CN", **extra})


@pytest.fixture
def routing_config(service_config, web_config):
    return dict(service_config, **web_config, SLA_SCAN_INTERVAL_SECONDS=0.2,
                OUTBOX_RELAY_INTERVAL_SECONDS=1)


ROUTING_EVENTS = (ev.CASE_ROUTED, ev.CASE_ESCALATED, ev.CASE_RESOLVED, ev.CASE_REOPENED,
                  ev.CASE_DEADLINE_BREACHED)


@pytest.fixture
def heard(record_events):
    """What routing published, as its consumers receive it."""
    return record_events(*ROUTING_EVENTS)


@pytest.fixture
def routing(container_factory, routing_config, heard):
    container = container_factory(RoutingService, routing_config)
    container.start()
    return container


def dispatch(config, event_type, payload):
    event_dispatcher(config)(ev.EMITTERS[event_type], event_type, payload)


def post(session, path, body):
    return session.post(path, data=json.dumps(body, ensure_ascii=False).encode(),
                        headers={"Content-Type": "application/json"})


def test_case_is_classified_assigned_and_routed(heard, routing, routing_config, web_session):
    event = submitted()
    dispatch(routing_config, ev.CASE_SUBMITTED, event)
    routed = wait_for(lambda: heard.of_type(ev.CASE_ROUTED), what="case_routed")[0]
    assert routed["category"] == "booking" and routed["severity"] == "low"
    # no roster: the store staff member with the fewest open cases (then by staff id)
    assert routed["assignee"]["role"] == "store_staff" and routed["rung"] == 0
    assert routed["policy_id"] == "default" and routed["ack_due_at"] is not None
    due = routed["deadlines"]
    assert (due["first_response_due"] - event_time(event)).total_seconds() == pytest.approx(86400, abs=1)
    assert (due["resolution_due"] - event_time(event)).total_seconds() == pytest.approx(172800, abs=1)
    case = web_session.get(f"/v1/cases/{event['case_id']}").json()
    assert case["status"] == "assigned" and case["rung_role"] == "store_staff"
    assert [e["action"] for e in case["timeline"]][:2] == ["submitted", "routed"]
    assert "acknowledge" in case["allowed_actions"] and "customer_keys" not in case


def event_time(event):
    return ev.load(ev.CASE_SUBMITTED, event)["submitted_at"]


def test_redelivered_case_submitted_routes_once(heard, routing, routing_config):
    event = submitted()
    for _ in range(3):
        dispatch(routing_config, ev.CASE_SUBMITTED, event)
    wait_for(lambda: heard.of_type(ev.CASE_ROUTED), what="case_routed")
    import eventlet
    eventlet.sleep(1)
    assert len(heard.of_type(ev.CASE_ROUTED)) == 1


def test_media_referral_goes_to_the_store_manager_and_customer_service_with_report_clock(
        heard, routing, routing_config, web_session):
    event = submitted(channel="media", content="记者来电:顾客在店内做项目后皮肤过敏,要求采访")
    dispatch(routing_config, ev.CASE_SUBMITTED, event)
    routed = wait_for(lambda: heard.of_type(ev.CASE_ROUTED), what="case_routed")[0]
    assert routed["severity"] == "critical" and routed["assignee"]["role"] == "store_manager"
    assert routed["rung"] == 2 and [p["staff_id"] for p in routed["informed"]] == ["cs-001"]
    assert routed["policy_id"] == "default-referral"
    assert (routed["deadlines"]["report_due"] - event_time(event)).total_seconds() == pytest.approx(8 * 3600, abs=1)
    early = post(web_session, f"/v1/cases/{event['case_id']}/resolve", {"note": "致歉"})
    assert early.status_code == 409 and early.json()["error"]["code"] == "report_required"
    report = post(web_session, f"/v1/cases/{event['case_id']}/file-report",
                  {"summary": "书面报告:已与顾客及消协沟通,安排皮肤科复诊"})
    assert report.status_code == 200
    assert report.json()["clocks"]["report"]["met_at"] is None  # met when the general manager signs it off


def test_first_response_resolve_with_partial_refund_and_reopen(heard, routing, routing_config, web_session):
    event = submitted()
    case_id = event["case_id"]
    dispatch(routing_config, ev.CASE_SUBMITTED, event)
    wait_for(lambda: heard.of_type(ev.CASE_ROUTED))

    responded = post(web_session, f"/v1/cases/{case_id}/respond",
                     {"note": "已致电致歉,约定明日回复处理方案"})
    assert responded.status_code == 200 and responded.json()["status"] == "investigating"
    not_waiting = post(web_session, f"/v1/cases/{case_id}/resume", {"answer": "?"})
    assert not_waiting.status_code == 409 and not_waiting.json()["error"]["code"] == "invalid_transition"
    assert "request-info" in not_waiting.json()["error"]["allowed_actions"]

    bad_remedy = post(web_session, f"/v1/cases/{case_id}/propose-remedy",
                      {"type": "refund", "refund_option": "partial_continue"})
    assert bad_remedy.status_code == 422
    assert bad_remedy.json()["error"]["fields"] == {"amount_fen": ["refund option B needs a positive amount_fen"]}
    proposed = post(web_session, f"/v1/cases/{case_id}/propose-remedy",
                    {"type": "refund", "refund_option": "partial_continue", "amount_fen": 38_000})
    assert proposed.status_code == 200 and proposed.json()["remedies"][0]["status"] == "approved"

    resolved = post(web_session, f"/v1/cases/{case_id}/resolve", {"note": "部分退款,疗程继续"})
    assert resolved.status_code == 200
    remedy = resolved.json()["remedy"]
    assert (remedy["type"], remedy["refund_option"], remedy["amount_fen"], remedy["continue_treatment"]) == (
        "refund", "partial_continue", 38_000, True)
    event_resolved = wait_for(lambda: heard.of_type(ev.CASE_RESOLVED))[0]
    assert event_resolved["resolution_round"] == 1 and event_resolved["on_time"] is True
    assert event_resolved["amount_fen"] == 38_000
    assert event_resolved["revisit_owner"]["staff_id"] == "sh-xh-rv"

    reopened = post(web_session, f"/v1/cases/{case_id}/reopen", {"reason": "顾客来电仍不满意"})
    assert reopened.status_code == 200 and reopened.json()["status"] == "reopened"
    assert wait_for(lambda: heard.of_type(ev.CASE_REOPENED))[0]["source"] == "staff"


def test_unknown_case_and_bad_bodies(routing, web_session):
    assert web_session.get("/v1/cases/nope").status_code == 404
    missing = post(web_session, "/v1/cases/nope/respond", {"note": "y"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "case_not_found"
    invalid = post(web_session, "/v1/cases/nope/propose-remedy", {"type": "cash"})
    assert invalid.status_code == 422 and "type" in invalid.json()["error"]["fields"]


def test_low_revisit_score_reopens_and_high_score_closes(heard, routing, routing_config, web_session):
    cases = []
    for _ in range(2):
        event = submitted()
        dispatch(routing_config, ev.CASE_SUBMITTED, event)
        cases.append(event["case_id"])
    wait_for(lambda: len(heard.of_type(ev.CASE_ROUTED)) == 2)
    for case_id in cases:
        post(web_session, f"/v1/cases/{case_id}/root-cause", {"cause": "misunderstanding"})
        post(web_session, f"/v1/cases/{case_id}/resolve", {"note": "致歉"})
    for case_id, score in zip(cases, (2, 5)):
        dispatch(routing_config, ev.REVISIT_RECORDED, ev.dump(ev.REVISIT_RECORDED, {
            "revisit_id": uuid.uuid4().hex, "round": 1, "case_id": case_id, "case_number": "CL-20261124-000001",
            "store_id": "SH-XH-001",
            "score": score, "satisfied": score >= 4, "reopens_case": score <= 2,
            "comment": "", "recorded_at": utcnow()}))
    wait_for(lambda: web_session.get(f"/v1/cases/{cases[0]}").json()["status"] == "reopened")
    wait_for(lambda: web_session.get(f"/v1/cases/{cases[1]}").json()["status"] == "closed")


def test_unacknowledged_case_climbs_exactly_once_per_rung_with_two_replicas(
        container_factory, routing_config, heard):
    """Short acknowledgement timeouts, two routing replicas racing on the same timers:
    each rung once, then the first-response breach at the top changes no rung."""
    short = dict(routing_config, LADDER_ACK_STORE_STAFF_SECONDS=1, LADDER_ACK_SUPERVISOR_SECONDS=1,
                 LADDER_ACK_STORE_MANAGER_SECONDS=1, LADDER_ACK_REGIONAL_SECONDS=1,
                 SLA_FIRST_RESPONSE_SECONDS=6, SLA_RESOLUTION_SECONDS=60, SLA_SCAN_INTERVAL_SECONDS=0.5)
    for port in (free_port(), free_port()):
        container_factory(RoutingService, dict(short, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")).start()
    event = submitted()
    dispatch(short, ev.CASE_SUBMITTED, event)
    wait_for(lambda: len(heard.of_type(ev.CASE_ESCALATED)) >= 4, timeout=30, what="four escalations")
    wait_for(lambda: heard.of_type(ev.CASE_DEADLINE_BREACHED), timeout=30, what="the first-response breach")
    import eventlet
    eventlet.sleep(2)  # give any double escalation time to show up
    escalations = heard.of_type(ev.CASE_ESCALATED)
    assert Counter(e["rung"] for e in escalations) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert [e["role"] for e in sorted(escalations, key=lambda e: e["rung"])] == [
        "supervisor", "store_manager", "regional_manager", "general_manager"]
    assert {e["reason"] for e in escalations} == {"unacknowledged"}
    regional = next(e for e in escalations if e["rung"] == 3)
    assert {p["staff_id"] for p in regional["notified"]} == {"rm-east", "cs-001"}
    assert [b["clock"] for b in heard.of_type(ev.CASE_DEADLINE_BREACHED)] == ["first_response"]
