"""Duty rosters against real RabbitMQ and the MongoDB-protocol server: set a roster, read
who is on duty, a manager's reassignment, and the shift-end handover (a timeline entry
and a case_reassigned on the bus, once however often it runs)."""
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.clock import utcnow
from closeloop_shared.contract import CaseStatus
from closeloop_shared.mongo import database_name
from services.routing import duty_flows
from services.routing.repository import CaseRepository, RosterRepository
from services.routing.service import RoutingService
from tests.fixtures import ROOT, wait_for
# routing as test_routing runs it (its `heard` is this module's)
from tests.integration.test_routing import dispatch, post, routing, routing_config, submitted  # noqa: F401

pytestmark = pytest.mark.integration
STORE = "SH-XH-001"
SHANGHAI = ZoneInfo("Asia/Shanghai")
EVERY_DAY = list(range(7))


@pytest.fixture
def heard(record_events):
    return record_events(ev.CASE_ROUTED, ev.CASE_REASSIGNED)


def put(session, path, body):
    return session.put(path, data=json.dumps(body, ensure_ascii=False).encode(),
                       headers={"Content-Type": "application/json"})


def hhmm(instant):
    return instant.astimezone(SHANGHAI).strftime("%H:%M")


def test_roster_on_duty_reassignment_and_shift_end_handover(
        heard, routing, routing_config, web_session, mongo_client):
    now = utcnow().replace(second=0, microsecond=0)
    change = now + timedelta(minutes=10)  # the day shift ends, the evening one begins
    roster = {"shifts": [
        {"shift_id": "day", "start": hhmm(now - timedelta(hours=3)), "end": hhmm(change),
         "staff_ids": ["sh-xh-s1", "sh-xh-sv"], "weekdays": EVERY_DAY},
        {"shift_id": "evening", "start": hhmm(change), "end": hhmm(change + timedelta(hours=4)),
         "staff_ids": ["sh-xh-rv", "sh-xh-mg"], "weekdays": EVERY_DAY}]}
    path = f"/v1/stores/{STORE}/roster"

    assert web_session.get(path).json() == {"store_id": STORE, "version": 0, "shifts": []}
    stranger = put(web_session, path, {"shifts": [dict(roster["shifts"][0], staff_ids=["hz-xh-s1"])]})
    assert stranger.status_code == 422 and "shifts.0.staff_ids" in stranger.json()["error"]["fields"]
    stored = put(web_session, path, roster)
    assert stored.status_code == 200 and stored.json()["version"] == 1
    assert web_session.get(path).json()["shifts"][1]["staff_ids"] == ["sh-xh-rv", "sh-xh-mg"]
    stale = put(web_session, path, dict(roster, version=0))
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "concurrent_update"

    def on_duty(at):
        answer = web_session.get(f"/v1/stores/{STORE}/on-duty", params={"at": at.isoformat()})
        assert answer.status_code == 200, answer.text
        return [p["staff_id"] for p in answer.json()["staff"]]
    assert on_duty(now) == ["sh-xh-s1", "sh-xh-sv"]
    assert on_duty(change + timedelta(minutes=1)) == ["sh-xh-mg", "sh-xh-rv"]
    assert web_session.get(f"/v1/stores/{STORE}/on-duty", params={"at": "tomorrow"}).status_code == 422

    event = submitted()  # a booking complaint, low: the store staff member sh-xh-s1 owns it
    case_id = event["case_id"]
    dispatch(routing_config, ev.CASE_SUBMITTED, event)
    assert wait_for(lambda: heard.of_type(ev.CASE_ROUTED))[0]["assignee"]["staff_id"] == "sh-xh-s1"

    # the day shift ends: sh-xh-s1 leaves, the evening's store staff member takes the case
    db = mongo_client[database_name(routing_config, "routing")]
    chart = org.load(ROOT / "deploy/seeds/org.yaml")
    cases, rosters = CaseRepository(db), RosterRepository(db)
    after_end = change + timedelta(seconds=5)
    handed = duty_flows.hand_over_at_shift_end(cases, rosters, chart, after_end)
    assert [case["_id"] for case, _ in handed] == [case_id]
    assert duty_flows.hand_over_at_shift_end(cases, rosters, chart, after_end) == []  # claimed once
    # published as the service's timer does (the relay would wait for `after_end`, ahead of the clock)
    publish = event_dispatcher(routing_config)
    for case, events in handed:
        cases.outbox.flush(case["_id"], events, lambda kind, payload: publish(ev.ROUTING, kind, payload))
    reassigned = wait_for(lambda: heard.of_type(ev.CASE_REASSIGNED), what="case_reassigned")[0]
    assert reassigned["reason"] == "shift_handover"
    assert (reassigned["previous_assignee"]["staff_id"], reassigned["assignee"]["staff_id"]) == \
        ("sh-xh-s1", "sh-xh-rv")
    case = web_session.get(f"/v1/cases/{case_id}").json()
    assert case["assignee"]["staff_id"] == "sh-xh-rv"
    entry = case["timeline"][-1]
    assert entry["action"] == "handed_over" and entry["actor"] == "system"
    assert (entry["from"], entry["to"], entry["shift"], entry["next_shift"]) == \
        ("sh-xh-s1", "sh-xh-rv", "day", "evening")

    # a manager hands it on to the supervisor
    moved = post(web_session, f"/v1/cases/{case_id}/reassign", {"staff_id": "sh-xh-sv", "reason": "需要主管跟进"})
    assert moved.status_code == 200 and moved.json()["assignee"]["staff_id"] == "sh-xh-sv"
    last = moved.json()["timeline"][-1]
    assert (last["action"], last["actor"], last["previous"], last["note"]) == \
        ("reassigned", "sh-xh-mg", "sh-xh-rv", "需要主管跟进")
    wait_for(lambda: len(heard.of_type(ev.CASE_REASSIGNED)) == 2, what="second case_reassigned")
    assert heard.of_type(ev.CASE_REASSIGNED)[1]["reason"] == "manager"
    again = post(web_session, f"/v1/cases/{case_id}/reassign", {"staff_id": "sh-xh-sv", "reason": "再次"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_assigned"
    elsewhere = post(web_session, f"/v1/cases/{case_id}/reassign", {"staff_id": "hz-xh-s1", "reason": "错店"})
    assert elsewhere.status_code == 422 and "staff_id" in elsewhere.json()["error"]["fields"]


def open_case(case_id, person, now):
    return {"_id": case_id, "case_number": f"CL-{case_id}", "store_id": STORE, "category": "booking",
            "severity": "low", "status": CaseStatus.ASSIGNED.value, "assignee": person.as_dict(), "version": 0,
            "locale": "zh-CN", "submitted_at": now, "updated_at": now,
            "timeline": [{"at": now, "action": "routed", "actor": "system"}]}


def test_each_shift_end_is_handed_over_once_by_one_of_several_replicas_and_taken_over_after_a_death(
        mongo_client, service_config):
    db = mongo_client[database_name(service_config, "routing")]
    CaseRepository.ensure_indexes(db)
    chart = org.load(ROOT / "deploy/seeds/org.yaml")
    now = utcnow().replace(second=0, microsecond=0)
    change = now + timedelta(minutes=10)
    rosters = RosterRepository(db)
    duty_flows.set_roster(rosters, chart, STORE, [
        {"shift_id": "day", "start": (now - timedelta(hours=2)).astimezone(SHANGHAI).time(),
         "end": change.astimezone(SHANGHAI).time(), "staff_ids": ["sh-xh-s1"], "weekdays": EVERY_DAY},
        {"shift_id": "evening", "start": change.astimezone(SHANGHAI).time(),
         "end": (change + timedelta(hours=3)).astimezone(SHANGHAI).time(), "staff_ids": ["sh-xh-rv"],
         "weekdays": EVERY_DAY}], None, "sh-xh-mg", now)
    cases = CaseRepository(db)
    for n in range(6):
        assert cases.insert(open_case(f"case-{n}", chart.staff["sh-xh-s1"], now))

    # a replica claimed this shift end and died before handing anything over
    ended = change
    dead = rosters.claim_shift_end(STORE, ended, ended)
    assert dead is not None
    assert duty_flows.hand_over_at_shift_end(cases, rosters, chart, ended + timedelta(seconds=1)) == []

    # its lease runs out: three replicas look at once, one hands every case over
    later = ended + timedelta(seconds=30)
    results = [[], [], []]
    threads = [eventlet.spawn(lambda i=i: results[i].extend(duty_flows.hand_over_at_shift_end(
        CaseRepository(db), RosterRepository(db), chart, later))) for i in range(3)]
    for thread in threads:
        thread.wait()
    handed = [case["_id"] for result in results for case, _ in result]
    assert sorted(handed) == [f"case-{n}" for n in range(6)]
    assert sum(1 for result in results if result) == 1
    for n in range(6):
        case = cases.get(f"case-{n}")
        assert case["assignee"]["staff_id"] == "sh-xh-rv"
        assert [e["action"] for e in case["timeline"]].count("handed_over") == 1
        assert [e["type"] for e in case["outbox"]] == [ev.CASE_REASSIGNED]
    assert db["shift_ends"].find_one({"store_id": STORE})["handed_over"] == 6


def test_the_routing_timer_hands_over_a_shift_that_just_ended(
        container_factory, routing_config, record_events, mongo_client):
    heard_here = record_events(ev.CASE_REASSIGNED)
    db = mongo_client[database_name(routing_config, "routing")]
    chart = org.load(ROOT / "deploy/seeds/org.yaml")
    ended = utcnow().replace(second=0, microsecond=0)  # the day shift ended at the last full minute
    duty_flows.set_roster(RosterRepository(db), chart, STORE, [
        {"shift_id": "day", "start": (ended - timedelta(hours=3)).astimezone(SHANGHAI).time(),
         "end": ended.astimezone(SHANGHAI).time(), "staff_ids": ["sh-xh-s1"], "weekdays": EVERY_DAY},
        {"shift_id": "evening", "start": ended.astimezone(SHANGHAI).time(),
         "end": (ended + timedelta(hours=3)).astimezone(SHANGHAI).time(), "staff_ids": ["sh-xh-rv"],
         "weekdays": EVERY_DAY}], None, "sh-xh-mg", ended - timedelta(hours=1))
    assert CaseRepository(db).insert(open_case("late-1", chart.staff["sh-xh-s1"], ended - timedelta(hours=2)))

    container_factory(RoutingService, dict(routing_config, DUTY_HANDOVER_INTERVAL_SECONDS=0.3)).start()
    reassigned = wait_for(lambda: heard_here.of_type(ev.CASE_REASSIGNED), what="case_reassigned")[0]
    assert (reassigned["case_id"], reassigned["reason"], reassigned["assignee"]["staff_id"]) == \
        ("late-1", "shift_handover", "sh-xh-rv")
    done = db["shift_ends"].find_one({"store_id": STORE})
    assert done["done"] is True and done["handed_over"] == 1 and done["ended_at"] == ended


def test_a_new_case_goes_to_whoever_holds_the_fewest_active_cases_counted_by_the_server(mongo_client, service_config):
    db = mongo_client[database_name(service_config, "routing")]
    CaseRepository.ensure_indexes(db)
    chart = org.load(ROOT / "deploy/seeds/org.yaml")
    now = utcnow()
    cases = CaseRepository(db)
    for n, (person, status) in enumerate([("sh-xh-rv", CaseStatus.ASSIGNED), ("sh-xh-rv", CaseStatus.INVESTIGATING),
                                          ("sh-xh-s1", CaseStatus.ASSIGNED), ("sh-xh-s1", CaseStatus.RESOLVED),
                                          ("sh-xh-s1", CaseStatus.CLOSED)]):
        assert cases.insert(dict(open_case(f"load-{n}", chart.staff[person], now), status=status.value))
    members = [p.staff_id for p in chart.active_staff() if p.store_id == STORE]
    assert cases.active_counts_at(STORE, members) == {"sh-xh-rv": 2, "sh-xh-s1": 1}  # resolved and closed: not held
    chosen = duty_flows.assignee_for(cases, RosterRepository(db), chart, STORE, "booking", "low", now)
    assert chosen.person.staff_id == "sh-xh-s1"  # without the counts, the tie would go to sh-xh-rv
