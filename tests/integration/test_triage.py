"""Triage against real RabbitMQ and the MongoDB-protocol server: a case submitted
without a category arrives classified with confidence and explanation; an unsure one
waits in the supervisor's triage queue; a staff correction is recorded (timeline,
corrections store), exported into the corpus and announced (case_reclassified), and
reporting shows how often each category was corrected, per model version."""
import json
import uuid
from datetime import timedelta

import pytest

from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import database_name
from services.routing import ladder
from services.routing.repository import CorrectionRepository
from services.routing.triage import training
from tests.fixtures import wait_for
from tests.integration.test_routing import dispatch, submitted

pytestmark = pytest.mark.integration


@pytest.fixture
def routing_config(service_config, web_config):
    return dict(service_config, **web_config, OUTBOX_RELAY_INTERVAL_SECONDS=1)


@pytest.fixture
def heard(record_events):
    return record_events(ev.CASE_ROUTED, ev.CASE_RECLASSIFIED)


@pytest.fixture
def routing(container_factory, routing_config, heard):
    from services.routing.service import RoutingService
    container = container_factory(RoutingService, routing_config)
    container.start()
    return container


def routed_case(web_session, heard, routing_config, **kwargs):
    event = submitted(**kwargs)
    dispatch(routing_config, ev.CASE_SUBMITTED, event)
    wait_for(lambda: [e for e in heard.of_type(ev.CASE_ROUTED) if e["case_id"] == event["case_id"]],
             what="case_routed")
    return web_session.get(f"/v1/cases/{event['case_id']}").json()


def test_a_case_without_category_arrives_classified_with_confidence_and_explanation(
        routing, routing_config, heard, web_session):
    case = routed_case(web_session, heard, routing_config, channel="wechat",
                       content="会员卡余额被莫名扣了两次钱，我这个月就做了一次护理，消费记录对不上")
    assert case["category"] == "price" and case["triage"] is None
    explained = case["classification"]
    assert explained["source"] == "model" and explained["confidence"] >= 0.5
    assert explained["runner_up"] and explained["runner_up"] != "price"
    assert explained["features"] and explained["model_version"].startswith("triage-")
    routed_entry = case["timeline"][1]
    assert routed_entry["action"] == "routed" and routed_entry["confidence"] == explained["confidence"]
    assert routed_entry["model_version"] == explained["model_version"] and routed_entry["features"]
    event = [e for e in heard.of_type(ev.CASE_ROUTED) if e["case_id"] == case["case_id"]][0]
    assert event["model_version"] == explained["model_version"] and event["triage"] is False


def test_an_injury_is_high_whatever_the_category(routing, routing_config, heard, web_session):
    case = routed_case(web_session, heard, routing_config, channel="hotline",
                       content="做红外线理疗的时候灯头突然变得特别烫，把我腰上烫红了一块，起了水泡")
    assert case["severity"] in ("high", "critical") and "harm" in case["severity_assessment"]["reasons"]
    assert case["rung"] >= ladder.start_level(case["severity"]) >= ladder.SUPERVISOR  # never store staff


def test_an_explicit_category_still_wins(routing, routing_config, heard, web_session):
    case = routed_case(web_session, heard, routing_config, category="booking",
                       content="会员卡余额被莫名扣了两次钱")
    assert case["category"] == "booking" and case["classification"]["source"] == "submitter"
    assert case["triage"] is None


def test_an_unsure_case_waits_for_the_supervisor_and_a_correction_is_recorded_and_exported(
        routing, routing_config, heard, web_session, token_keys, mongo_client, tmp_path):
    case = routed_case(web_session, heard, routing_config, channel="survey", content="一般般")
    assert case["triage"]["status"] == "pending"
    assert case["assignee"]["staff_id"] == "sh-xh-sv" and case["rung"] == 1  # ladder[1]
    suggestions = case["triage"]["suggestions"]
    assert len(suggestions) == 2 and suggestions[0]["category"] == case["category"]
    assert "triage_queued" in [entry["action"] for entry in case["timeline"]]

    supervisor = token_keys.headers("sh-xh-sv")
    queue = web_session.get("/v1/cases", params={"triage": "pending"}, headers=supervisor).json()["cases"]
    assert case["case_id"] in [c["case_id"] for c in queue]
    assert web_session.get("/v1/cases", params={"triage": "maybe"}).status_code == 422

    staff = token_keys.headers("sh-xh-s1")
    refused = post_as(web_session, f"/v1/cases/{case['case_id']}/category",
                      {"category": "service_quality", "reason": "x"}, staff)
    assert refused.status_code == 403
    forged = post_as(web_session, f"/v1/cases/{case['case_id']}/category",
                     {"category": "service_quality", "reason": "x", "actor": "gm-001"}, supervisor)
    assert forged.status_code == 422

    corrected = post_as(web_session, f"/v1/cases/{case['case_id']}/category",
                        {"category": "service_quality", "reason": "顾客对整体服务不满意"}, supervisor)
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert body["category"] == "service_quality" and body["triage"]["status"] == "resolved"
    assert body["triage"]["resolved_by"] == "sh-xh-sv"
    last = body["timeline"][-1]
    assert (last["action"], last["actor"], last["reason"]) == ("reclassified", "sh-xh-sv", "顾客对整体服务不满意")
    assert last["model_category"] == case["category"] and last["model_version"]
    queue = web_session.get("/v1/cases", params={"triage": "pending"}, headers=supervisor).json()["cases"]
    assert case["case_id"] not in [c["case_id"] for c in queue]
    [told] = wait_for(lambda: [e for e in heard.of_type(ev.CASE_RECLASSIFIED) if e["case_id"] == case["case_id"]],
                      what="case_reclassified")
    assert (told["previous_category"], told["category"], told["by_role"]) == (
        case["category"], "service_quality", "supervisor")
    assert told["model_version"] == case["classification"]["model_version"]
    assert "sh-xh-sv" not in str(told) and "一般般" not in str(told)  # no one's id, no text

    store = CorrectionRepository(mongo_client[database_name(routing_config, "routing")])
    recorded = store.all()
    assert [(c["case_id"], c["category"], c["by"]) for c in recorded] == [
        (case["case_id"], "service_quality", "sh-xh-sv")]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("", encoding="utf-8")
    assert training.add_corrections(corpus, recorded) == 1
    exported = json.loads(corpus.read_text(encoding="utf-8"))
    assert (exported["text"], exported["category"], exported["split"]) == (
        "一般般", "service_quality", "train")


def post_as(session, path, body, headers):
    return session.post(path, data=json.dumps(body, ensure_ascii=False).encode(),
                        headers={"Content-Type": "application/json", **headers})


@pytest.fixture
def reporting(container_factory, service_config, web_config):
    from services.reporting.service import ReportingService
    config = dict(service_config, **web_config)
    container_factory(ReportingService, config).start()
    return config


def test_reports_show_how_often_each_category_was_corrected_per_model_version_within_scope(
        reporting, web_session, token_keys):
    emit = event_dispatcher(reporting)
    now, version = utcnow(), f"triage-{uuid.uuid4().hex[:12]}"
    base = {"case_number": "CL-1", "store_id": "SH-XH-001"}
    staff = {"staff_id": "sh-xh-sv", "name": "李娜", "role": "supervisor", "email": None}
    cases = [uuid.uuid4().hex for _ in range(3)]
    for case_id in cases:
        emit(ev.INTAKE, ev.CASE_SUBMITTED, ev.dump(ev.CASE_SUBMITTED, dict(
            base, case_id=case_id, store_name="店", channel="wechat", customer={"name": "刘女士"},
            content="改约后还是发原来时间的提醒", occurred_at=now, submitted_at=now - timedelta(hours=1))))
        emit(ev.ROUTING, ev.CASE_ROUTED, ev.dump(ev.CASE_ROUTED, dict(
            base, case_id=case_id, category="equipment", severity="low", assignee=staff, rung=1,
            deadlines={"first_response_due": now + timedelta(hours=23)}, routed_at=now - timedelta(hours=1),
            classified_by="model", model_version=version, confidence=0.38)))
    correction = ev.dump(ev.CASE_RECLASSIFIED, dict(
        base, event_id=uuid.uuid4().hex, correction_id=f"{cases[0]}:2", case_id=cases[0],
        previous_category="equipment", category="booking", model_category="equipment", model_version=version,
        by_role="supervisor", reclassified_at=now))
    for _ in range(2):  # redelivered: counted once
        emit(ev.ROUTING, ev.CASE_RECLASSIFIED, correction)

    def corrections(headers):
        body = web_session.get("/v1/reports/summary", params={"store": "SH-XH-001"}, headers=headers)
        return [v for v in body.json()["corrections"] if v["model_version"] == version]

    manager = token_keys.headers("sh-xh-mg")
    [report] = wait_for(lambda: [v for v in corrections(manager) if v["classified"] == 3 and v["corrected"]],
                        what="the corrections report")
    assert report["corrected"] == 1 and report["rate"] == 0.3333
    assert report["by_category"] == {"equipment": {"classified": 3, "corrected": 1, "rate": 0.3333,
                                                   "corrected_to": {"booking": 1}}}
    # another store's manager sees none of it
    other = web_session.get("/v1/reports/summary", params={"store": "SH-XH-001"},
                            headers=token_keys.headers("hz-xh-mg"))
    assert other.status_code == 404
    mine = web_session.get("/v1/reports/summary", headers=token_keys.headers("hz-xh-mg")).json()
    assert not [v for v in mine["corrections"] if v["model_version"] == version]
