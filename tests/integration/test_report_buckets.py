"""The pre-aggregated read model on the MongoDB-protocol server: events taken in once
however often delivered, in any order; a replay of the recorded events rebuilds buckets
equal to the live ones; a report reads them by scope."""
import uuid
from datetime import date, datetime, time, timedelta

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher

from closeloop_shared import events as ev
from closeloop_shared.clock import CHINA, utcnow
from closeloop_shared.org import Brand, Organisation, Region, Store
from services.reporting import facts, flows, replay, reports
from services.reporting.repository import FOLDER, REBUILD, WAITING, FactsRepository
from services.reporting.service import ReportingService
from tests.fixtures import wait_for

pytestmark = pytest.mark.integration
STAFF = {"staff_id": "sh-mg", "name": "张丽", "role": "store_manager", "email": None}
ORG = Organisation(
    brands={"meili": Brand("meili", "美丽")},
    regions={"east": Region("east", "华东", "meili"), "south": Region("south", "华南", "meili")},
    stores={"SH-1": Store("SH-1", "上海一店", "east"), "SH-2": Store("SH-2", "上海二店", "east"),
            "GZ-1": Store("GZ-1", "广州店", "south")})


def history(case_id, store, t0, phone, category="hygiene", on_time=True, root_cause="poor_communication"):
    at = lambda hours: t0 + timedelta(hours=hours)  # noqa: E731
    customer = {"name": "刘女士", "phone": phone, "email": None}
    base = {"case_id": case_id, "case_number": f"CL-{case_id[:6]}", "store_id": store}
    events = [
        (ev.CASE_SUBMITTED, dict(base, store_name="店", channel="web", customer=customer, content="脏",
                                 occurred_at=at(0), submitted_at=at(0))),
        (ev.CASE_ROUTED, dict(base, category=category, severity="low", assignee=STAFF, rung=0, routed_at=at(0),
                              deadlines={"first_response_due": at(24), "resolution_due": at(48)})),
        (ev.CASE_FIRST_RESPONDED, dict(base, responded_at=at(2 if on_time else 30), on_time=on_time,
                                       seconds_to_respond=7200)),
        (ev.CASE_RESOLVED, dict(base, category=category, root_cause=root_cause, resolved_at=at(20), on_time=True,
                                remedy={"type": "refund", "refund_option": "partial_continue", "amount_fen": 10_000},
                                resolution_round=1, customer=customer, revisit_owner=STAFF)),
        (ev.REVISIT_RECORDED, dict(base, revisit_id=f"r-{case_id}", round=1, score=5, satisfied=True,
                                   reopens_case=False, recorded_at=at(80))),
    ]
    if not on_time:
        events.append((ev.CASE_DEADLINE_BREACHED, dict(
            base, severity="low", category=category, clock="first_response", basis="wall", policy_id="p",
            policy_version=1, due_at=at(24), breached_at=at(24), rung=1, assignee=STAFF)))
    return [(kind, ev.dump(kind, data)) for kind, data in events]


@pytest.fixture
def db(mongo_client, mongo_prefix):
    database = mongo_client[f"{mongo_prefix}_reporting"]
    FactsRepository.ensure_indexes(database)
    FactsRepository.ensure_indexes(database, REBUILD)
    return database


def take_all(repository, events):
    for kind, payload in events:
        flows.take_in(repository, kind, payload, utcnow(), ORG)


def test_redelivered_and_reordered_events_count_once_and_a_replay_equals_the_live_model(db):
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=3)
    first = history(uuid.uuid4().hex, "SH-1", t0, "+8613800000001")
    repeat = history(uuid.uuid4().hex, "SH-1", t0 + timedelta(days=1), "+8613800000001", on_time=False)
    other = history(uuid.uuid4().hex, "GZ-1", t0, "+8613800000002", category="price", root_cause="expectation_gap")
    take_all(live, first + repeat[::-1] + other)
    take_all(live, first[2:] + repeat)  # redelivered

    span = reports.span_of(t0 - timedelta(days=1), t0 + timedelta(days=3))
    body = reports.report(live, reports.GroupBy.NONE, reports.plan(reports.GroupBy.NONE, ORG, None), span)
    whole = body["groups"]["all"]
    assert whole["cases"] == 3 and whole["resolved"] == 3
    assert whole["on_time"]["first_response"] == {"counted": 3, "on_time": 2, "late": 1, "overdue": 0,
                                                  "rate": 0.6667, "target": 0.95}
    assert whole["breaches"] == {"first_response": {"total": 1, "by_rung": {"1": 1}}}
    assert whole["remedies"] == {"B": {"count": 3, "fen": 30_000}}
    assert whole["repeat"]["30"]["cases"] == 1  # the same customer, the same category, a day later
    assert whole["satisfaction"]["satisfied"] == 3
    assert [cause["root_cause"] for cause in whole["root_causes"]] == ["poor_communication", "expectation_gap"]

    by_region = reports.report(live, reports.GroupBy.REGION, reports.plan(reports.GroupBy.REGION, ORG, None), span)
    assert {name: group["cases"] for name, group in by_region["groups"].items()} == {"east": 2, "south": 1}
    # a store manager of SH-1 reads only SH-1's buckets
    mine = reports.report(live, reports.GroupBy.CATEGORY, reports.plan(
        reports.GroupBy.CATEGORY, ORG, frozenset({"SH-1"})), span)
    assert {name: group["cases"] for name, group in mine["groups"].items()} == {"hygiene": 2}
    assert "price" not in reports.csv_text(mine)

    rebuilt = FactsRepository(db, REBUILD)
    assert flows.rebuild(live, rebuilt) == len(first) + len(repeat) + len(other)
    assert flows.differences(live, rebuilt) == {}


def test_a_correction_moves_the_case_between_categories_and_the_replay_agrees(db):
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=1)
    case_id = uuid.uuid4().hex
    events = history(case_id, "SH-2", t0, "+8613800000003")
    events.append((ev.CASE_RECLASSIFIED, ev.dump(ev.CASE_RECLASSIFIED, {
        "event_id": uuid.uuid4().hex, "correction_id": f"{case_id}:3", "case_id": case_id,
        "case_number": "CL-1", "store_id": "SH-2", "previous_category": "hygiene", "category": "equipment",
        "by_role": "supervisor", "reclassified_at": t0 + timedelta(hours=1)})))
    take_all(live, events)
    span = reports.span_of(t0 - timedelta(days=1), t0 + timedelta(days=1))
    body = reports.report(live, reports.GroupBy.CATEGORY, reports.plan(
        reports.GroupBy.CATEGORY, ORG, frozenset({"SH-2"})), span)
    assert {name: group["cases"] for name, group in body["groups"].items() if group["cases"]} == {"equipment": 1}

    rebuilt = FactsRepository(db, REBUILD)
    flows.rebuild(live, rebuilt)
    assert flows.differences(live, rebuilt) == {}


def test_a_repeat_counts_whichever_case_the_read_model_hears_of_first(db):
    """The later case's events may come before the earlier case's category (separate
    queues, a backlog draining): the repeat is found when the earlier case is complete."""
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=3)
    earlier = history(uuid.uuid4().hex, "SH-1", t0, "+8613800000011")
    later = history(uuid.uuid4().hex, "SH-1", t0 + timedelta(days=1), "+8613800000011")
    take_all(live, later + earlier[::-1])
    span = reports.span_of(t0 - timedelta(days=1), t0 + timedelta(days=2))
    whole = reports.report(live, reports.GroupBy.NONE, reports.plan(reports.GroupBy.NONE, ORG, None), span)
    assert (whole["groups"]["all"]["cases"], whole["groups"]["all"]["repeat"]["30"]["cases"]) == (2, 1)
    rebuilt = FactsRepository(db, REBUILD)
    flows.rebuild(live, rebuilt)
    assert flows.differences(live, rebuilt) == {}


def test_two_cases_of_a_customer_completed_at_the_same_moment_still_find_their_repeat(db):
    """Each case's routing gives it its category while the other's does the same: both
    transactions read the other case before either commits (snapshots). The customer's
    mark makes them conflict, so one is retried and finds the repeat."""

    class BothReadFirst(FactsRepository):  # each reads the customer's cases, then waits for the other
        def customer_cases(self, row, window_days, session=None):
            found = super().customer_cases(row, window_days, session)
            eventlet.sleep(0.2)
            return found

    live = BothReadFirst(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=3)
    earlier = history(uuid.uuid4().hex, "SH-1", t0, "+8613800000012")
    later = history(uuid.uuid4().hex, "SH-1", t0 + timedelta(days=1), "+8613800000012")
    take_all(live, [earlier[0], later[0]])  # submitted: no category yet
    pool = eventlet.GreenPool()
    for routed in (earlier[1], later[1]):
        pool.spawn(take_all, live, [routed])
    pool.waitall()
    flows.fold_all(live)
    span = reports.span_of(t0 - timedelta(days=1), t0 + timedelta(days=2))
    whole = reports.report(live, reports.GroupBy.NONE, reports.plan(reports.GroupBy.NONE, ORG, None), span)
    assert (whole["groups"]["all"]["cases"], whole["groups"]["all"]["repeat"]["30"]["cases"]) == (2, 1)


def test_the_replay_command_rebuilds_and_proves_equality(db, mongo_uri, mongo_prefix, monkeypatch, capsys):
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=2)
    take_all(live, history(uuid.uuid4().hex, "SH-1", t0, "+8613800000004", on_time=False))
    monkeypatch.setenv("MONGO_URI", mongo_uri)
    monkeypatch.setenv("MONGO_DB_PREFIX", mongo_prefix)
    assert replay.main([]) == 0
    captured = capsys.readouterr()
    assert "6 events replayed; the rebuild equals the live model" in captured.out
    assert "6/6" in captured.err  # the progress bar

    # a live bucket changed behind the read model's back: the replay says where
    db["report_buckets"].update_one({"_id": f"store:SH-1:month:{t0.astimezone(CHINA):%Y-%m}"},
                                    {"$inc": {"c.hygiene.cases": 1}})
    assert replay.main([]) == 1
    assert f"differs: store:SH-1:month:{t0.astimezone(CHINA):%Y-%m}" in capsys.readouterr().out

    # promoted (as after an upgrade that changed what the buckets count): the rebuild is live
    assert replay.main(["--promote"]) == 0
    assert "the rebuild is now the live model (1 buckets changed)" in capsys.readouterr().out
    assert db["report_buckets"].find_one({"_id": f"store:SH-1:month:{t0.astimezone(CHINA):%Y-%m}"})[
        "c"]["hygiene"]["cases"] == 1
    assert "rebuild_report_buckets" not in db.list_collection_names()
    assert replay.main([]) == 0


def test_the_weekly_summary_has_categories_paretos_and_trends(db):
    live = FactsRepository(db)
    now = utcnow().replace(microsecond=0)
    monday = now.astimezone(CHINA).date() - timedelta(days=now.astimezone(CHINA).weekday() + 7)
    at_noon = lambda day: datetime.combine(day, time(12), tzinfo=CHINA)  # noqa: E731
    take_all(live, history(uuid.uuid4().hex, "SH-1", at_noon(monday + timedelta(days=1)), "+8613800000005"))
    take_all(live, history(uuid.uuid4().hex, "GZ-1", at_noon(monday + timedelta(days=2)), "+8613800000006",
                           category="price", root_cause="expectation_gap", on_time=False))
    take_all(live, history(uuid.uuid4().hex, "SH-2", at_noon(monday - timedelta(days=3)), "+8613800000007"))

    body = reports.weekly(live, reports.plan(reports.GroupBy.NONE, ORG, None), ORG, monday + timedelta(days=4))
    assert body["week"] == {"from": monday.isoformat(), "to": (monday + timedelta(days=6)).isoformat()}
    assert {name: group["cases"] for name, group in body["categories"].items()} == {"hygiene": 1, "price": 1}
    assert body["pareto_by_store"] == {
        "SH-1": [{"root_cause": "poor_communication", "cases": 1, "share": 1.0, "cumulative": 1.0}],
        "GZ-1": [{"root_cause": "expectation_gap", "cases": 1, "share": 1.0, "cumulative": 1.0}]}
    assert set(body["pareto_by_region"]) == {"east", "south"}
    assert body["week_over_week"]["cases"] == {"now": 2, "before": 1, "change": 1}
    assert body["week_over_week"]["first_response_rate"] == {"now": 0.5, "before": 1.0, "change": -0.5}

    # a store manager's summary covers their store only
    mine = reports.weekly(live, reports.plan(reports.GroupBy.NONE, ORG, frozenset({"SH-1"})), ORG, monday)
    assert set(mine["pareto_by_store"]) == {"SH-1"} and mine["pareto_by_region"] == {}


def test_last_weeks_digest_is_started_once_per_region_and_brand_from_monday_morning(db):
    live = FactsRepository(db)
    FactsRepository.ensure_indexes(db)
    this_monday = date(2026, 11, 23)
    take_all(live, history(uuid.uuid4().hex, "SH-1", datetime.combine(
        this_monday - timedelta(days=5), time(12), tzinfo=CHINA), "+8613800000008"))
    sunday_night = datetime.combine(this_monday, time(8, 59), tzinfo=CHINA)
    assert flows.weekly_digests(live, ORG, sunday_night, hour=9) == []

    monday_morning = datetime.combine(this_monday, time(9, 5), tzinfo=CHINA)
    started = dict(flows.weekly_digests(live, ORG, monday_morning, hour=9))
    assert set(started) == {"2026-11-16:region:east", "2026-11-16:region:south", "2026-11-16:brand:meili"}
    east = ev.load(ev.WEEKLY_DIGEST_READY, started["2026-11-16:region:east"]["payload"])
    assert (east["cases"], east["cases_change"], east["first_response_rate"]) == (1, 1, 1.0)
    assert east["week_from"] == date(2026, 11, 16) and east["root_causes"][0]["root_cause"] == "poor_communication"
    # whom notify tells: the organisation here has no staff, so nobody; its first store for the group robot
    assert (east["unit_name"], east["store_id"], east["managers"]) == ("华东", "SH-1", [])
    assert flows.weekly_digests(live, ORG, monday_morning + timedelta(hours=1), hour=9) == []  # once

    published = []
    for digest_id, event in started.items():
        live.digest_outbox.flush(digest_id, [event], lambda kind, payload: published.append(kind))
    assert published == [ev.WEEKLY_DIGEST_READY] * 3
    assert live.digest_outbox.relay(lambda kind, payload: published.append(kind), monday_morning) == 0


def test_programme_revisits_count_once_with_unreachable_customers_apart(db):
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=1)
    ended = [ev.dump(ev.REVISIT_TASK_COMPLETED, {
        "event_id": uuid.uuid4().hex, "task_id": f"t{i}", "store_id": "SH-1", "owner_id": "sh-rv", "tier": "key",
        "purpose": "care", "status": status, "attempts": 3, "score": score, "planned_at": t0, "completed_at": t0})
        for i, (status, score) in enumerate([("completed", 5), ("completed", 2), ("unreachable", None)])]
    for payload in ended + ended[:1]:  # one redelivered
        flows.take_in(live, ev.REVISIT_TASK_COMPLETED, payload, utcnow(), ORG)
    span = reports.span_of(t0 - timedelta(days=1), t0 + timedelta(days=1))
    body = reports.report(live, reports.GroupBy.REGION, reports.plan(reports.GroupBy.REGION, ORG, None), span)
    assert body["groups"]["east"]["revisit_programme"] == {
        "ended": 3, "completed": 2, "unreachable": 1, "completion_rate": 0.6667, "scored": 2, "satisfied": 1,
        "satisfaction_rate": 0.5, "target": 0.9}
    rebuilt = FactsRepository(db, REBUILD)
    flows.rebuild(live, rebuilt)
    assert flows.differences(live, rebuilt) == {}


def test_concurrent_deliveries_to_the_same_buckets_count_exactly(db):
    """Handlers run side by side (several workers, several replicas): transactions that
    touch the same store, region and brand buckets conflict and retry, and every count
    stays exact, redeliveries included."""
    from concurrent.futures import ThreadPoolExecutor
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=1)
    events = [event for i in range(12)
              for event in history(uuid.uuid4().hex, "SH-1", t0, f"+86139000000{i:02d}")[:3]]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda event: flows.take_in(live, event[0], event[1], utcnow(), ORG), events + events[:6]))
    flows.fold_all(live)  # what a handler left while another folded (the service's timer does it within moments)
    span = reports.span_of(t0 - timedelta(days=1), t0 + timedelta(days=1))
    whole = reports.report(live, reports.GroupBy.NONE, reports.plan(reports.GroupBy.NONE, ORG, None), span)
    assert whole["groups"]["all"]["cases"] == 12
    assert whole["groups"]["all"]["on_time"]["first_response"]["on_time"] == 12
    rebuilt = FactsRepository(db, REBUILD)
    flows.rebuild(live, rebuilt)
    assert flows.differences(live, rebuilt) == {}


def day_totals(live, t0):
    """The whole organisation's counts on t0's China day, read from the buckets only."""
    span = reports.span_of(t0, t0)
    return reports.report(live, reports.GroupBy.NONE, reports.plan(reports.GroupBy.NONE, ORG, None), span)[
        "groups"]["all"]


def test_many_events_for_one_store_and_day_delivered_concurrently_and_twice_count_exactly_once(db):
    """Ten workers take in events of forty cases of two stores of one region on one day
    (every bucket of theirs shared), each event twice, duplicates racing each other: the
    handlers never write the shared buckets (while another replica holds the folder, none
    exists), every increment waits once under its event's key, and folding counts each
    event exactly once; then more, with the handlers folding as they go."""
    from concurrent.futures import ThreadPoolExecutor
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=1)
    cases = [history(uuid.uuid4().hex, "SH-1" if i % 2 else "SH-2", t0, f"+86137000000{i:02d}")[:3]
             for i in range(40)]
    first, second = [e for case in cases[:20] for e in case], [e for case in cases[20:] for e in case]

    def deliver(events):
        twice = [event for pair in zip(events, events) for event in pair]
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda event: flows.take_in(live, event[0], event[1], utcnow(), ORG), twice))

    elsewhere = live.folder_leases.lease_fields()  # another replica is folding (and takes long)
    db["report_folder"].insert_one({"_id": FOLDER, **elsewhere})
    deliver(first)
    assert db["report_buckets"].count_documents({}) == 0  # no handler touched a bucket
    assert db["reporting_events"].count_documents({}) == 60
    waiting = list(db["reporting_events"].find(WAITING))
    assert 20 <= live.backlog() == len(waiting) <= 60  # each case adds to them at least once
    region_day = f"region:east:day:{t0.astimezone(CHINA).date().isoformat()}"
    assert facts.folded(p["increments"] for p in waiting)[region_day]["c.hygiene.cases"] == 20  # each case once
    assert day_totals(live, t0)["cases"] == 0  # reports read buckets only

    db["report_folder"].update_one({"_id": FOLDER}, {"$set": {"lease_until": utcnow() - timedelta(seconds=1)}})
    deliver(second)  # the folder is free again: handlers fold as they go
    flows.fold_all(live)
    assert live.backlog() == 0
    whole = day_totals(live, t0)
    assert whole["cases"] == 40 and whole["on_time"]["first_response"]["on_time"] == 40
    stores = reports.report(live, reports.GroupBy.STORE, reports.plan(reports.GroupBy.STORE, ORG, None),
                            reports.span_of(t0, t0))["groups"]
    assert (stores["SH-1"]["cases"], stores["SH-2"]["cases"]) == (20, 20)
    day = db["report_buckets"].find_one({"_id": region_day})
    assert day["c"]["hygiene"]["cases"] == 40 and day["c"]["hygiene"]["status:investigating"] == 40
    assert "status:new" not in day["c"]["hygiene"] or day["c"]["hygiene"]["status:new"] == 0

    rebuilt = FactsRepository(db, REBUILD)
    assert flows.rebuild(live, rebuilt) == 120
    assert flows.differences(live, rebuilt) == {}


def test_a_fold_interrupted_part_way_loses_and_doubles_nothing(db, monkeypatch):
    """A fold that fails after incrementing the buckets (inside its transaction) and
    before dropping the pending increments commits nothing and frees the folder; the
    next fold applies everything once. A folder that dies holding the lease holds up
    folding only until its lease runs out."""
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=2)
    events = [e for i in range(3) for e in history(uuid.uuid4().hex, "SH-1", t0, f"+86136000000{i:02d}")]
    dead_folder = live.folder_leases.lease_fields()  # a replica died while folding
    db["report_folder"].insert_one({"_id": FOLDER, **dead_folder})
    take_all(live, events)
    assert live.backlog() == len(events) and flows.fold(live) == 0

    db["report_folder"].update_one({"_id": FOLDER}, {"$set": {"lease_until": utcnow() - timedelta(seconds=1)}})
    unqueue = FactsRepository.unqueue

    def broken(self, keys, session=None):
        unqueue(self, keys[:1], session=session)  # some of the pending increments are dropped, then
        raise ConnectionResetError("the folder lost its connection mid-fold")
    monkeypatch.setattr(FactsRepository, "unqueue", broken)
    with pytest.raises(ConnectionResetError):
        flows.fold(live)
    assert db["report_buckets"].count_documents({}) == 0 and live.backlog() == len(events)
    assert db["report_folder"].find_one({"_id": FOLDER})["lease_owner"] is None  # released for the next

    monkeypatch.setattr(FactsRepository, "unqueue", unqueue)
    assert flows.fold(live) == len(events)
    assert flows.fold(live) == 0 and live.backlog() == 0
    whole = day_totals(live, t0)
    assert (whole["cases"], whole["resolved"], whole["satisfaction"]["satisfied"]) == (3, 3, 3)
    rebuilt = FactsRepository(db, REBUILD)
    flows.rebuild(live, rebuilt)
    assert flows.differences(live, rebuilt) == {}


def test_the_service_counts_events_of_one_store_and_day_delivered_twice_at_once_exactly_once(
        container_factory, service_config, web_config, web_session, mongo_client, mongo_prefix):
    """Through RabbitMQ: thirty cases of two stores of one region on one day, each event
    published twice, taken in by ten workers at once: each counted once in the shared
    buckets, nothing left waiting, the backlog gauge back at zero."""
    config = dict(service_config, **web_config)
    container_factory(ReportingService, config).start()
    db = mongo_client[f"{mongo_prefix}_reporting"]
    dispatch = event_dispatcher(config)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=1)
    stores = ("SH-XH-001", "HZ-XH-002")  # the seed organisation's east region
    for i in range(30):
        for kind, payload in history(uuid.uuid4().hex, stores[i % 2], t0, f"+86135000000{i:02d}")[:3]:
            dispatch(ev.EMITTERS[kind], kind, payload)
            dispatch(ev.EMITTERS[kind], kind, payload)
    # one more case a week earlier, last on each queue: once it is in, the duplicates before it are too
    last = history(uuid.uuid4().hex, stores[0], t0 - timedelta(days=7), "+8613500000099")[:3]
    for kind, payload in last:
        dispatch(ev.EMITTERS[kind], kind, payload)

    live = FactsRepository(db)
    wait_for(lambda: db["reporting_events"].count_documents({}) == 93 and live.backlog() == 0, timeout=60,
             what="every event taken in and folded")
    day = db["report_buckets"].find_one({"_id": f"region:east:day:{t0.astimezone(CHINA).date().isoformat()}"})
    assert day["c"]["hygiene"]["cases"] == 30 and day["c"]["hygiene"]["status:investigating"] == 30
    assert day["c"]["hygiene"]["first_response:on_time"] == 30
    assert "closeloop_report_pending_increments 0.0" in web_session.get("/metrics").text


def test_what_an_older_release_left_pending_is_folded_once_beside_the_new_records(db):
    """An older release kept each event's increments in `pending_increments` (one
    document per event); during an upgrade its replicas may still add some there while
    new replicas keep them on the records. fold_legacy folds the old ones under the same
    folder lease, each once, and the buckets count every event once."""
    live = FactsRepository(db)
    t0 = utcnow().replace(microsecond=0) - timedelta(days=1)
    db["pending_increments"].create_index([("queued_at", 1)])  # as the older release made it
    folder_elsewhere = live.folder_leases.lease_fields()  # nobody folds while the old release's queue is built
    db["report_folder"].insert_one({"_id": FOLDER, **folder_elsewhere})
    take_all(live, [e for i in range(4) for e in history(uuid.uuid4().hex, "SH-1", t0, f"+86137000000{i:02d}")])
    old = list(db["reporting_events"].find(WAITING, {"queued_at": 1, "increments": 1}).sort("queued_at", 1))
    half = [record["_id"] for record in old[: len(old) // 2]]  # half of them as the older release kept them
    db["pending_increments"].insert_many([record for record in old if record["_id"] in half])
    db["reporting_events"].update_many({"_id": {"$in": half}}, {"$unset": {"queued_at": "", "increments": ""}})
    assert flows.fold_legacy(live) == 0  # another replica holds the folder: not now
    db["report_folder"].update_one({"_id": FOLDER}, {"$set": {"lease_until": utcnow() - timedelta(seconds=1)}})

    assert flows.fold_legacy(live) == len(half)
    assert flows.fold_legacy(live) == 0  # each once
    assert db["pending_increments"].count_documents({}) == 0  # taken off as the older release does
    assert live.backlog() == len(old) - len(half)  # the new ones wait on their records
    flows.fold_all(live)
    assert day_totals(live, t0)["cases"] == 4
    rebuilt = FactsRepository(db, REBUILD)
    flows.rebuild(live, rebuilt)
    assert flows.differences(live, rebuilt) == {}


def test_a_redelivered_event_returns_no_row_to_count_again(db):
    """take_in's row is for counting a case once (the resolution-time histogram): a
    redelivery, whose record fails at the end of its transaction, returns None."""
    live = FactsRepository(db)
    events = history(uuid.uuid4().hex, "SH-1", utcnow() - timedelta(days=1), "+8613700000099")
    resolved = next(event for event in events if event[0] == ev.CASE_RESOLVED)
    take_all(live, events)
    assert flows.take_in(live, *resolved, utcnow(), ORG) is None
