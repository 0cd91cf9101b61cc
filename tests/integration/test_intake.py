"""intake against real RabbitMQ and the MongoDB-protocol server."""
import json
from datetime import timedelta

import eventlet
import pytest

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import database_name
from nameko.standalone.events import event_dispatcher
from tests.fixtures import ROOT, wait_for
from closeloop_shared.auth import IntegrationStore
from services.intake import cases
from services.routing import integrations
from services.intake.schemas import FeedbackIn
from services.intake.service import IntakeService

pytestmark = pytest.mark.integration


@pytest.fixture
def submitted_events(record_events):
    return record_events(ev.CASE_SUBMITTED)


@pytest.fixture
def intake(container_factory, service_config, web_config, submitted_events):
    config = dict(service_config, **web_config, OUTBOX_RELAY_INTERVAL_SECONDS=1)
    container = container_factory(IntakeService, config)
    container.start()
    return container


@pytest.fixture
def db(intake, mongo_client, service_config):
    return mongo_client[database_name(service_config, "intake")]


def post(web_session, body, **kwargs):
    return web_session.post("/v1/feedback", data=json.dumps(body, ensure_ascii=False).encode(),
                            headers={"Content-Type": "application/json"}, **kwargs)


def test_http_submission_creates_case_and_publishes_case_submitted(
        submitted_events, intake, web_session, feedback, db):
    response = post(web_session, feedback())
    assert response.status_code == 201
    receipt = response.json()
    assert receipt["case_number"].startswith("CL-")
    event = wait_for(lambda: submitted_events.of_type(ev.CASE_SUBMITTED), what="case_submitted")[0]
    assert event["case_id"] == receipt["case_id"]
    assert event["customer"]["phone"] == "+8613812345678"
    assert event["store_name"] == "上海徐汇店"
    stored = db["cases"].find_one({"_id": receipt["case_id"]})
    assert stored["outbox"] == [] and stored["outbox_pending"] is False


def test_case_numbers_are_unique_and_sequential(intake, web_session, feedback):
    numbers = [post(web_session, feedback()).json()["case_number"] for _ in range(3)]
    assert len(set(numbers)) == 3
    assert [int(n.rsplit("-", 1)[1]) for n in numbers] == sorted(int(n.rsplit("-", 1)[1]) for n in numbers)


def register_integration(db, bus_user="guest", brand_id="yueyan", **spec):
    """An integration as intake keeps it (what integration_changed carries), with one
    API key; returns the key as the integration presents it."""
    now = utcnow()
    organisation = org.load(ROOT / "deploy/seeds/org.yaml")
    client = integrations.new_client(organisation, spec.get("client_id", "pos-1"), "POS", brand_id,
                                     spec.get("store_ids", []), ["feedback:submit", "feedback:read"],
                                     bus_user, now)
    keys, key = integrations.issue_key(client, now)
    IntegrationStore(db).apply(integrations.changed_event(dict(client, keys=keys)))
    return key.presented


def test_same_external_reference_twice_by_http_and_bus_concurrently_yields_one_case(
        submitted_events, intake, web_session, feedback, amqp_bus, db):
    """One client (an integration using both its API key and its bus user) sending the
    same reference over and over, concurrently, makes one case."""
    web_session.headers["Authorization"] = f"Bearer {register_integration(db)}"
    body = feedback(external_ref={"source": "wechat", "id": "msg-778"})
    pool = eventlet.GreenPool()
    for _ in range(3):
        amqp_bus.publish_feedback(body)
    results = list(pool.imap(lambda _: post(web_session, body), range(4)))
    assert sorted(r.status_code for r in results).count(201) <= 1
    assert len({r.json()["case_id"] for r in results}) == 1
    wait_for(lambda: db["cases"].count_documents({}) == 1 and
             not list(db["cases"].find({"outbox_pending": True})), what="settled")
    eventlet.sleep(0.5)
    assert db["cases"].count_documents({"external_ref.id": "msg-778"}) == 1
    assert len(submitted_events.of_type(ev.CASE_SUBMITTED)) == 1


def test_a_deactivated_integrations_bus_user_is_refused_as_soon_as_intake_hears_of_it(
        container_factory, service_config, web_config, amqp_bus, mongo_client):
    """Intake keeps which integration publishes as which AMQP user for a few seconds
    (REFERENCE_CACHE_SECONDS); integration_changed makes the replica that hears it forget."""
    config = dict(service_config, **web_config, INBOUND_TRUSTED_PUBLISHERS="nobody", REFERENCE_CACHE_SECONDS=3600)
    container = container_factory(IntakeService, config)
    container.start()
    db = mongo_client[database_name(service_config, "intake")]
    register_integration(db, bus_user="guest")
    amqp_bus.publish_feedback(feedback_body("active"))
    wait_for(lambda: db["cases"].find_one({"external_ref.id": "active"}), what="the integration's case")

    client = db["integrations"].find_one({"bus_user": "guest"})
    deactivated = integrations.changed_event(dict(client, client_id=client["_id"], active=False,
                                                  version=client["version"] + 1))
    event_dispatcher(config)(ev.ROUTING, ev.INTEGRATION_CHANGED, ev.dump(ev.INTEGRATION_CHANGED, deactivated))
    wait_for(lambda: not db["integrations"].find_one({"bus_user": "guest"})["active"], what="the copy updated")
    amqp_bus.publish_feedback(feedback_body("after"))
    letters = wait_for(amqp_bus.dead_letters, what="the refused message")
    assert "unknown publisher" in letters[0]["headers"]["x-closeloop-reason"]
    assert db["cases"].find_one({"external_ref.id": "after"}) is None


def feedback_body(ref):
    return {"store_id": "SH-XH-001", "channel": "wechat", "customer": {"name": "刘女士", "phone": "13812345678"},
            "content": "美容师态度不好", "occurred_at": "2026-11-23T10:00:00+08:00",
            "external_ref": {"source": "pos", "id": ref}}


def test_bus_submission_creates_case(submitted_events, intake, feedback, amqp_bus, db):
    amqp_bus.publish_feedback(feedback(channel="wechat", external_ref={"source": "wx", "id": "9"}))
    wait_for(lambda: db["cases"].find_one({"external_ref.source": "wx"}), what="bus case")
    assert wait_for(lambda: submitted_events.of_type(ev.CASE_SUBMITTED))[0]["channel"] == "wechat"


@pytest.mark.parametrize("raw, content_type, reason", [
    (b"{not json", "application/json", "undecodable"),
    (json.dumps({"store_id": "SH-XH-001", "channel": "fax"}).encode(), "application/json", "ValidationError"),
    (json.dumps({"store_id": "NOWHERE", "channel": "hotline", "customer": {"name": "a", "phone": "13812345678"},
                 "content": "x", "occurred_at": "2026-11-23T10:00:00+08:00"}).encode(),
     "application/json", "unknown store"),
])
def test_malformed_bus_message_is_dead_lettered_with_reason(intake, amqp_bus, raw, content_type, reason, db):
    amqp_bus.publish_feedback(raw, content_type=content_type)
    letters = wait_for(amqp_bus.dead_letters, what="dead letter")
    assert letters[0]["body"] == raw
    assert reason in letters[0]["headers"]["x-closeloop-reason"]
    assert letters[0]["headers"]["x-closeloop-service"] == "intake"
    assert db["cases"].count_documents({}) == 0


def test_bad_http_input_gets_machine_readable_errors_and_keeps_earlier_cases(
        intake, web_session, feedback, db):
    accepted = post(web_session, feedback()).json()

    malformed = web_session.post("/v1/feedback", data=b'{"store_id": ',
                                 headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"

    wrong_types = post(web_session, feedback(customer={"name": 5, "phone": 13812345678}, occurred_at=7))
    assert wrong_types.status_code == 422
    error = wrong_types.json()["error"]
    assert error["code"] == "validation_failed"
    assert {"customer.name", "customer.phone", "occurred_at"} <= set(error["fields"])

    unknown_store = post(web_session, feedback(store_id="BJ-999"))
    assert unknown_store.status_code == 422
    assert unknown_store.json()["error"] == {
        "code": "unknown_store", "message": "unknown store 'BJ-999'",
        "fields": {"store_id": ["unknown store 'BJ-999'"]}}

    oversize = post(web_session, feedback(content="很" * 70000))
    assert oversize.status_code == 413 and oversize.json()["error"]["code"] == "payload_too_large"

    not_json = web_session.post("/v1/feedback", data="hello", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415

    assert db["cases"].count_documents({}) == 1
    assert web_session.get(f"/v1/feedback/{accepted['case_id']}").json()["case_number"] == accepted["case_number"]


def test_outbox_relay_publishes_cases_whose_event_was_lost(submitted_events, intake, db, feedback):
    """A crash between storing a case and publishing it must not lose the case."""
    store = org.load(ROOT / "deploy/seeds/org.yaml").store("SH-XH-001")
    submission = FeedbackIn().load(feedback())
    stale = utcnow() - timedelta(minutes=1)
    case = cases.new_case(submission, store, "CL-20261124-999999", stale, "http", None,
                          cases.submitter(bus_publisher="guest"))
    db["cases"].insert_one(case)  # stored, never published

    wait_for(lambda: any(e["case_id"] == case["_id"] for e in submitted_events.of_type(ev.CASE_SUBMITTED)),
             timeout=30, what="relayed event")
    wait_for(lambda: db["cases"].find_one({"_id": case["_id"]})["outbox_pending"] is False,
             what="outbox cleared")


def test_events_published_before_a_consumer_first_starts_wait_for_it(
        container_factory, service_config, web_config, web_session, feedback):
    """Compose starts all services at once: intake's first cases must still reach a
    routing that starts after them (every service declares every queue)."""
    from closeloop_shared.standins import free_port
    from services.routing.service import RoutingService
    container_factory(IntakeService, dict(service_config, **web_config)).start()
    receipt = post(web_session, feedback()).json()
    routing_port = free_port()
    container_factory(RoutingService, dict(service_config, WEB_SERVER_ADDRESS=f"127.0.0.1:{routing_port}")).start()
    import requests
    wait_for(lambda: requests.get(f"http://127.0.0.1:{routing_port}/v1/cases/{receipt['case_id']}",
                                  headers=web_session.headers).status_code == 200,
             what="routed after a late start")


def test_dead_letters_can_be_listed_and_replayed_once_the_cause_is_fixed(
        intake, amqp_bus, db, feedback, capsys, container_factory, service_config, tmp_path):
    """Feedback for a store missing from the organisation is dead-lettered; the operator
    adds and opens the store (routing announces org_changed) and replays: the feedback
    becomes a case."""
    from nameko.standalone.events import event_dispatcher

    from deploy import dead_letters
    from services.routing import organisation as admin
    amqp_bus.publish_feedback(feedback(store_id="SZ-NS-009", external_ref={"source": "pos", "id": "77"}))
    wait_for(lambda: dead_letters.show(amqp_bus.amqp_uri) == 1, what="dead letter")
    assert "unknown store 'SZ-NS-009'" in capsys.readouterr().out

    chart = admin.add_store(org.load(ROOT / "deploy/seeds/org.yaml"), "SZ-NS-009", "深圳南山店",
                            "south", "Asia/Shanghai")
    chart = admin.add_staff(chart, "sz-ns-mg", "林店长", "store_manager", "SZ-NS-009", None)
    chart = admin.update_store(chart, "SZ-NS-009", {"status": "open"}).with_version(1)
    event_dispatcher(service_config)(ev.ROUTING, ev.ORG_CHANGED, ev.dump(ev.ORG_CHANGED, chart.to_snapshot()))
    wait_for(lambda: db["org"].find_one({"version": 1}), what="organisation copy updated")

    assert dead_letters.replay(amqp_bus.amqp_uri) == 1
    case = wait_for(lambda: db["cases"].find_one({"external_ref.id": "77"}), what="replayed case")
    assert case["store_name"] == "深圳南山店"
    assert dead_letters.show(amqp_bus.amqp_uri) == 0
