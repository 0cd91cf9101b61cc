"""A case's row as stored (read, changed by read_model.apply, written once per event)
is exactly what read_model.apply makes of the history, delivered out of order and twice; its pending increments are kept once per
event and folded into the buckets by one folder at a time."""
import uuid
from datetime import timedelta

import pytest
from closeloop_shared import events as ev
from closeloop_shared.clock import utcnow
from services.reporting import facts as pre
from services.reporting import flows, read_model
from services.reporting.repository import FOLDER, WAITING, AlreadyRecorded, FactsRepository, FoldRaced

pytestmark = pytest.mark.integration
STAFF = {"staff_id": "s", "name": "张丽", "role": "store_manager", "email": None}
CUSTOMER = {"name": "刘女士", "phone": "+8613812345678", "email": None}


def history(case_id, t0):
    at = lambda hours: t0 + timedelta(hours=hours)  # noqa: E731
    base = {"case_id": case_id, "case_number": "CL-20261124-000001", "store_id": "SH-XH-001"}
    resolved = lambda hours, round_, on_time: (ev.CASE_RESOLVED, dict(  # noqa: E731
        base, category="hygiene", remedy={"type": "apology"}, resolved_at=at(hours), on_time=on_time,
        resolution_round=round_, customer=CUSTOMER, revisit_owner=STAFF))
    return [
        (ev.CASE_SUBMITTED, dict(base, store_name="店", channel="web", customer=CUSTOMER, content="脏",
                                 occurred_at=at(0), submitted_at=at(0))),
        (ev.CASE_ROUTED, dict(base, category="hygiene", severity="low", assignee=STAFF, rung=0,
                              deadlines={"first_response_due": at(24), "resolution_due": at(48)}, routed_at=at(0),
                              classified_by="model", model_version="triage-aaaaaaaaaaaa", confidence=0.41)),
        (ev.CASE_RECLASSIFIED, dict(base, event_id="e1", correction_id=f"{case_id}:2", previous_category="hygiene",
                                    category="equipment", model_category="hygiene",
                                    model_version="triage-aaaaaaaaaaaa", by_role="supervisor",
                                    reclassified_at=at(2))),
        (ev.CASE_ESCALATED, dict(base, severity="low", reason="first_response", rung=1, assignee=STAFF,
                                 escalated_at=at(25))),
        (ev.CASE_ESCALATED, dict(base, severity="low", reason="resolution", rung=2, assignee=STAFF,
                                 escalated_at=at(49))),
        (ev.CASE_FIRST_RESPONDED, dict(base, responded_at=at(26), on_time=False, seconds_to_respond=93600)),
        resolved(30, 1, True),
        (ev.REVISIT_RECORDED, dict(base, revisit_id="r1", round=1, score=1, satisfied=False, reopens_case=True,
                                   recorded_at=at(40))),
        (ev.CASE_REOPENED, dict(base, reason="score 1", source="revisit", reopened_at=at(41),
                                resolution_due=at(89))),
        resolved(60, 2, True),
    ]


def test_storage_matches_the_pure_read_model(mongo_client, mongo_prefix):
    FactsRepository.ensure_indexes(mongo_client[f"{mongo_prefix}_reporting"])
    facts = FactsRepository(mongo_client[f"{mongo_prefix}_reporting"])
    case_id = uuid.uuid4().hex
    now = utcnow()
    t0 = now.replace(microsecond=now.microsecond // 1000 * 1000)  # BSON keeps milliseconds
    events = [(kind, ev.load(kind, ev.dump(kind, data))) for kind, data in history(case_id, t0)]
    shuffled = events[::-1] + events[3:] + events[:3]  # reversed, then again in another order

    expected = {}
    for kind, data in shuffled:
        change = read_model.project(kind, data)
        expected = read_model.apply(expected, change)
        flows.project(facts, kind, data, {})

    stored = facts.facts.find_one({"_id": case_id}, {"_id": 0, "case_id": 0, "counted": 0, "repeat_gap_days": 0})
    assert stored == expected
    assert stored["status"] == "resolved" and stored["resolution_round"] == 2 and stored["top_rung"] == 2
    assert len(stored["corrections"]) == 1 and stored["corrected_category"] == "equipment"  # delivered twice


def test_pending_increments_are_kept_once_per_event_and_folded_into_buckets_by_one_folder(mongo_client, mongo_prefix):
    db = mongo_client[f"{mongo_prefix}_reporting"]
    FactsRepository.ensure_indexes(db)
    facts, replica = FactsRepository(db), FactsRepository(db)
    now = utcnow()
    day, month = "store:SH-1:day:2026-11-24", "store:SH-1:month:2026-11"
    record = lambda key, at, increments: facts.record(key, ev.CASE_SUBMITTED, {}, at, {}, increments)  # noqa: E731
    record("case_submitted:a", now, [[day, "c.hygiene.cases", 1], [month, "c.hygiene.cases", 1]])
    record("case_submitted:b", now + timedelta(seconds=1), [[day, "c.hygiene.cases", 1]])
    record("case_routed:b", now + timedelta(seconds=2), [])  # adds nothing: nothing waits
    with pytest.raises(AlreadyRecorded):  # a redelivery cannot queue its event twice
        record("case_submitted:a", now, [[day, "c.hygiene.cases", 1]])
    assert facts.backlog() == 2
    assert [p["_id"] for p in facts.pending_batch(1)] == ["case_submitted:a"]  # oldest first

    with facts.folding() as held:
        assert held
        with replica.folding() as also:  # another worker: not while this one folds
            assert not also
        assert db["report_folder"].find_one({"_id": FOLDER})["lease_owner"]  # other replicas see the lease
        pending = facts.pending_batch(10)
        facts.increment(pre.folded(p["increments"] for p in pending))
        facts.unqueue([p["_id"] for p in pending])
    assert db["report_buckets"].find_one({"_id": day}) == {
        "_id": day, **pre.bucket_fields(day), "c": {"hygiene": {"cases": 2}}}
    assert db["report_buckets"].find_one({"_id": month})["c"]["hygiene"]["cases"] == 1
    assert facts.backlog() == 0
    assert db["reporting_events"].count_documents({}) == 3  # the records stay, for replay
    assert db["reporting_events"].count_documents(WAITING) == 0
    assert "increments" not in db["reporting_events"].find_one({"_id": "case_submitted:a"})
    with pytest.raises(FoldRaced):  # folded already: another folder applied it
        facts.unqueue(["case_submitted:a"])

    with pytest.raises(RuntimeError):
        with replica.folding() as held:
            assert held
            raise RuntimeError("a fold failed")
    with facts.folding() as held:  # a failed fold frees the folder at once
        assert held
