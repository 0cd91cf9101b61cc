"""Authentication and authorisation against the five running services.

The matrix: every operation of every service's /openapi.json x twelve callers, each
answer checked against EXPECTED, written out by hand from the README's access table
(not derived from the code's own table). An operation with no row in EXPECTED fails
the test, so no endpoint is added without deciding who may call it."""
from datetime import timedelta

import pytest
import requests

from closeloop_shared.auth import IntegrationStore
from closeloop_shared.clock import utcnow
from closeloop_shared.mongo import database_name
from closeloop_shared.standins import free_port
from services.followup.service import FollowupService
from services.intake.service import IntakeService
from services.notify.service import NotifyService
from services.reporting.service import ReportingService
from services.routing import integrations
from services.routing.service import RoutingService
from tests.fixtures import feedback_body, wait_for

pytestmark = pytest.mark.integration

SERVICES = {"intake": IntakeService, "routing": RoutingService, "followup": FollowupService,
            "notify": NotifyService, "reporting": ReportingService}
OPS_PATHS = {"/health", "/metrics", "/openapi.json"}

# Outcomes: OK (passed authorisation: 2xx, or a 409/422 about the object's state),
# U (401), F (403), H (hidden: 404, or 422 unknown_store for a store out of scope).
OK, U, F, H = "ok", 401, 403, "hidden"
CALLERS = ("anonymous", "tampered", "expired", "staff_a", "staff_b", "manager_a", "rm_a",
           "rm_other", "customer_service", "general_manager", "key_brand", "key_other")


def row(staff_a, staff_b, manager_a, rm_a, rm_other, cs, gm, key_brand, key_other):
    return dict(zip(CALLERS, (U, U, U, staff_a, staff_b, manager_a, rm_a, rm_other, cs, gm,
                              key_brand, key_other)))


ADMIN_ONLY = row(F, F, F, F, F, F, F, F, F)
CASE_READ = row(OK, H, OK, OK, H, OK, OK, OK, H)
CASE_WORK = row(OK, H, OK, OK, H, OK, OK, F, F)       # the store's staff and the managers above it
SUPERVISOR_UP = row(F, F, OK, OK, H, OK, OK, F, F)    # (the matrix has no supervisor: a manager stands in)
SLA_MANAGERS = row(F, F, F, F, F, F, OK, F, F)  # the general manager (and the admin, not a caller here)
EVERYONE_READING_CASES = row(OK, OK, OK, OK, OK, OK, OK, OK, OK)
EXPECTED = {
    ("intake", "post", "/v1/feedback"): row(OK, H, OK, F, F, OK, F, OK, H),
    ("intake", "get", "/v1/feedback/{case_id}"): CASE_READ,
    ("routing", "get", "/v1/cases"): row(OK, OK, OK, OK, OK, OK, OK, OK, OK),  # filtered
    ("routing", "get", "/v1/cases/{case_id}"): CASE_READ,
    ("routing", "get", "/v1/cases/{case_id}/timeline"): CASE_READ,
    ("routing", "post", "/v1/cases/{case_id}/acknowledge"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/respond"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/note"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/report-to-superior"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/request-info"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/resume"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/propose-remedy"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/approve-remedy"): row(F, F, OK, OK, H, OK, OK, F, F),
    ("routing", "post", "/v1/cases/{case_id}/reject-remedy"): row(F, F, OK, OK, H, OK, OK, F, F),
    # who may propose a remedy reads the limits its approval path follows
    ("routing", "get", "/v1/remedies/approval-limits"): row(OK, OK, OK, OK, OK, OK, OK, F, F),
    ("routing", "post", "/v1/cases/{case_id}/root-cause"): SUPERVISOR_UP,
    ("routing", "post", "/v1/cases/{case_id}/file-report"): row(F, F, OK, OK, H, OK, OK, F, F),
    ("routing", "post", "/v1/cases/{case_id}/sign-off-report"): row(F, F, F, F, F, F, OK, F, F),
    ("routing", "post", "/v1/cases/{case_id}/resolve"): CASE_WORK,
    ("routing", "post", "/v1/cases/{case_id}/close"): SUPERVISOR_UP,
    ("routing", "post", "/v1/cases/{case_id}/link"): SUPERVISOR_UP,
    ("routing", "post", "/v1/cases/{case_id}/merge"): SUPERVISOR_UP,
    ("routing", "post", "/v1/cases/{case_id}/archive"): row(F, F, OK, OK, H, OK, OK, F, F),
    ("routing", "post", "/v1/cases/{case_id}/reopen"): row(F, F, OK, OK, H, OK, OK, F, F),
    ("routing", "post", "/v1/cases/{case_id}/category"): row(F, F, OK, OK, H, OK, OK, F, F),
    ("routing", "post", "/v1/auth/login"): "public",
    ("routing", "get", "/v1/org"): row(OK, OK, OK, OK, OK, OK, OK, F, F),
    ("routing", "post", "/v1/org/brands"): ADMIN_ONLY,
    ("routing", "post", "/v1/org/regions"): ADMIN_ONLY,
    ("routing", "post", "/v1/org/stores"): ADMIN_ONLY,
    ("routing", "patch", "/v1/org/stores/{store_id}"): ADMIN_ONLY,
    ("routing", "post", "/v1/org/staff"): ADMIN_ONLY,
    ("routing", "patch", "/v1/org/staff/{staff_id}"): ADMIN_ONLY,
    ("routing", "post", "/v1/org/staff/{staff_id}/deactivate"): ADMIN_ONLY,
    ("routing", "post", "/v1/org/staff/{staff_id}/password"): ADMIN_ONLY,
    ("routing", "get", "/v1/integrations"): ADMIN_ONLY,
    ("routing", "post", "/v1/integrations"): ADMIN_ONLY,
    ("routing", "post", "/v1/integrations/{client_id}/keys"): ADMIN_ONLY,
    ("routing", "delete", "/v1/integrations/{client_id}/keys/{key_id}"): ADMIN_ONLY,
    ("routing", "get", "/v1/audit/personal-data-reads"): ADMIN_ONLY,
    ("routing", "get", "/v1/sla-policies"): EVERYONE_READING_CASES,
    ("routing", "post", "/v1/sla-policies"): SLA_MANAGERS,
    ("routing", "get", "/v1/sla-policies/{policy_id}"): EVERYONE_READING_CASES,
    ("routing", "put", "/v1/sla-policies/{policy_id}"): SLA_MANAGERS,
    ("routing", "post", "/v1/sla-policies/{policy_id}/deactivate"): SLA_MANAGERS,
    ("followup", "get", "/v1/revisits"): row(OK, OK, OK, OK, OK, OK, OK, F, F),  # filtered
    ("followup", "post", "/v1/revisits/{revisit_id}/outcome"): row(OK, H, OK, F, F, OK, F, F, F),
    # the tiered revisit programme: customers are imported and steered by the store manager and
    # customer service; the member and task ids of the matrix do not exist (404 where allowed)
    ("followup", "post", "/v1/customers/import"): row(F, F, OK, F, F, OK, F, F, F),
    ("followup", "get", "/v1/customers/{member_id}"): row(H, H, H, H, H, H, H, F, F),
    ("followup", "post", "/v1/customers/{member_id}/tier"): row(F, F, H, F, F, H, F, F, F),
    ("followup", "post", "/v1/customers/{member_id}/withdraw-consent"): row(F, F, H, F, F, H, F, F, F),
    ("followup", "get", "/v1/revisit-tasks/due-today"): row(OK, OK, OK, OK, OK, OK, OK, F, F),  # one's own
    ("followup", "post", "/v1/revisit-tasks/{task_id}/attempts"): row(H, H, H, F, F, H, F, F, F),
    ("followup", "post", "/v1/revisit-tasks/{task_id}/reschedule"): row(H, H, H, F, F, H, F, F, F),
    ("followup", "get", "/v1/revisit-tasks/completion"): row(F, F, OK, OK, OK, OK, OK, F, F),  # filtered
    # store A's appointments of today: its own people and those above it (store B's staff and another
    # region's manager: no such store for them)
    ("followup", "get", "/v1/appointments"): row(OK, H, OK, OK, H, OK, OK, F, F),
    ("followup", "post", "/v1/appointments/{appointment_id}/change-requests"): row(H, H, H, F, F, H, F, F, F),
    ("followup", "get", "/v1/audit/personal-data-reads"): ADMIN_ONLY,
    ("notify", "get", "/v1/deliveries"): row(F, F, OK, OK, OK, OK, OK, F, F),  # filtered
    ("notify", "get", "/v1/deliveries/by-customer"): row(F, F, OK, OK, OK, OK, OK, F, F),  # filtered
    ("notify", "post", "/v1/receipts/sms"): "public",  # the SMS gateway's push: its URL token, not a login
    ("notify", "get", "/v1/receipts/wechat"): "public",  # WeChat's pushes: signed with the server token
    ("notify", "post", "/v1/receipts/wechat"): "public",
    ("notify", "get", "/v1/audit/personal-data-reads"): ADMIN_ONLY,
    ("reporting", "get", "/v1/reports/summary"): row(F, F, OK, OK, H, OK, OK, F, F),
    ("reporting", "get", "/v1/reports/kpis"): row(F, F, OK, OK, H, OK, OK, F, F),  # takes no body
    ("reporting", "get", "/v1/reports/weekly"): row(F, F, OK, OK, H, OK, OK, F, F),  # takes no body
    ("routing", "get", "/v1/calendars/stores/{store_id}"): row(OK, H, OK, OK, H, OK, OK, F, F),
    ("routing", "put", "/v1/calendars/stores/{store_id}"): row(F, F, OK, OK, H, F, OK, F, F),
    ("routing", "post", "/v1/calendars/stores/{store_id}/closures"): row(F, F, OK, OK, H, F, OK, F, F),
    ("routing", "get", "/v1/calendars/brands/{brand_id}/overrides"): row(OK, OK, OK, OK, OK, OK, OK, F, F),
    ("routing", "put", "/v1/calendars/brands/{brand_id}/overrides"): row(F, F, F, F, F, F, OK, F, F),
    ("routing", "get", "/v1/calendars/years"): row(OK, OK, OK, OK, OK, OK, OK, F, F),
    ("routing", "put", "/v1/calendars/years/{year}"): row(F, F, F, F, F, F, OK, F, F),
    ("routing", "get", "/v1/stores/{store_id}/roster"): row(OK, H, OK, OK, H, OK, OK, F, F),
    ("routing", "put", "/v1/stores/{store_id}/roster"): row(F, F, OK, OK, H, F, OK, F, F),
    ("routing", "get", "/v1/stores/{store_id}/on-duty"): row(OK, H, OK, OK, H, OK, OK, F, F),
    ("routing", "post", "/v1/cases/{case_id}/reassign"): row(F, F, OK, OK, H, OK, OK, F, F),
}

BODIES = {
    "/v1/receipts/sms": [{"out_id": "unknown", "success": True, "err_code": "DELIVERED"}],
    "/v1/sla-policies": {"policy_id": "matrix", "name": "矩阵", "clocks": [
        {"name": "first_response", "basis": "wall", "duration_seconds": 3600},
        {"name": "resolution", "basis": "business", "duration_seconds": 8 * 3600}]},
    "/v1/sla-policies/{policy_id}": {"version": 1, "name": "矩阵", "clocks": [
        {"name": "first_response", "basis": "wall", "duration_seconds": 3600},
        {"name": "resolution", "basis": "business", "duration_seconds": 8 * 3600}]},
    "/v1/sla-policies/{policy_id}/deactivate": {"version": 1},
    "/v1/feedback": feedback_body(),
    "/v1/cases/{case_id}/respond": {"note": "已致电致歉"},
    "/v1/cases/{case_id}/note": {"note": "调取监控", "evidence": [{"kind": "video", "ref": "cam-3/10:05"}]},
    "/v1/cases/{case_id}/report-to-superior": {"message": "顾客要求赔偿,请支持"},
    "/v1/cases/{case_id}/request-info": {"question": "请提供收据"},
    "/v1/cases/{case_id}/resume": {"answer": "收据已发"},
    "/v1/cases/{case_id}/propose-remedy": {"type": "voucher", "amount_fen": 10_000},
    "/v1/cases/{case_id}/approve-remedy": {"remedy_id": "no-such-remedy"},
    "/v1/cases/{case_id}/reject-remedy": {"remedy_id": "no-such-remedy", "reason": "不合理"},
    "/v1/cases/{case_id}/root-cause": {"cause": "misunderstanding"},
    "/v1/cases/{case_id}/file-report": {"summary": "书面报告"},
    "/v1/cases/{case_id}/resolve": {"note": "致歉"},
    "/v1/cases/{case_id}/link": {"related": "no-such-case"},
    "/v1/cases/{case_id}/merge": {"into": "no-such-case"},
    "/v1/cases/{case_id}/reopen": {"reason": "顾客仍不满意"},
    "/v1/cases/{case_id}/category": {"category": "booking", "reason": "是改约提醒的问题"},
    "/v1/auth/login": {"staff_id": "sh-xh-s1", "password": "not-the-password"},
    "/v1/org/brands": {"brand_id": "x", "name": "x"},
    "/v1/org/regions": {"region_id": "x", "name": "x", "brand_id": "yueyan"},
    "/v1/org/stores": {"store_id": "x", "name": "x", "region_id": "east"},
    "/v1/org/stores/{store_id}": {"name": "改名"},
    "/v1/org/staff": {"staff_id": "x", "name": "x", "role": "store_staff", "unit_id": "SH-XH-001"},
    "/v1/org/staff/{staff_id}": {"name": "改名"},
    "/v1/org/staff/{staff_id}/password": {"password": "a-long-enough-password"},
    "/v1/integrations": {"client_id": "x", "name": "x", "brand_id": "yueyan", "permissions": ["feedback:submit"]},
    "/v1/revisits/{revisit_id}/outcome": {"score": 5},
    "/v1/customers/import": {"customers": []},
    "/v1/customers/{member_id}/tier": {"tier": "key", "reason": "转介绍多位顾客"},
    "/v1/revisit-tasks/{task_id}/attempts": {"reached": False, "note": "无人接听"},
    "/v1/revisit-tasks/{task_id}/reschedule": {"due_at": "2030-01-02T10:00:00+08:00"},
    "/v1/appointments/{appointment_id}/change-requests": {"phone": "13812345678",
                                                          "starts_at": "2030-01-02T10:00:00+08:00"},
    "/v1/stores/{store_id}/roster": {"shifts": [{"shift_id": "day", "start": "09:00", "end": "18:00",
                                                 "staff_ids": ["sh-xh-s1"], "weekdays": [0, 1, 2, 3, 4]}]},
    "/v1/cases/{case_id}/reassign": {"staff_id": "sh-xh-sv", "reason": "交给主管跟进"},
    "/v1/calendars/stores/{store_id}": {"weekly": {"mon": [{"start": "10:00", "end": "21:00"}]},
                                        "workday": [{"start": "10:00", "end": "21:00"}], "observes_holidays": True},
    "/v1/calendars/stores/{store_id}/closures": {"first_day": "2027-03-01", "last_day": "2027-03-01",
                                                 "reason": "消防检查"},
    "/v1/calendars/brands/{brand_id}/overrides": {"overrides": [{"date": "2027-10-01", "kind": "workday"}]},
    "/v1/calendars/years/{year}": {"holidays": ["2027-10-01"], "workdays": [], "source": "国务院办公厅通知"},
}


def outcome(response):
    if response.status_code in (401, 403):
        return response.status_code
    if response.status_code == 404 or (response.status_code == 422 and
                                        response.json()["error"]["code"] == "unknown_store"):
        return H
    assert response.status_code < 500, response.text
    return OK


class Stack:
    def __init__(self, container_factory, service_config):
        self.urls, self.config = {}, service_config
        for name, service in SERVICES.items():
            address = f"127.0.0.1:{free_port()}"
            container_factory(service, dict(service_config, WEB_SERVER_ADDRESS=address,
                                            OUTBOX_RELAY_INTERVAL_SECONDS=1)).start()
            self.urls[name] = f"http://{address}"

    def call(self, service, method, path, headers=None, **kwargs):
        return requests.request(method, self.urls[service] + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture
def stack(container_factory, service_config):
    return Stack(container_factory, service_config)


def register_client(mongo_client, config, client_id, brand_id):
    """An integration as routing registers it and intake copies it; returns its key."""
    from closeloop_shared import org
    from tests.fixtures import ROOT
    now = utcnow()
    organisation = org.load(ROOT / "deploy/seeds/org.yaml")
    client = integrations.new_client(organisation, client_id, client_id, brand_id, [],
                                     ["feedback:submit", "feedback:read", "case:read"], None, now)
    keys, key = integrations.issue_key(client, now)
    record = integrations.changed_event(dict(client, keys=keys))
    for service in SERVICES:
        IntegrationStore(mongo_client[database_name(config, service)]).apply(record)
    return key.presented


@pytest.fixture
def callers(stack, token_keys, mongo_client, service_config):
    bearer = lambda credential: {"Authorization": f"Bearer {credential}"}  # noqa: E731
    valid = token_keys.token("sh-xh-s1")
    head, payload, signature = valid.split(".")
    forged_payload = token_keys.token("gm-001").split(".")[1]
    return {
        "anonymous": {},
        "tampered": bearer(f"{head}.{forged_payload}.{signature}"),
        "expired": token_keys.headers("sh-xh-s1", ttl=timedelta(minutes=1),
                                      now=utcnow() - timedelta(hours=1)),
        "staff_a": token_keys.headers("sh-xh-s1"),
        "staff_b": token_keys.headers("hz-xh-s1"),
        "manager_a": token_keys.headers("sh-xh-mg"),
        "rm_a": token_keys.headers("rm-east"),
        "rm_other": token_keys.headers("rm-south"),
        "customer_service": token_keys.headers("cs-001"),
        "general_manager": token_keys.headers("gm-001"),
        "key_brand": bearer(register_client(mongo_client, service_config, "pos-yueyan", "yueyan")),
        "key_other": bearer(register_client(mongo_client, service_config, "pos-muyun", "muyun")),
    }


@pytest.fixture
def case_a(stack, callers):
    """A case of store A (SH-XH-001), submitted by the brand's integration, routed,
    resolved (so it has a revisit), with deliveries and a reporting row."""
    receipt = stack.call("intake", "post", "/v1/feedback", callers["key_brand"],
                         json=feedback_body(external_ref={"source": "pos", "id": "matrix-1"})).json()
    case_id = receipt["case_id"]
    manager = callers["manager_a"]
    wait_for(lambda: stack.call("routing", "get", f"/v1/cases/{case_id}", manager).status_code == 200,
             what="routed")
    assert stack.call("routing", "post", f"/v1/cases/{case_id}/resolve", manager,
                      json={"note": "致歉"}).status_code == 200
    revisit = wait_for(lambda: stack.call("followup", "get", "/v1/revisits", manager,
                                          params={"case_id": case_id}).json()["revisits"], what="revisit")[0]
    wait_for(lambda: stack.call("notify", "get", "/v1/deliveries", manager,
                                params={"case_id": case_id}).json()["deliveries"], what="deliveries")
    return {"case_id": case_id, "revisit_id": revisit["revisit_id"], "store_id": "SH-XH-001",
            "staff_id": "nobody-such", "client_id": "pos-yueyan", "key_id": "nokey",
            "brand_id": "yueyan", "year": 2027, "member_id": "nobody-such", "task_id": "nobody-such",
            "appointment_id": "nobody-such",
            "policy_id": "default"}  # built in: its reads answer 200, its changes 409


def concrete(path, ids):
    return path.format(**ids)


QUERIES = {"/v1/revisits": "case_id", "/v1/deliveries": "case_id", "/v1/deliveries/by-customer": "contact"}


def test_every_operation_answers_every_caller_as_the_access_table_says(stack, callers, case_a):
    operations = []
    for service in SERVICES:
        spec = requests.get(stack.urls[service] + "/openapi.json", timeout=5).json()
        for path, methods in spec["paths"].items():
            operations += [(service, method, path) for method in methods]
    missing = [op for op in operations if op not in EXPECTED]
    assert not missing, f"operations without an access row in EXPECTED: {missing}"
    assert set(EXPECTED) <= set(operations), "EXPECTED lists operations no service documents"

    wrong = []
    for service, method, path in operations:
        params = {QUERIES[path]: case_a["case_id"]} if path in QUERIES else None
        if path in ("/v1/reports/summary", "/v1/reports/kpis", "/v1/reports/weekly"):
            params = {"store": "SH-XH-001"}
        if path == "/v1/appointments":
            params = {"store_id": "SH-XH-001"}
        for caller, headers in callers.items():
            response = stack.call(service, method.upper(), concrete(path, case_a), headers,
                                  json=BODIES.get(path), params=params)
            expected = EXPECTED[(service, method, path)]
            if expected == "public":
                if response.json().get("error", {}).get("code") in ("unauthenticated", "forbidden"):
                    wrong.append((service, method, path, caller, response.status_code))
                continue
            if outcome(response) != expected[caller]:
                wrong.append((service, method, path, caller, response.status_code, expected[caller]))
    assert not wrong, "\n".join(map(str, wrong))


def test_lists_are_filtered_by_scope_and_contacts_masked_by_role(stack, callers, case_a):
    listed = lambda caller: [c["case_id"] for c in stack.call(  # noqa: E731
        "routing", "get", "/v1/cases", callers[caller]).json()["cases"]]
    assert case_a["case_id"] in listed("staff_a") and case_a["case_id"] in listed("rm_a")
    assert case_a["case_id"] not in listed("staff_b") + listed("rm_other") + listed("key_other")
    assert case_a["case_id"] in listed("key_brand")
    asked_for_a = stack.call("routing", "get", "/v1/cases", callers["staff_b"], params={"store": "SH-XH-001"})
    assert asked_for_a.json()["cases"] == []  # naming another store widens nothing

    seen = lambda caller: stack.call(  # noqa: E731
        "routing", "get", f"/v1/cases/{case_a['case_id']}", callers[caller]).json()["customer"]
    assert seen("staff_a")["phone"] == "+8613812345678" and seen("customer_service")["email"]
    for caller in ("rm_a", "general_manager", "key_brand"):
        assert seen(caller)["phone"] == "138****5678" and seen(caller)["email"] is None

    revisits = lambda caller: stack.call(  # noqa: E731
        "followup", "get", "/v1/revisits", callers[caller], params={"case_id": case_a["case_id"]}).json()
    assert revisits("staff_b")["revisits"] == [] and len(revisits("staff_a")["revisits"]) == 1
    assert revisits("general_manager")["revisits"][0]["customer"]["phone"] == "138****5678"

    deliveries = stack.call("notify", "get", "/v1/deliveries", callers["rm_a"],
                            params={"case_id": case_a["case_id"]}).json()["deliveries"]
    assert deliveries and all(d["recipient"] is None for d in deliveries)
    assert stack.call("notify", "get", "/v1/deliveries", callers["rm_other"],
                      params={"case_id": case_a["case_id"]}).json()["deliveries"] == []
    by_customer = lambda caller: stack.call(  # noqa: E731
        "notify", "get", "/v1/deliveries/by-customer", callers[caller], params={"contact": "13812345678"}).json()
    assert case_a["case_id"] in {d["case_id"] for d in by_customer("manager_a")["deliveries"]}
    assert by_customer("rm_other")["deliveries"] == []


def test_the_timeline_names_the_caller_whatever_the_body_says(stack, callers, case_a):
    forged = stack.call("routing", "post", f"/v1/cases/{case_a['case_id']}/reopen", callers["manager_a"],
                        json={"reason": "仍不满意", "actor": "gm-001"})
    assert forged.status_code == 422 and "actor" in forged.json()["error"]["fields"]
    reopened = stack.call("routing", "post", f"/v1/cases/{case_a['case_id']}/reopen", callers["manager_a"],
                          json={"reason": "仍不满意"}).json()
    assert reopened["timeline"][-1]["actor"] == "sh-xh-mg"


def test_personal_data_reads_are_on_record_for_admins(stack, callers, case_a, token_keys):
    stack.call("routing", "get", f"/v1/cases/{case_a['case_id']}", callers["staff_a"])
    stack.call("routing", "get", f"/v1/cases/{case_a['case_id']}", callers["general_manager"])  # masked
    reads = stack.call("routing", "get", "/v1/audit/personal-data-reads",
                       token_keys.headers("ops-admin")).json()["reads"]
    readers = {(r["who"], tuple(r["ids"])) for r in reads}
    assert ("sh-xh-s1", (case_a["case_id"],)) in readers
    assert not any(who == "gm-001" for who, _ in readers)
