"""The case lifecycle over HTTP on the running routing service (real RabbitMQ and the
MongoDB-protocol server): pause and resume, a remedy above the store manager's limit
waiting for the regional manager, 409s naming the allowed actions, the root cause before
closing, duplicates linked and merged, and the whole timeline a page at a time."""
import json
import uuid
from datetime import timedelta

import bson
import pytest
from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from closeloop_shared.config import CASE_TIMELINE_KEPT, DEFAULTS
from closeloop_shared.contract import CaseStatus
from closeloop_shared.mongo import database_name
from services.routing import lifecycle
from services.routing.repository import CaseRepository
from services.routing.service import RoutingService
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def heard(record_events):
    return record_events(ev.CASE_ROUTED, ev.REMEDY_PROPOSED, ev.CASE_RESOLVED, ev.CASE_LINKED, ev.CASE_MERGED,
                         ev.CASE_PAUSED, ev.CASE_RESUMED)


@pytest.fixture
def routing(container_factory, service_config, web_config, heard):
    config = dict(service_config, **web_config, OUTBOX_RELAY_INTERVAL_SECONDS=1)
    container = container_factory(RoutingService, config)
    container.start()
    return config


@pytest.fixture
def as_staff(web_session, token_keys):
    """as_staff(staff_id)(method, path, body=None) -> the response."""
    def caller(staff_id):
        def call(method, path, body=None):
            headers = dict(token_keys.headers(staff_id))
            if body is not None:
                headers["Content-Type"] = "application/json"
                return web_session.request(method, path, data=json.dumps(body, ensure_ascii=False).encode(),
                                           headers=headers)
            return web_session.request(method, path, headers=headers)
        return call
    return caller


def new_case(config, heard, phone="+8613912345678"):
    now = utcnow()
    case_id = uuid.uuid4().hex
    event_dispatcher(config)(ev.INTAKE, ev.CASE_SUBMITTED, ev.dump(ev.CASE_SUBMITTED, {
        "case_id": case_id, "case_number": f"CL-20261124-{uuid.uuid4().int % 10**6:06d}",
        "store_id": "SH-XH-001", "store_name": "上海徐汇店", "channel": "hotline",
        "customer": {"name": "陈女士", "phone": phone}, "content": "前台预约时间搞错了,到店等了一个小时",
        "occurred_at": now, "submitted_at": now, "locale": "zh-CN"}))
    wait_for(lambda: [r for r in heard.of_type(ev.CASE_ROUTED) if r["case_id"] == case_id], what="routed")
    return case_id


def test_an_illegal_action_is_409_naming_the_allowed_ones(routing, heard, as_staff):
    manager = as_staff("sh-xh-mg")
    case_id = new_case(routing, heard)
    refused = manager("POST", f"/v1/cases/{case_id}/resume", {"answer": "?"})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "invalid_transition"
    assert error["allowed_actions"] == lifecycle.allowed_actions("assigned")
    assert manager("GET", f"/v1/cases/{case_id}").json()["allowed_actions"] == error["allowed_actions"]


def test_waiting_on_the_customer_pauses_the_clocks_and_resuming_moves_the_deadlines(routing, heard, as_staff):
    clerk = as_staff("sh-xh-s1")
    case_id = new_case(routing, heard)
    acknowledged = clerk("POST", f"/v1/cases/{case_id}/acknowledge").json()
    assert acknowledged["status"] == "acknowledged" and acknowledged["ladder"]["acknowledged_by"] == "sh-xh-s1"
    before = acknowledged["clocks"]
    paused = clerk("POST", f"/v1/cases/{case_id}/request-info", {"question": "请提供预约截图"}).json()
    assert paused["status"] == "pending_customer"
    assert all(c["paused_at"] for c in paused["clocks"].values() if c["met_at"] is None)
    assert paused["next_check_at"] is None  # nothing can fall due while the customer is asked
    import eventlet
    eventlet.sleep(1.5)
    resumed = clerk("POST", f"/v1/cases/{case_id}/resume", {"answer": "截图已发"}).json()
    assert resumed["status"] == "investigating" and resumed["next_check_at"] is not None
    for name, clock in resumed["clocks"].items():
        moved = (_at(clock["due_at"]) - _at(before[name]["due_at"])).total_seconds()
        assert clock["paused_at"] is None
        if clock["basis"] == "wall":  # by the wall time paused
            assert 1.5 <= moved < 30
        else:  # by the store's open time the pause covered (none at night), as the clock recorded it
            assert moved == pytest.approx(clock["paused_seconds"], abs=0.01) and moved < 30
    actions = [e["action"] for e in resumed["timeline"]]
    assert actions[-3:] == ["acknowledged", "info_requested", "resumed"]
    assert resumed["timeline"][-1]["actor"] == "sh-xh-s1"
    wait_for(lambda: heard.of_type(ev.CASE_PAUSED) and heard.of_type(ev.CASE_RESUMED), what="pause events")


def _at(text):
    from datetime import datetime
    return datetime.fromisoformat(text)


def test_a_remedy_above_the_store_manager_s_limit_waits_for_the_regional_manager(routing, heard, as_staff):
    manager, regional = as_staff("sh-xh-mg"), as_staff("rm-east")
    case_id = new_case(routing, heard)
    proposed = manager("POST", f"/v1/cases/{case_id}/propose-remedy", {"type": "compensation", "amount_fen": 80_000})
    assert proposed.status_code == 200
    [remedy] = proposed.json()["remedies"]
    assert remedy["status"] == "pending_approval" and remedy["approver"]["staff_id"] == "rm-east"
    announced = wait_for(lambda: heard.of_type(ev.REMEDY_PROPOSED), what="remedy_proposed")[0]
    assert announced["approver"]["staff_id"] == "rm-east" and announced["amount_fen"] == 80_000

    early = manager("POST", f"/v1/cases/{case_id}/resolve", {"note": "补偿"})
    assert early.status_code == 409 and early.json()["error"]["code"] == "remedy_pending"
    own = manager("POST", f"/v1/cases/{case_id}/approve-remedy", {"remedy_id": remedy["remedy_id"]})
    assert own.status_code == 403 and own.json()["error"]["code"] == "above_approval_limit"
    approved = regional("POST", f"/v1/cases/{case_id}/approve-remedy", {"remedy_id": remedy["remedy_id"],
                                                                        "reason": "同意"})
    assert approved.status_code == 200 and approved.json()["remedies"][0]["decided_by"] == "rm-east"

    resolved = manager("POST", f"/v1/cases/{case_id}/resolve", {"note": "已补偿800元"})
    assert resolved.status_code == 200 and resolved.json()["remedy"]["amount_fen"] == 80_000
    event = wait_for(lambda: heard.of_type(ev.CASE_RESOLVED), what="case_resolved")[0]
    assert event["amount_fen"] == 80_000 and event["remedy"]["remedy_id"] == remedy["remedy_id"]


def test_a_case_closes_only_with_its_root_cause_then_archives(routing, heard, as_staff):
    manager = as_staff("sh-xh-mg")
    case_id = new_case(routing, heard)
    assert manager("POST", f"/v1/cases/{case_id}/resolve", {"note": "当面致歉"}).json()["remedy"]["type"] == "apology"
    refused = manager("POST", f"/v1/cases/{case_id}/close")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "root_cause_required"
    assert "root-cause" in refused.json()["error"]["allowed_actions"]
    no_action = manager("POST", f"/v1/cases/{case_id}/root-cause", {"cause": "poor_communication"})
    assert no_action.status_code == 422 and "actions" in no_action.json()["error"]["fields"]
    recorded = manager("POST", f"/v1/cases/{case_id}/root-cause", {
        "cause": "poor_communication",
        "actions": [{"text": "改约必须短信通知顾客", "owner": "sh-xh-mg", "due": "2026-12-31"}]})
    assert recorded.status_code == 200 and recorded.json()["root_cause"]["actions"][0]["due"] == "2026-12-31"
    closed = manager("POST", f"/v1/cases/{case_id}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    archived = manager("POST", f"/v1/cases/{case_id}/archive").json()
    assert archived["status"] == "archived" and archived["allowed_actions"] == []
    late = manager("POST", f"/v1/cases/{case_id}/reopen", {"reason": "x"})
    assert late.status_code == 409 and late.json()["error"]["allowed_actions"] == []


def test_a_duplicate_is_linked_on_both_and_merges_with_its_clocks_stopped(routing, heard, as_staff):
    manager = as_staff("sh-xh-mg")
    first = new_case(routing, heard, phone="+8613700001111")
    second = new_case(routing, heard, phone="137 0000 1111")
    wait_for(lambda: len(heard.of_type(ev.CASE_LINKED)) == 2, what="both sides linked")
    assert manager("GET", f"/v1/cases/{first}").json()["related"] == [second]
    assert manager("GET", f"/v1/cases/{second}").json()["related"] == [first]

    missing = manager("POST", f"/v1/cases/{second}/merge", {"into": "no-such-case"})
    assert missing.status_code == 422 and "into" in missing.json()["error"]["fields"]
    merged = manager("POST", f"/v1/cases/{second}/merge", {"into": first}).json()
    assert merged["status"] == "closed" and merged["merged_into"] == first and merged["next_check_at"] is None
    assert all(c["met_at"] or c["stopped_at"] for c in merged["clocks"].values())
    survivor = manager("GET", f"/v1/cases/{first}").json()
    assert survivor["timeline"][-1]["action"] == "merged_in" and survivor["status"] == "assigned"
    assert wait_for(lambda: heard.of_type(ev.CASE_MERGED), what="case_merged")[0]["into_case_id"] == first
    again = manager("POST", f"/v1/cases/{second}/reopen", {"reason": "x"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "merged"


def test_the_whole_timeline_reads_a_page_at_a_time(routing, heard, as_staff):
    manager = as_staff("sh-xh-mg")
    case_id = new_case(routing, heard)
    for n in range(25):
        assert manager("POST", f"/v1/cases/{case_id}/note", {
            "note": f"调查记录 {n}", "evidence": [{"kind": "photo", "ref": f"img-{n}"}]}).status_code == 200
    count = manager("GET", f"/v1/cases/{case_id}").json()["timeline_count"]
    seen, before = [], None
    while True:
        query = f"?limit=10&before={before}" if before else "?limit=10"
        page = manager("GET", f"/v1/cases/{case_id}/timeline{query}").json()
        assert page["count"] == count
        seen += page["entries"]
        before = page["next_before"]
        if before is None:
            break
    assert [e["seq"] for e in seen] == list(range(count, 0, -1))
    assert seen[0]["evidence"] == [{"kind": "photo", "ref": "img-24"}]
    assert as_staff("hz-xh-mg")("GET", f"/v1/cases/{case_id}/timeline").status_code == 404


def test_a_case_reopened_again_and_again_keeps_a_bounded_document(routing, heard, as_staff, mongo_client):
    """Each round adds two entries; the document keeps the newest CASE_TIMELINE_KEPT,
    case_timeline keeps them all, so the document stops growing with the rounds."""
    manager = as_staff("sh-xh-mg")
    case_id = new_case(routing, heard)
    stored = mongo_client[database_name(routing, "routing")]["cases"]
    sizes = []
    for round_ in range(64):
        assert manager("POST", f"/v1/cases/{case_id}/resolve", {"note": "致歉"}).status_code == 200
        assert manager("POST", f"/v1/cases/{case_id}/reopen", {"reason": f"第{round_}次不满意"}).status_code == 200
        if round_ in (51, 63):  # both past the cap (2 entries a round)
            sizes.append(len(bson.encode(stored.find_one({"_id": case_id}))))
    case = manager("GET", f"/v1/cases/{case_id}").json()
    kept = DEFAULTS[CASE_TIMELINE_KEPT]
    assert case["reopen_count"] == 64 and case["timeline_count"] >= 128 + 2
    assert len(case["timeline"]) == kept and case["timeline"][-1]["seq"] == case["timeline_count"]
    assert sizes[1] <= sizes[0] * 1.05  # 12 more rounds, (almost) no bigger: the timeline is capped
    assert mongo_client[database_name(routing, "routing")]["case_timeline"].count_documents(
        {"case_id": case_id}) == case["timeline_count"]


def test_a_case_update_returns_the_case_exactly_as_stored_but_its_outbox(mongo_client, service_config):
    """CaseRepository.update builds the case it wrote instead of reading it back: the
    same fields and types as a read (tuples as lists, str enums as str, datetimes to the
    millisecond), the timeline sliced like $push/$slice, version + 1; the outbox is left
    out (a flush empties it outside the version). A stale version writes nothing."""
    db = mongo_client[database_name(service_config, "routing")]
    cases = CaseRepository(db, timeline_kept=3)
    now = utcnow().replace(microsecond=123456)  # the database keeps 123 ms of it
    assert cases.insert({"_id": "c1", "version": 4, "status": "assigned", "submitted_at": now,
                         "outbox": [], "outbox_pending": False,
                         "timeline": [{"at": now, "action": "routed", "actor": "system"}] * 2})
    read = cases.get("c1")
    later = now + timedelta(microseconds=1234567)
    entries = [{"at": later, "action": f"step{n}", "actor": "system"} for n in range(2)]
    updated = cases.update(read, {"status": CaseStatus.INVESTIGATING, "pair": (1, 2), "next_check_at": later},
                           entries, [{"id": "e1", "type": "x", "payload": {}}], later)
    stored = cases.get("c1")
    assert stored["outbox"] == [{"id": "e1", "type": "x", "payload": {}}] and stored["outbox_pending"] is True
    assert updated == {k: v for k, v in stored.items() if k != "outbox"}
    assert [type(updated[k]) for k in ("status", "pair")] == [str, list]
    assert updated["version"] == 5 and updated["timeline_count"] == 4
    assert [e["seq"] for e in updated["timeline"]] == [2, 3, 4]
    assert cases.update(read, {"status": "resolved"}, [], [], later) is None
    assert cases.get("c1") == stored
