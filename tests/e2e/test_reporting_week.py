"""A seeded week of activity across several stores, regions and brands, published on the
bus as routing, intake and followup publish it, read back from reporting and notify run as
processes (the commands docker-compose.yml gives them): the KPI report by region and its
CSV, the weekly summary, the summary, and the weekly digest e-mailed to the regional
manager. Only the two services the reports need run, so the test takes seconds."""
import csv
import io
import uuid
from datetime import datetime, time, timedelta

import pytest
import requests
from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared.clock import CHINA, utcnow
from closeloop_shared.mongo import connect_service_db
from closeloop_shared.standins import free_port
from deploy import local
from services.reporting.repository import WAITING
from tests.fixtures import wait_for

pytestmark = pytest.mark.e2e

# the seed organisation (deploy/seeds/org.yaml): yueyan's east (SH, HZ) and south (GZ)
# regions; muyun's north (BJ), outside the caller's brand
SH, HZ, GZ, BJ = "SH-XH-001", "HZ-XH-002", "GZ-TH-003", "BJ-CY-101"
STAFF = {SH: "sh-xh-s1", HZ: "hz-xh-s1", GZ: "gz-th-s1", BJ: "bj-cy-s1"}
REFUND_B = {"type": "refund", "refund_option": "partial_continue", "amount_fen": 10_000}
REFUND_D = {"type": "refund", "refund_option": "full_stop", "amount_fen": 20_000}
COMPENSATION = {"type": "compensation", "amount_fen": 5_000}
APOLOGY = {"type": "apology"}
# (store, day of the week, category, customer, answered after h (None: never, breached),
#  resolved after h (None: open), on time?, root cause, remedy, revisit score)
WEEK = [
    (SH, 0, "hygiene", "M-1", 2, 20, True, "poor_communication", REFUND_B, 5),
    (SH, 1, "hygiene", "M-1", 2, 20, True, "poor_communication", APOLOGY, 2),  # the same problem again
    (SH, 2, "price", "M-2", None, None, None, None, None, None),              # never answered
    (HZ, 1, "service_quality", "M-3", 30, 60, False, "service_not_in_place", COMPENSATION, None),
    (HZ, 3, "product_efficacy", "M-4", 1, 10, True, "expectation_gap", REFUND_D, 4),
    (GZ, 2, "hygiene", "M-5", 3, 20, True, "poor_communication", APOLOGY, 5),
    (GZ, 4, "staff_attitude", "M-6", 2, None, None, None, None, None),
    (BJ, 0, "hygiene", "M-7", 2, 20, True, "unkept_promise", APOLOGY, None),
    (BJ, 5, "price", "M-8", 2, None, None, None, None, None),
    (SH, 6, "hygiene", "M-9", 2, None, None, None, None, None),
]


def last_monday():
    today = utcnow().astimezone(CHINA).date()
    return today - timedelta(days=today.weekday() + 7)


def case_events(monday, number, spec):
    store, day, category, member, answered, resolved, on_time, root, remedy, score = spec
    t0 = datetime.combine(monday + timedelta(days=day), time(10), tzinfo=CHINA)
    at = lambda hours: t0 + timedelta(hours=hours)  # noqa: E731
    case_id = uuid.uuid4().hex
    staff = {"staff_id": STAFF[store], "name": "店员", "role": "store_staff", "email": None}
    customer = {"name": "顾客", "phone": None, "email": None, "member_id": member}
    base = {"case_id": case_id, "case_number": f"CL-{t0:%Y%m%d}-{number:06d}", "store_id": store}
    events = [
        (ev.CASE_SUBMITTED, dict(base, store_name="店", channel="wechat", customer=customer, content="投诉",
                                 occurred_at=at(0), submitted_at=at(0))),
        (ev.CASE_ROUTED, dict(base, category=category, severity="low", assignee=staff, rung=0, routed_at=at(0),
                              deadlines={"first_response_due": at(24), "resolution_due": at(48)}))]
    breach = dict(base, severity="low", category=category, basis="wall", policy_id="default", policy_version=1,
                  rung=1, assignee=staff)
    if answered is None or answered > 24:
        events.append((ev.CASE_DEADLINE_BREACHED, dict(breach, clock="first_response", due_at=at(24),
                                                       breached_at=at(24))))
    if answered is not None:
        events.append((ev.CASE_FIRST_RESPONDED, dict(base, responded_at=at(answered), on_time=answered <= 24,
                                                     seconds_to_respond=answered * 3600)))
    if resolved is not None:
        if not on_time:
            events.append((ev.CASE_DEADLINE_BREACHED, dict(breach, clock="resolution", due_at=at(48),
                                                           breached_at=at(48))))
        events.append((ev.CASE_RESOLVED, dict(base, category=category, root_cause=root, resolved_at=at(resolved),
                                              on_time=on_time, remedy=remedy, resolution_round=1, customer=customer,
                                              revisit_owner=staff, resolved_by=staff["staff_id"])))
    if score is not None:
        events.append((ev.REVISIT_RECORDED, dict(base, revisit_id=f"r-{case_id}", round=1, score=score,
                                                 satisfied=score >= 4, reopens_case=score <= 2,
                                                 recorded_at=at(resolved + 24))))
    return events


@pytest.fixture
def services(stack_env, tmp_path):
    """start((name, {env}), ...) -> the base URL of each new process, once all are healthy."""
    processes = []
    commands = {name: command for name, (command, _) in local.compose_services().items()}

    def start(*wanted):
        started = []
        for name, overrides in wanted:
            port = free_port()
            log = open(tmp_path / f"{name}-{len(processes)}.log", "ab")
            process = local.start_service(name, commands[name], port,
                                          dict(stack_env, **{k: str(v) for k, v in overrides.items()}), log)
            processes.append(process)
            started.append((name, process, port))
        for name, process, port in started:
            local.wait_healthy(name, process, port, timeout=60)
        return [f"http://127.0.0.1:{port}" for _, _, port in started]
    yield start
    local.stop_all(processes)


def test_a_seeded_week_gives_the_expected_report_csv_summary_and_digest(services, stack_env, smtp_sink, token_keys):
    headers = token_keys.headers("cs-001", ttl=timedelta(hours=1))  # customer service: the yueyan brand
    # digests only from the replica started once the week is in (this one's first tick is an hour away)
    reporting, _ = services(("reporting", {"REPORTING_DIGEST_INTERVAL_SECONDS": 3600}), ("notify", {}))
    monday = last_monday()
    dispatch = event_dispatcher({"AMQP_URI": stack_env["AMQP_URI"]})
    published = for_reporting = 0
    for number, spec in enumerate(WEEK, start=1):
        for event_type, data in case_events(monday, number, spec):
            dispatch(ev.EMITTERS[event_type], event_type, ev.dump(event_type, data))
            published += 1
            for_reporting += any(service == "reporting" for service, _ in ev.SUBSCRIPTIONS.get(event_type, ()))
    client, reporting_db = connect_service_db(stack_env, "reporting")

    week = {"from": monday.isoformat(), "to": (monday + timedelta(days=6)).isoformat()}

    def get(path, **params):
        response = requests.get(reporting + path, params=params, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response

    def settled():  # events reach reporting on separate queues, in any order: until every one is
        # recorded and folded into the buckets (read from its database: reports lag by moments)
        if reporting_db["reporting_events"].count_documents({}) < for_reporting or \
                reporting_db["reporting_events"].find_one(WAITING, {"_id": 1}):
            return None
        body = get("/v1/reports/kpis", by="region", **week).json()
        seen = [(g["cases"], g["resolved"], g["satisfaction"]["revisits"], g["on_time"]["first_response"]["counted"],
                 sum(clock["total"] for clock in g["breaches"].values()), len(g["root_causes"]))
                for g in (body["groups"].get("east"), body["groups"].get("south")) if g]
        return body if seen == [(6, 4, 3, 6, 3, 3), (2, 1, 1, 2, 0, 1)] else None
    try:
        by_region = wait_for(settled, timeout=30, what=f"the week's {published} events counted")
    finally:
        client.close()

    assert set(by_region["groups"]) == {"east", "south"}  # muyun's region is outside the caller's brand
    east, south = by_region["groups"]["east"], by_region["groups"]["south"]
    assert (east["cases"], east["resolved"], east["escalated"], east["reopened"]) == (6, 4, 0, 0)
    assert east["on_time"]["first_response"] == {"counted": 6, "on_time": 4, "late": 1, "overdue": 1,
                                                 "rate": 0.6667, "target": 0.95}
    assert east["on_time"]["resolution"] == {"counted": 4, "on_time": 3, "late": 1, "overdue": 0,
                                             "rate": 0.75, "target": 0.95}
    assert east["breaches"] == {"first_response": {"total": 2, "by_rung": {"1": 2}},
                                "resolution": {"total": 1, "by_rung": {"1": 1}}}
    assert east["satisfaction"] == {"revisits": 3, "satisfied": 2, "unsatisfied": 1, "rate": 0.6667, "target": 0.9}
    assert east["repeat"]["30"]["cases"] == 1 and east["repeat"]["30"]["rate"] == 0.1667
    assert east["repeat"]["30"]["previous_rate"] is None  # nothing the week before
    assert east["remedies"] == {"B": {"count": 1, "fen": 10_000}, "D": {"count": 1, "fen": 20_000},
                                "apology": {"count": 1, "fen": 0}, "compensation": {"count": 1, "fen": 5_000}}
    assert east["root_causes"] == [
        {"root_cause": "poor_communication", "cases": 2, "share": 0.5, "cumulative": 0.5},
        {"root_cause": "expectation_gap", "cases": 1, "share": 0.25, "cumulative": 0.75},
        {"root_cause": "service_not_in_place", "cases": 1, "share": 0.25, "cumulative": 1.0}]
    assert (south["cases"], south["on_time"]["first_response"]["rate"], south["satisfaction"]["rate"]) == (2, 1.0, 1.0)

    rows = list(csv.DictReader(io.StringIO(get("/v1/reports/kpis", by="region", format="csv", **week).text)))
    assert [row["group"] for row in rows] == ["east", "south"]
    assert {k: rows[0][k] for k in ("cases", "resolved", "first_response_on_time_rate", "resolution_on_time_rate",
                                    "overdue", "breaches", "satisfaction_rate", "revisits", "repeat_30_rate",
                                    "remedies_fen", "top_root_cause")} == {
        "cases": "6", "resolved": "4", "first_response_on_time_rate": "0.6667", "resolution_on_time_rate": "0.75",
        "overdue": "1", "breaches": "3", "satisfaction_rate": "0.6667", "revisits": "3", "repeat_30_rate": "0.1667",
        "remedies_fen": "35000", "top_root_cause": "poor_communication"}
    assert rows[1]["cases"] == "2" and rows[1]["top_root_cause"] == "poor_communication"

    stores = get("/v1/reports/kpis", by="store", **week).json()["groups"]
    assert {store: group["cases"] for store, group in stores.items()} == {SH: 4, HZ: 2, GZ: 2}
    handlers = get("/v1/reports/kpis", by="staff", **week).json()["groups"]
    assert handlers["sh-xh-s1"] == {"assigned": 4, "resolved": 2, "resolved_on_time": 2, "on_time_rate": 1.0,
                                    "satisfaction": {"revisits": 2, "satisfied": 1, "unsatisfied": 1,
                                                     "rate": 0.5, "target": 0.9}}

    weekly = get("/v1/reports/weekly", week=monday.isoformat()).json()
    assert weekly["week"] == week
    assert {category: group["cases"] for category, group in weekly["categories"].items()} == {
        "hygiene": 4, "price": 1, "product_efficacy": 1, "service_quality": 1, "staff_attitude": 1}
    assert [c["root_cause"] for c in weekly["pareto_by_store"][HZ]] == ["expectation_gap", "service_not_in_place"]
    assert weekly["pareto_by_region"]["south"] == [
        {"root_cause": "poor_communication", "cases": 1, "share": 1.0, "cumulative": 1.0}]
    assert weekly["week_over_week"]["cases"] == {"now": 8, "before": 0, "change": 8}

    summary = get("/v1/reports/summary", **week).json()
    assert (summary["cases"], summary["open"], summary["remedies_fen"]) == (8, 3, 35_000)
    assert summary["by_status"] == {"resolved": 5, "assigned": 1, "investigating": 2}
    assert summary["first_response"] == {"counted": 8, "on_time": 6, "late_or_overdue": 2, "rate": 0.75}

    # the weekly digest: emitted once per region and brand (the new replica claims them), mailed by notify
    services(("reporting", {"REPORTING_DIGEST_INTERVAL_SECONDS": 0.5, "REPORTING_DIGEST_HOUR": 0}))
    mail = wait_for(lambda: smtp_sink.to("rm.east@yueyan.example"), timeout=30, what="the east digest")[0]
    assert mail["Subject"] == f"【周报】华东区 {week['from']} 至 {week['to']} 顾客反馈汇总"
    text = mail.get_body(("plain",)).get_content()
    assert "反馈数:6" in text and "首次回应及时率:66.7%" in text and "1. 沟通不良:2 件" in text
    brand = wait_for(lambda: smtp_sink.to("gm@yueyan.example"), timeout=30, what="the brand digest")[0]
    assert "反馈数:8" in brand.get_body(("plain",)).get_content()
