"""followup, notify and reporting, each against real RabbitMQ and the Mongo-protocol
server, fed with the events their upstream services publish."""
import json
import uuid
from datetime import timedelta

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared.clock import CHINA, utcnow
from tests.fixtures import wait_for
from services.followup.service import FollowupService
from services.notify.service import NotifyService
from services.reporting.service import ReportingService

pytestmark = pytest.mark.integration

OWNER = {"staff_id": "sh-xh-rv", "name": "赵敏", "role": "store_staff", "email": "zhao.min@yueyan.example"}
CUSTOMER = {"name": "刘女士", "phone": "+8613812345678", "email": None, "member_id": "M-1"}


def emit(config, event_type, data):
    event_dispatcher(config)(ev.EMITTERS[event_type], event_type, ev.dump(event_type, data))


def resolved(case_id, resolved_at, round_=1):
    return {"case_id": case_id, "case_number": "CL-20261124-000007", "store_id": "SH-XH-001",
            "category": "hygiene", "remedy": {"type": "compensation", "amount_fen": 10_000},
            "note": "赠送护理一次", "resolved_at": resolved_at, "on_time": True,
            "resolution_round": round_, "customer": CUSTOMER, "revisit_owner": OWNER}


def post(session, path, body):
    return session.post(path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


@pytest.fixture
def heard(record_events):
    return record_events(ev.FOLLOWUP_DUE, ev.REVISIT_RECORDED)


@pytest.fixture
def followup(container_factory, service_config, web_config, heard):
    config = dict(service_config, **web_config, REVISIT_DELAY_SECONDS=1, REVISIT_SCAN_INTERVAL_SECONDS=0.2)
    container = container_factory(FollowupService, config)
    container.start()
    return config


def test_revisit_scheduled_announced_once_and_outcome_recorded(followup, heard, web_session):
    case_id = uuid.uuid4().hex
    for _ in range(2):  # a redelivered case_resolved schedules one revisit
        emit(followup, ev.CASE_RESOLVED, resolved(case_id, utcnow()))
    due = wait_for(lambda: heard.of_type(ev.FOLLOWUP_DUE), what="followup_due")
    eventlet.sleep(1)
    assert len(heard.of_type(ev.FOLLOWUP_DUE)) == 1
    assert due[0]["owner"]["staff_id"] == "sh-xh-rv" and due[0]["case_id"] == case_id
    revisits = web_session.get(f"/v1/revisits?case_id={case_id}").json()["revisits"]
    assert len(revisits) == 1 and revisits[0]["status"] == "due"

    bad = post(web_session, f"/v1/revisits/{revisits[0]['revisit_id']}/outcome", {"score": 9})
    assert bad.status_code == 422 and "score" in bad.json()["error"]["fields"]
    ok = post(web_session, f"/v1/revisits/{revisits[0]['revisit_id']}/outcome",
              {"score": 2, "comment": "过敏还没好"})
    assert ok.status_code == 200
    recorded = wait_for(lambda: heard.of_type(ev.REVISIT_RECORDED))[0]
    assert recorded["reopens_case"] is True and recorded["satisfied"] is False
    twice = post(web_session, f"/v1/revisits/{revisits[0]['revisit_id']}/outcome", {"score": 5})
    assert twice.status_code == 409


def test_reopening_cancels_the_unasked_revisit(container_factory, service_config, web_config, web_session):
    config = dict(service_config, **web_config, REVISIT_DELAY_SECONDS=3600)
    container_factory(FollowupService, config).start()
    case_id = uuid.uuid4().hex
    emit(config, ev.CASE_RESOLVED, resolved(case_id, utcnow()))
    wait_for(lambda: web_session.get(f"/v1/revisits?case_id={case_id}").json()["revisits"], what="scheduled")
    emit(config, ev.CASE_REOPENED, {"case_id": case_id, "case_number": "CL-20261124-000007",
                                    "store_id": "SH-XH-001", "reason": "顾客来电", "source": "staff",
                                    "reopened_at": utcnow()})
    revisit = wait_for(lambda: [r for r in web_session.get(f"/v1/revisits?case_id={case_id}").json()["revisits"]
                                if r["status"] == "cancelled"], what="cancelled")[0]
    late = post(web_session, f"/v1/revisits/{revisit['revisit_id']}/outcome", {"score": 1})
    assert late.status_code == 409


def test_invalid_event_payload_is_dead_lettered(followup, amqp_bus):
    event_dispatcher(followup)(ev.ROUTING, ev.CASE_RESOLVED, {"case_id": "x"})
    letter = wait_for(amqp_bus.dead_letters, what="dead letter")[0]
    assert "ValidationError" in letter["headers"]["x-closeloop-reason"]
    assert letter["headers"]["x-closeloop-service"] == "followup"


@pytest.fixture
def notify(container_factory, service_config, web_config):
    config = dict(service_config, **web_config, NOTIFY_RETRY_INTERVAL_SECONDS=0.5)
    container_factory(NotifyService, config).start()
    return config


def submitted_event(case_id, email="wang@example.com", locale="zh-CN"):
    now = utcnow()
    return {"case_id": case_id, "case_number": "CL-20261124-000123", "store_id": "SH-XH-001",
            "store_name": "上海徐汇店", "channel": "web",
            "customer": {"name": "王女士", "phone": "+8613812345678", "email": email},
            "content": "毛巾不干净", "occurred_at": now, "submitted_at": now, "locale": locale}


def test_acknowledgement_sent_once_even_when_event_is_redelivered(notify, smtp_sink, web_session, mongo_client,
                                                                  service_config):
    case_id = uuid.uuid4().hex
    recipient = f"{case_id[:8]}@example.com"
    for _ in range(3):
        emit(notify, ev.CASE_SUBMITTED, submitted_event(case_id, email=recipient))
    mail = wait_for(lambda: smtp_sink.to(recipient), what="acknowledgement e-mail")
    eventlet.sleep(1)
    assert len(smtp_sink.to(recipient)) == 1
    assert "CL-20261124-000123" in mail[0]["Subject"] and "受理" in mail[0]["Subject"]
    assert "尽快与您联系" in mail[0].get_body(("plain",)).get_content()  # no deadline in the event: no promised hours
    deliveries = web_session.get(f"/v1/deliveries?case_id={case_id}").json()["deliveries"]
    assert [(d["kind"], d["status"]) for d in deliveries] == [("acknowledgement", "sent")]


def test_customer_without_a_reachable_channel_is_recorded_abandoned(notify, web_session):
    """Only a phone, and no SMS gateway configured: abandoned (notification_failed tells the store)."""
    case_id = uuid.uuid4().hex
    emit(notify, ev.CASE_SUBMITTED, submitted_event(case_id, email=None))
    def statuses():
        return [d["status"] for d in web_session.get(f"/v1/deliveries?case_id={case_id}").json()["deliveries"]]
    wait_for(lambda: statuses() == ["abandoned"], what="abandoned record")


def test_failed_send_is_retried_from_mongo(container_factory, service_config, web_config, web_session, tmp_path):
    """SMTP down at first: the delivery is kept and sent by the retry timer later."""
    from closeloop_shared.standins import free_port, start_smtp_sink
    from tests.fixtures import SmtpSink
    port = free_port()
    config = dict(service_config, **web_config, NOTIFY_RETRY_INTERVAL_SECONDS=0.5, SMTP_PORT=port)
    container = container_factory(NotifyService, config)
    container.start()
    case_id = uuid.uuid4().hex
    emit(config, ev.CASE_SUBMITTED, submitted_event(case_id, email=f"{case_id[:8]}@example.com"))
    wait_for(lambda: [d["status"] for d in web_session.get(f"/v1/deliveries?case_id={case_id}").json()[
        "deliveries"]] == ["failed"], what="failed delivery")
    relay = start_smtp_sink(port, tmp_path / "Maildir", open(tmp_path / "smtp.log", "ab"))  # the relay comes back
    try:
        wait_for(lambda: SmtpSink(port, tmp_path / "Maildir").to(f"{case_id[:8]}@example.com"), timeout=20,
                 what="retried e-mail")
    finally:
        relay.terminate()
        relay.wait(10)


@pytest.fixture
def reporting(container_factory, service_config, web_config):
    config = dict(service_config, **web_config)
    container_factory(ReportingService, config).start()
    return config


def test_report_counts_categories_on_time_rates_and_satisfaction(reporting, web_session):
    now = utcnow()
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    for case_id, category in ((a, "hygiene"), (b, "price")):
        emit(reporting, ev.CASE_SUBMITTED, dict(submitted_event(case_id), submitted_at=now - timedelta(hours=30)))
        emit(reporting, ev.CASE_ROUTED, {
            "case_id": case_id, "case_number": "CL-1", "store_id": "SH-XH-001", "category": category,
            "severity": "low", "assignee": OWNER, "rung": 0, "routed_at": now - timedelta(hours=30),
            "deadlines": {"first_response_due": now - timedelta(hours=6), "resolution_due": now + timedelta(hours=18)}})
    # a answered in time and resolved; b never answered: routing announced its breach (overdue);
    # events arrive out of order
    emit(reporting, ev.CASE_DEADLINE_BREACHED, {
        "case_id": b, "case_number": "CL-1", "store_id": "SH-XH-001", "severity": "low", "category": "price",
        "clock": "first_response", "basis": "wall", "policy_id": "p", "policy_version": 1,
        "due_at": now - timedelta(hours=6), "breached_at": now - timedelta(hours=6), "rung": 1, "assignee": OWNER})
    emit(reporting, ev.CASE_RESOLVED, resolved(a, now - timedelta(hours=1)))
    emit(reporting, ev.CASE_FIRST_RESPONDED, {"case_id": a, "case_number": "CL-1", "store_id": "SH-XH-001",
                                              "responded_at": now - timedelta(hours=29), "on_time": True,
                                              "seconds_to_respond": 3600})
    emit(reporting, ev.REVISIT_RECORDED, {"revisit_id": "r1", "round": 1, "case_id": a, "case_number": "CL-1",
                                          "store_id": "SH-XH-001",
                                          "score": 5, "satisfied": True, "reopens_case": False,
                                          "recorded_at": now})

    def summary():
        body = web_session.get("/v1/reports/summary", params={"store": "SH-XH-001"}).json()
        # events reach reporting on separate queues: wait until all have arrived
        return body if body["satisfaction"]["revisits"] == 1 and \
            body["by_status"] == {"resolved": 1, "assigned": 1} and body["first_response"]["on_time"] == 1 and \
            body["first_response"]["counted"] == 2 else None
    body = wait_for(summary, what="summary")
    assert body["by_category"] == {"hygiene": 1, "price": 1}
    assert body["first_response"] == {"counted": 2, "on_time": 1, "late_or_overdue": 1, "rate": 0.5}
    assert body["cases"] == 2 and body["satisfaction"]["rate"] == 1.0
    metrics = web_session.get("/metrics").text
    assert 'closeloop_open_cases{severity="low"} 1.0' in metrics
    bad = web_session.get("/v1/reports/summary", params={"from": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["fields"] == {"from": ["Not a valid date or datetime."]}

    # the KPIs by category, from the same buckets: b's breached unanswered clock counts overdue
    kpis = web_session.get("/v1/reports/kpis", params={"store": "SH-XH-001", "by": "category"}).json()
    assert set(kpis["groups"]) == {"hygiene", "price"}
    assert kpis["groups"]["hygiene"]["on_time"]["first_response"]["on_time"] == 1
    assert kpis["groups"]["price"]["on_time"]["first_response"]["overdue"] == 1
    assert kpis["groups"]["hygiene"]["satisfaction"]["satisfied"] == 1
    csv_lines = web_session.get("/v1/reports/kpis", params={"store": "SH-XH-001", "format": "csv"}).text.splitlines()
    assert csv_lines[0].startswith("group,cases,resolved,") and csv_lines[1].startswith("all,2,1,")
    bad_group = web_session.get("/v1/reports/kpis", params={"by": "customer"})
    assert bad_group.status_code == 422 and "by" in bad_group.json()["error"]["fields"]
    assert 'closeloop_cases_at_risk{clock="resolution",severity="low"} 0.0' in metrics
    assert 'closeloop_clock_outcomes_7d{clock="report",outcome="overdue"} 0.0' in metrics
    assert 'closeloop_clock_outcomes_7d{clock="first_response",outcome="on_time"} 1.0' in metrics
    submitted_day = (now - timedelta(hours=30)).astimezone(CHINA).date().isoformat()
    weekly = web_session.get("/v1/reports/weekly", params={"store": "SH-XH-001", "week": submitted_day}).json()
    assert set(weekly["categories"]) == {"hygiene", "price"} and weekly["week_over_week"]["cases"]["now"] == 2


def test_liveness_and_readiness(reporting, web_session):
    assert web_session.get("/health/live").json()["status"] == "ok"
    ready = web_session.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {}


def test_a_flood_of_submissions_naming_one_address_is_capped(notify, smtp_sink, mongo_client):
    """The 11th acknowledgement of a day to one address is logged as suppressed, not sent."""
    from closeloop_shared.mongo import database_name
    address = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    cases = [uuid.uuid4().hex for _ in range(12)]
    for case_id in cases:
        emit(notify, ev.CASE_SUBMITTED, submitted_event(case_id, email=address))
    deliveries = mongo_client[database_name(notify, "notify")]["deliveries"]
    wait_for(lambda: deliveries.count_documents({"case_id": {"$in": cases}, "status": {"$in": ["sent", "suppressed"]}}) == 12,
             what="12 deliveries settled")
    assert deliveries.count_documents({"case_id": {"$in": cases}, "status": "suppressed"}) == 2
    assert len(wait_for(lambda: len(smtp_sink.to(address)) == 10 and smtp_sink.to(address))) == 10
