"""The tiered revisit programme against real RabbitMQ and the MongoDB-protocol server:
import with a report of rejected rows, a revisit falling due on its owner's list, an
unreachable customer retried then marked, a complaint voiced during a revisit made a case
by intake, consent withdrawn stopping everything, visits from other systems on
closeloop.inbound (bad ones dead-lettered), and two replicas taking due work."""
from datetime import timedelta

import pytest
from nameko.standalone.events import event_dispatcher

from closeloop_shared import bus
from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import connect, database_name
from services.followup.service import FollowupService
from services.intake.service import IntakeService
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration

OWNER = "sh-xh-rv"  # SH-XH-001's revisit owner (deploy/seeds/org.yaml)
CUSTOMERS = [
    {"member_id": "M-100", "name": "刘女士", "phone": "138 1234 5678", "home_store_id": "SH-XH-001",
     "contact_hours": "10-20", "special_needs": ["postpartum"], "consent": True},
    {"member_id": "M-101", "name": "王女士", "phone": "12345", "home_store_id": "SH-XH-001", "consent": True},
    {"member_id": "M-102", "name": "陈女士", "phone": "13900001111", "home_store_id": "HZ-XH-001", "consent": True},
]


@pytest.fixture
def heard(record_events):
    return record_events(ev.REVISIT_TASK_COMPLETED, ev.CASE_SUBMITTED)


@pytest.fixture
def followup(container_factory, service_config, web_config, heard):
    config = dict(service_config, **web_config, FOLLOWUP_MAX_ATTEMPTS=2, OUTBOX_RELAY_INTERVAL_SECONDS=1)
    container_factory(FollowupService, config).start()
    return config


@pytest.fixture
def owner(web_session, token_keys):
    """Calls as the revisit owner, store staff of SH-XH-001."""
    def call(method, path, body=None):
        return web_session.request(method, path, json=body, headers=token_keys.headers(OWNER))
    return call


def tasks_collection(config):
    client = connect(config["MONGO_URI"])
    return client[database_name(config, "followup")]["revisit_tasks"]


def imported(web_session):
    answer = web_session.post("/v1/customers/import", json={"customers": CUSTOMERS})
    assert answer.status_code == 200, answer.text
    return answer.json()


def bring_due(web_session, task_id):
    soon = (utcnow() + timedelta(seconds=1)).isoformat()
    assert web_session.post(f"/v1/revisit-tasks/{task_id}/reschedule", json={"due_at": soon}).status_code == 200


def open_task(config, member_id):
    return wait_for(lambda: tasks_collection(config).find_one(
        {"member_id": member_id, "status": {"$in": ["scheduled", "due"]}}), what="an open task")


def test_import_reports_rejected_rows_and_plans_a_monthly_revisit_for_a_special_customer(followup, web_session):
    report = imported(web_session)  # as the manager of SH-XH-001: HZ-XH-001 is not theirs
    assert report["accepted"] == 1
    assert {r["row"]: sorted(r["fields"]) for r in report["rejected"]} == {2: ["phone"], 3: ["home_store_id"]}
    task = open_task(followup, "M-100")
    assert task["tier"] == "special" and task["owner_id"] == OWNER and task["purpose"] == "care"
    assert timedelta(days=27) < task["due_at"] - utcnow() < timedelta(days=32)
    profile = web_session.get("/v1/customers/M-100").json()
    assert profile["phone"] == "+8613812345678" and profile["special_needs"] == ["postpartum"]

    csv_body = "member_id,name,phone,home_store_id,consent\nM-103,赵女士,13700002222,SH-XH-001,yes\n"
    csv_answer = web_session.post("/v1/customers/import", data=csv_body.encode(),
                                  headers={"Content-Type": "text/csv"})
    assert csv_answer.json() == {"accepted": 1, "rejected": []}


def test_health_data_hidden_from_the_regional_manager_and_a_tier_override_audited(
        followup, web_session, token_keys):
    imported(web_session)
    as_rm = web_session.get("/v1/customers/M-100", headers=token_keys.headers("rm-east")).json()
    assert "special_needs" not in as_rm and as_rm["has_special_needs"] is True
    assert as_rm["phone"] == "138****5678"
    refused = web_session.post("/v1/customers/M-100/tier", json={"tier": "vip", "reason": "x"})
    assert refused.status_code == 422 and "tier" in refused.json()["error"]["fields"]
    answer = web_session.post("/v1/customers/M-100/tier", json={"tier": "key", "reason": "转介绍多位顾客"})
    assert answer.status_code == 200 and answer.json()["tier"] == "key"
    assert answer.json()["tier_audit"][0]["from"] == "special" and answer.json()["tier_audit"][0]["by"] == "sh-xh-mg"
    csv_body = "member_id,name,phone,home_store_id,consent\nM-103,赵女士,13700002222,SH-XH-001,yes\n"
    web_session.post("/v1/customers/import", data=csv_body.encode(), headers={"Content-Type": "text/csv"})
    half_year = open_task(followup, "M-103")  # potential: in six months
    assert web_session.post("/v1/customers/M-103/tier", json={"tier": "key", "reason": "新办年卡"}).status_code == 200
    monthly = tasks_collection(followup).find_one({"_id": half_year["_id"]})
    assert half_year["due_at"] - monthly["due_at"] > timedelta(days=120) and monthly["tier"] == "key"


def test_an_unreachable_customer_is_retried_then_marked_and_the_next_revisit_planned(
        followup, web_session, owner, heard):
    imported(web_session)
    task_id = open_task(followup, "M-100")["_id"]
    bring_due(web_session, task_id)
    due = wait_for(lambda: owner("GET", "/v1/revisit-tasks/due-today").json()["tasks"], what="due today")
    assert [t["task_id"] for t in due] == [task_id] and "刘女士" in due[0]["script_text"]

    first = owner("POST", f"/v1/revisit-tasks/{task_id}/attempts", {"reached": False, "note": "无人接听"})
    assert first.status_code == 200 and first.json()["status"] == "scheduled"
    retry_at = tasks_collection(followup).find_one({"_id": task_id})["due_at"]
    assert timedelta(hours=4) < retry_at - utcnow() < timedelta(hours=48)
    again = owner("POST", f"/v1/revisit-tasks/{task_id}/attempts", {"reached": False})
    assert again.status_code == 409  # not due until its retry time
    bring_due(web_session, task_id)
    wait_for(lambda: owner("GET", "/v1/revisit-tasks/due-today").json()["tasks"], what="due again")
    last = owner("POST", f"/v1/revisit-tasks/{task_id}/attempts", {"reached": False, "note": "关机"})
    assert last.json()["status"] == "unreachable" and len(last.json()["attempts"]) == 2
    completed = wait_for(lambda: heard.of_type(ev.REVISIT_TASK_COMPLETED), what="revisit_task_completed")
    assert completed[0]["status"] == "unreachable" and completed[0]["owner_id"] == OWNER
    rates = web_session.get("/v1/revisit-tasks/completion").json()["completion"]
    assert rates == [{"store_id": "SH-XH-001", "owner_id": OWNER, "due": 1, "completed": 0,
                      "unreachable": 1, "rate": 0.0}]
    assert open_task(followup, "M-100")["_id"] != task_id  # the next cadence revisit


def test_a_complaint_during_a_revisit_becomes_a_case_linked_to_the_revisit(
        container_factory, followup, web_session, owner, heard):
    container_factory(IntakeService, dict(followup, WEB_SERVER_ADDRESS="127.0.0.1:0")).start()
    imported(web_session)
    task_id = open_task(followup, "M-100")["_id"]
    bring_due(web_session, task_id)
    wait_for(lambda: owner("GET", "/v1/revisit-tasks/due-today").json()["tasks"], what="due today")
    answer = owner("POST", f"/v1/revisit-tasks/{task_id}/attempts", {
        "reached": True, "score": 2, "note": "对上次护理不满意", "complaint": "上次做完脸过敏,店里没人回访"})
    assert answer.status_code == 200 and answer.json()["outcome"]["score"] == 2
    [case] = wait_for(lambda: heard.of_type(ev.CASE_SUBMITTED), what="a case from intake")
    assert case["external_ref"] == {"source": "revisit", "id": task_id} and case["channel"] == "survey"
    assert case["submitted_by"] == {"kind": "staff", "client_id": None, "staff_id": OWNER}
    assert case["customer"]["phone"] == "+8613812345678" and case["store_id"] == "SH-XH-001"
    assert wait_for(lambda: heard.of_type(ev.REVISIT_TASK_COMPLETED))[0]["complaint"] is True


def case_resolved(config, case_id):
    """routing's case_resolved for a case of M-100 (resolved by the store manager)."""
    event_dispatcher(config)(ev.ROUTING, ev.CASE_RESOLVED, ev.dump(ev.CASE_RESOLVED, {
        "case_id": case_id, "case_number": "CL-20270310-000001", "store_id": "SH-XH-001", "category": "hygiene",
        "remedy": {"type": "apology"}, "resolved_at": utcnow(), "on_time": True, "resolution_round": 1,
        "customer": {"name": "刘女士", "phone": "+8613812345678", "member_id": "M-100"},
        "revisit_owner": {"staff_id": OWNER, "name": "赵敏", "role": "store_staff"}, "resolved_by": "sh-xh-mg"}))


def test_consent_withdrawn_stops_every_revisit_at_once(followup, web_session, owner):
    imported(web_session)
    task_id = open_task(followup, "M-100")["_id"]
    case_resolved(followup, "case-1")  # its satisfaction revisit waits three days
    revisit = lambda case_id: wait_for(lambda: web_session.get(  # noqa: E731
        f"/v1/revisits?case_id={case_id}").json()["revisits"], what="a revisit")[0]
    assert revisit("case-1")["status"] == "scheduled"
    answer = web_session.post("/v1/customers/M-100/withdraw-consent")
    assert answer.status_code == 200 and answer.json()["cancelled_revisits"] == 2
    assert tasks_collection(followup).find_one({"_id": task_id})["status"] == "cancelled"
    assert revisit("case-1")["status"] == "cancelled"
    assert web_session.post(f"/v1/revisit-tasks/{task_id}/reschedule",
                            json={"due_at": (utcnow() + timedelta(days=1)).isoformat()}).status_code == 409
    case_resolved(followup, "case-2")  # a later case: kept, visibly not asked
    assert revisit("case-2")["status"] == "cancelled" and revisit("case-2")["cancel_reason"] == "consent_withdrawn"


def test_visits_on_the_inbound_exchange_raise_the_tier_and_bad_ones_are_dead_lettered(
        followup, web_session, amqp_bus):
    imported(web_session)
    assert web_session.post("/v1/customers/M-103/tier", json={"tier": "key", "reason": "x"}).status_code == 404
    csv_body = "member_id,name,phone,home_store_id,consent\nM-103,赵女士,13700002222,SH-XH-001,yes\n"
    web_session.post("/v1/customers/import", data=csv_body.encode(), headers={"Content-Type": "text/csv"})
    assert web_session.get("/v1/customers/M-103").json()["tier"] == "potential"
    for n in range(4):
        visit = {"visit_id": f"V-{n}", "member_id": "M-103", "store_id": "SH-XH-001",
                 "visited_at": (utcnow() - timedelta(days=n)).isoformat(), "spend_fen": 90_000}
        amqp_bus.publish_feedback(visit, routing_key=bus.VISIT_COMPLETED_KEY)
    amqp_bus.publish_feedback(visit, routing_key=bus.VISIT_COMPLETED_KEY)  # a repeat counts once
    amqp_bus.publish_feedback({"visit_id": "V-x", "member_id": "M-103"}, routing_key=bus.VISIT_COMPLETED_KEY)
    wait_for(lambda: web_session.get("/v1/customers/M-103").json()["tier"] == "regular", what="tier raised")
    dead = wait_for(amqp_bus.dead_letters, what="the bad visit dead-lettered")
    assert "store_id" in dead[0]["headers"][bus.REASON_HEADER]


def test_with_two_replicas_a_due_task_reaches_its_owner_and_no_lease_is_left(container_factory, followup, web_session):
    container_factory(FollowupService, dict(followup, WEB_SERVER_ADDRESS="127.0.0.1:0")).start()
    imported(web_session)
    task_id = open_task(followup, "M-100")["_id"]
    bring_due(web_session, task_id)
    wait_for(lambda: tasks_collection(followup).find_one({"_id": task_id})["status"] == "due", what="due")
    task = tasks_collection(followup).find_one({"_id": task_id})
    assert task["due_at"] is None and task.get("lease_owner") is None
