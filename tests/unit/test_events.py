"""closeloop_shared/events.py: the bus contract."""
import json
from datetime import date, datetime, timedelta, timezone

from pathlib import Path

import pytest
from marshmallow import ValidationError

from closeloop_shared import events as ev
from closeloop_shared import org

T = datetime(2026, 11, 24, 1, 30, tzinfo=timezone.utc)
CUSTOMER = {"name": "刘女士", "phone": "+8613812345678", "email": "liu@example.com",
            "member_id": "VIP-0042"}
STAFF = {"staff_id": "sh-xh-mg", "name": "张丽", "role": "store_manager",
         "email": "zhang.li@yueyan.example"}
REGIONAL = {"staff_id": "rm-east", "name": "陈立华", "role": "regional_manager",
            "email": "rm.east@yueyan.example"}

LIFECYCLE = {"event_id": "9d1c2b3a4f5e6d7c", "case_id": "c1", "case_number": "CL-20261124-000001",
             "store_id": "SH-XH-001", "actor": "sh-xh-mg", "at": T}

SAMPLES = {
    ev.CASE_SUBMITTED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "store_name": "上海徐汇店", "channel": "hotline", "customer": CUSTOMER,
        "content": "做完面部护理后脸上红肿刺痛", "occurred_at": T - timedelta(hours=3),
        "submitted_at": T, "category": "technician_skill",
        "external_ref": {"source": "meituan", "id": "MT-1"},
        "service_context": {"service_item": "面部护理", "technician": "王小雨", "appointment_id": "A-1"},
        "locale": "zh-CN", "submitted_by": {"kind": "integration", "client_id": "pos", "staff_id": None},
        "referral": None},
    ev.CASE_ROUTED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "category": "hygiene", "severity": "high", "assignee": STAFF, "rung": 2,
        "deadlines": {"first_response_due": T + timedelta(hours=24),
                      "resolution_due": T + timedelta(hours=48), "report_due": None,
                      "update_due": T + timedelta(hours=8)},
        "routed_at": T, "locale": "en", "policy_id": "default", "ack_due_at": T + timedelta(hours=2),
        "informed": [], "referral": None},
    ev.CASE_ESCALATED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "severity": "critical", "reason": "unacknowledged", "rung": 3, "role": "regional_manager",
        "previous_assignee": STAFF, "assignee": REGIONAL, "notified": [REGIONAL],
        "ack_due_at": T + timedelta(hours=4), "escalated_at": T, "due_at": T - timedelta(seconds=1),
        "locale": "zh-CN"},
    ev.CASE_DEADLINE_APPROACHED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "severity": "medium", "clock": "first_response", "basis": "wall", "due_at": T + timedelta(hours=2),
        "warned_at": T, "assignee": STAFF, "locale": "zh-CN"},
    ev.CASE_DEADLINE_BREACHED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "severity": "medium", "category": "booking", "clock": "update", "basis": "business",
        "policy_id": "default", "policy_version": 0, "due_at": T, "breached_at": T + timedelta(seconds=1),
        "rung": 1, "assignee": STAFF, "locale": "en"},
    ev.CASE_FIRST_RESPONDED: {
        "case_id": "c1", "store_id": "SH-XH-001", "responded_at": T, "on_time": True,
        "seconds_to_respond": 5400.5},
    ev.CASE_RESOLVED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "category": "price",
        "remedy": {"type": "refund", "refund_option": "partial_continue", "amount_fen": 30_000,
                   "remedy_id": "r1", "continue_treatment": True},
        "note": "已退差价", "resolved_at": T, "on_time": False, "resolution_round": 2,
        "customer": CUSTOMER, "revisit_owner": STAFF, "locale": "zh-CN", "amount_fen": 30_000,
        "resolved_by": "sh-xh-s1",
        "root_cause": "unkept_promise"},
    ev.CASE_REOPENED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "reason": "revisit score 1: 还是过敏", "source": "revisit", "reopened_at": T,
        "resolution_due": T + timedelta(hours=48)},
    ev.CASE_CLOSED: {"case_id": "c1", "store_id": "SH-XH-001", "closed_at": T, "root_cause": "misunderstanding",
                     "merged_into": None},
    # the lifecycle's actions: every one names the case, who and when
    ev.CASE_ACKNOWLEDGED: dict(LIFECYCLE, rung=2),
    ev.CASE_REPORTED_TO_SUPERIOR: dict(LIFECYCLE, superior=REGIONAL, message="顾客要求媒体曝光,请支持"),
    ev.CASE_PAUSED: dict(LIFECYCLE, question="请提供购买疗程的收据"),
    ev.CASE_RESUMED: dict(LIFECYCLE, deadlines={"first_response_due": T + timedelta(hours=25),
                                                "resolution_due": T + timedelta(hours=49), "report_due": None,
                                                "update_due": None}),
    ev.REMEDY_PROPOSED: dict(LIFECYCLE, remedy_id="r1", type="compensation", refund_option=None,
                             amount_fen=80_000, status="pending_approval", approver=REGIONAL, approver_role="regional_manager",
                             flags=["repeat_customer"],
                             repeat={"count": 2, "stores": ["HZ-XH-002", "SH-XH-001"], "amount_fen": 120_000}),
    ev.REMEDY_DECIDED: dict(LIFECYCLE, remedy_id="r1", type="refund", refund_option="full_stop", amount_fen=398_000,
                            decision="approved", proposed_by="sh-xh-mg", reason="同意全额退款"),
    ev.REPORT_FILED: dict(LIFECYCLE, revision=1, report_due=T + timedelta(hours=8)),
    ev.REPORT_SIGNED_OFF: dict(LIFECYCLE, actor="gm-001", on_time=True),
    ev.CASE_LINKED: dict(LIFECYCLE, related_case_id="c0", reason="duplicate"),
    ev.CASE_MERGED: dict(LIFECYCLE, into_case_id="c0"),
    ev.CASE_ARCHIVED: dict(LIFECYCLE),
    ev.NOTIFICATION_FAILED: {
        "event_id": "5f2c0c7d9a1b4e3f", "case_id": "c1", "case_number": "CL-20261124-000001",
        "store_id": "SH-XH-001", "kind": "acknowledgement", "audience": "customer",
        "recipient": "customer:2ebdcb1bacf1", "reason": "no reachable channel", "channels_tried": [],
        "action": "phone_call", "failed_at": T},
    ev.FOLLOWUP_DUE: {
        "revisit_id": "r1", "round": 1, "case_id": "c1", "case_number": "CL-20261124-000001",
        "store_id": "SH-XH-001", "owner": STAFF, "customer": CUSTOMER, "due_at": T,
        "locale": "zh-CN"},
    ev.REVISIT_RECORDED: {
        "revisit_id": "r1", "round": 1, "case_id": "c1", "store_id": "SH-XH-001", "score": 4,
        "satisfied": True, "reopens_case": False, "comment": "满意", "recorded_at": T},
    ev.APPOINTMENT_CONFIRMED: {
        "event_id": "e2", "case_id": "A-1", "appointment_id": "A-1", "store_id": "SH-XH-001",
        "customer": CUSTOMER, "service_item": "补水护理", "starts_at": T, "locale": "zh-CN",
        "confirmed_at": T, "change": True},
    ev.APPOINTMENT_REMINDER_DUE: {
        "event_id": "e3", "case_id": "A-1", "appointment_id": "A-1", "store_id": "SH-XH-001",
        "customer": CUSTOMER, "service_item": "补水护理", "starts_at": T, "locale": "zh-CN", "reminded_at": T},
    ev.APPOINTMENT_CHANGE_REQUESTED: {
        "event_id": "e5", "case_id": "A-1", "appointment_id": "A-1", "store_id": "SH-XH-001",
        "customer": CUSTOMER, "service_item": "补水护理", "starts_at": T, "locale": "zh-CN", "store_staff": STAFF,
        "requested_starts_at": T, "note": "出差", "requested_by": "cs-001", "requested_at": T},
    ev.REVISIT_COMPLAINT_VOICED: {
        "event_id": "e4", "task_id": "t1", "store_id": "SH-XH-001", "customer": CUSTOMER,
        "content": "上次做完脸过敏", "voiced_at": T, "voiced_by": "sh-xh-rv", "category": "product_efficacy"},
    ev.REVISIT_TASK_COMPLETED: {
        "event_id": "e1", "task_id": "t1", "store_id": "SH-XH-001", "owner_id": "sh-xh-rv", "tier": "key",
        "purpose": "care", "status": "unreachable", "attempts": 3, "score": None, "complaint": False,
        "planned_at": T, "completed_at": T},
    ev.WEEKLY_DIGEST_READY: {
        "event_id": "e7", "digest_id": "2026-11-16:region:sh", "level": "region", "unit_id": "sh",
        "unit_name": "上海", "store_id": "SH-XH-001", "managers": [REGIONAL],
        "week_from": date(2026, 11, 16), "week_to": date(2026, 11, 22), "cases": 12, "first_response_rate": 0.9167,
        "resolution_rate": 1.0, "satisfaction_rate": None, "repeat_30_rate": 0.0833, "cases_change": -3,
        "root_causes": [{"root_cause": "poor_communication", "cases": 5, "share": 0.625, "cumulative": 0.625}]},
    ev.CASE_REASSIGNED: {
        "case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "SH-XH-001",
        "severity": "high", "reason": "staff_deactivated", "previous_assignee": STAFF,
        "assignee": REGIONAL, "reassigned_at": T, "locale": "zh-CN"},
    ev.CASE_RECLASSIFIED: {
        "event_id": "e9", "correction_id": "c1:4", "case_id": "c1", "store_id": "SH-XH-001",
        "previous_category": "equipment", "category": "booking", "model_category": "equipment",
        "model_version": "triage-8ab253c4d68d", "model_confidence": 0.38, "by_role": "supervisor",
        "reclassified_at": T},
    ev.STORE_CALENDAR_CHANGED: {
        "event_id": "e10", "store_id": "SH-XH-001", "timezone": "Asia/Shanghai",
        "weekly": [[{"start": 600, "end": 1260}]] * 6 + [[]],
        "exceptions": [{"date": date(2026, 12, 24), "slots": []}, {"date": date(2026, 12, 31),
                                                                   "slots": [{"start": 1200, "end": 1560}]}],
        "horizon_from": date(2026, 11, 23), "horizon_to": date(2027, 12, 28), "as_of": T},
    ev.CUSTOMER_CONSENT_WITHDRAWN: {
        "event_id": "e11", "member_id": "M-0001", "customer_keys": ["3f1c0e5d9a7b2c4e6f8a0b1c"],
        "withdrawn_at": T},
    # the seed organisation, as routing announces it
    ev.ORG_CHANGED: org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
    .with_version(3).to_snapshot(),
    ev.INTEGRATION_CHANGED: {
        "client_id": "pos", "name": "门店收银系统", "brand_id": "yueyan", "store_ids": ["SH-XH-001"],
        "permissions": ["feedback:submit", "feedback:read"], "bus_user": "pos-bus", "active": True,
        "keys": [{"key_id": "0a1b2c3d4e5f6071", "digest": "ab" * 32, "created_at": T,
                  "expires_at": T + timedelta(days=365), "revoked_at": None}],
        "version": 2},
}

# The contract is growing case_number on more events; samples follow the schema.
for _type, _sample in SAMPLES.items():
    if "case_number" in ev.SCHEMAS[_type].fields:
        _sample.setdefault("case_number", "CL-20261124-000001")


def test_every_event_has_a_schema_a_sample_and_an_emitter():
    assert set(ev.SCHEMAS) == set(SAMPLES) == set(ev.EMITTERS)
    assert ev.EMITTERS[ev.CASE_SUBMITTED] == ev.INTAKE
    assert ev.EMITTERS[ev.REVISIT_RECORDED] == ev.FOLLOWUP
    assert {ev.EMITTERS[e] for e in (ev.CASE_ROUTED, ev.CASE_ESCALATED, ev.CASE_RESOLVED,
                                      ev.CASE_REOPENED, ev.CASE_CLOSED,
                                      ev.CASE_FIRST_RESPONDED, ev.CASE_REASSIGNED,
                                      ev.ORG_CHANGED, ev.INTEGRATION_CHANGED)} == {ev.ROUTING}


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_dump_then_load_round_trips(event_type):
    payload = ev.dump(event_type, SAMPLES[event_type])
    # The payload crosses the bus as JSON.
    wire = json.loads(json.dumps(payload, ensure_ascii=False))
    assert ev.load(event_type, wire) == SAMPLES[event_type]


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_times_cross_as_iso_strings_and_come_back_aware(event_type):
    payload = ev.dump(event_type, SAMPLES[event_type])
    loaded = ev.load(event_type, payload)
    for key, value in SAMPLES[event_type].items():
        if isinstance(value, datetime):
            assert isinstance(payload[key], str)
            assert datetime.fromisoformat(payload[key]) == value
            assert loaded[key].tzinfo is not None


def test_china_times_stay_the_same_instant():
    china = timezone(timedelta(hours=8))
    data = dict(SAMPLES[ev.CASE_CLOSED], closed_at=datetime(2026, 11, 24, 9, 30, tzinfo=china))
    loaded = ev.load(ev.CASE_CLOSED, ev.dump(ev.CASE_CLOSED, data))
    assert loaded["closed_at"] == T


def _required(schema):
    return [name for name, field in schema.fields.items() if field.required]


@pytest.mark.parametrize("event_type, field", [
    (event_type, field) for event_type, schema in sorted(ev.SCHEMAS.items())
    for field in _required(schema)])
def test_load_refuses_a_missing_required_field(event_type, field):
    payload = ev.dump(event_type, SAMPLES[event_type])
    del payload[field]
    with pytest.raises(ValidationError) as refused:
        ev.load(event_type, payload)
    assert refused.value.messages == {field: ["Missing data for required field."]}


def test_nested_required_fields_are_checked():
    payload = ev.dump(ev.CASE_ROUTED, SAMPLES[ev.CASE_ROUTED])
    del payload["assignee"]["staff_id"]
    with pytest.raises(ValidationError) as refused:
        ev.load(ev.CASE_ROUTED, payload)
    assert refused.value.messages == {"assignee": {"staff_id": ["Missing data for required field."]}}


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_unknown_fields_are_ignored(event_type):
    payload = dict(ev.dump(event_type, SAMPLES[event_type]), added_in_v2="whatever", trace_id=7)
    loaded = ev.load(event_type, payload)
    assert "added_in_v2" not in loaded and "trace_id" not in loaded
    assert loaded == SAMPLES[event_type]


def test_unknown_nested_fields_are_ignored():
    payload = ev.dump(ev.CASE_SUBMITTED, SAMPLES[ev.CASE_SUBMITTED])
    payload["customer"]["wechat"] = "liu88"
    payload["external_ref"]["url"] = "https://example.com"
    loaded = ev.load(ev.CASE_SUBMITTED, payload)
    assert loaded["customer"] == CUSTOMER
    assert loaded["external_ref"] == {"source": "meituan", "id": "MT-1"}


def test_optional_fields_get_their_defaults():
    minimal = {"case_id": "c1", "case_number": "CL-20261124-000001", "store_id": "S",
               "store_name": "店", "channel": "web", "customer": {"name": "刘"},
               "content": "x", "occurred_at": T.isoformat(), "submitted_at": T.isoformat()}
    loaded = ev.load(ev.CASE_SUBMITTED, minimal)
    assert loaded["category"] is None
    assert loaded["external_ref"] is None
    assert loaded["service_context"] is None
    assert loaded["locale"] == "zh-CN"
    assert loaded["submitted_by"] is None  # cases submitted before submitters were recorded
    assert loaded["customer"] == {"name": "刘", "phone": None, "email": None, "member_id": None}


def test_naive_times_are_refused():
    payload = ev.dump(ev.CASE_CLOSED, SAMPLES[ev.CASE_CLOSED])
    payload["closed_at"] = "2026-11-24T09:30:00"
    with pytest.raises(ValidationError) as refused:
        ev.load(ev.CASE_CLOSED, payload)
    assert "closed_at" in refused.value.messages


@pytest.mark.parametrize("event_type, field, value", [
    (ev.CASE_SUBMITTED, "channel", "fax"),
    (ev.CASE_SUBMITTED, "category", "weather"),
    (ev.CASE_SUBMITTED, "locale", "fr"),
    (ev.CASE_ROUTED, "severity", "urgent"),
    (ev.CASE_REOPENED, "source", "customer"),
    (ev.REVISIT_RECORDED, "score", 0),
    (ev.REVISIT_RECORDED, "score", 6),
    (ev.CASE_REASSIGNED, "severity", "urgent"),
])
def test_closed_vocabularies_are_enforced(event_type, field, value):
    payload = dict(ev.dump(event_type, SAMPLES[event_type]), **{field: value})
    with pytest.raises(ValidationError) as refused:
        ev.load(event_type, payload)
    assert field in refused.value.messages


def test_dump_refuses_an_emitter_bug_at_its_source():
    with pytest.raises(ValidationError):
        ev.dump(ev.CASE_SUBMITTED, dict(SAMPLES[ev.CASE_SUBMITTED], channel="fax"))
    with pytest.raises(ValidationError):
        ev.dump(ev.CASE_RESOLVED, dict(SAMPLES[ev.CASE_RESOLVED],
                                       remedy={"type": "refund", "amount_fen": -1}))


def test_unknown_event_type_is_a_key_error():
    with pytest.raises(KeyError):
        ev.load("case_deleted", {})


# -- Remedy.amount_fen --------------------------------------------------------------

def _resolved_with(amount_fen):
    payload = ev.dump(ev.CASE_RESOLVED, SAMPLES[ev.CASE_RESOLVED])
    payload["remedy"] = {"type": "compensation", "amount_fen": amount_fen}
    return payload


@pytest.mark.parametrize("amount_fen", [30_000, 1, 0, 100_000_000])
def test_amounts_cross_as_whole_fen(amount_fen):
    assert ev.load(ev.CASE_RESOLVED, _resolved_with(amount_fen))["remedy"]["amount_fen"] == amount_fen


@pytest.mark.parametrize("amount_fen", [-5, "300", 300.5, "300.00", None, True])
def test_amount_anything_else_is_refused(amount_fen):
    with pytest.raises(ValidationError) as refused:
        ev.load(ev.CASE_RESOLVED, _resolved_with(amount_fen))
    assert "amount_fen" in refused.value.messages["remedy"]


def test_remedy_type_and_option_vocabularies():
    for remedy in ({"type": "cash"}, {"type": "refund", "refund_option": "E"}):
        payload = ev.dump(ev.CASE_RESOLVED, SAMPLES[ev.CASE_RESOLVED])
        payload["remedy"] = remedy
        with pytest.raises(ValidationError):
            ev.load(ev.CASE_RESOLVED, payload)


# -- identity events ----------------------------------------------------------------

def _nested_refusal(event_type, mutate):
    payload = ev.dump(event_type, SAMPLES[event_type])
    mutate(payload)
    with pytest.raises(ValidationError) as refused:
        ev.load(event_type, payload)
    return refused.value.messages


@pytest.mark.parametrize("table, field, value", [
    ("stores", "status", "ajar"), ("staff", "role", "cashier"), ("staff", "active", "maybe"),
    ("stores", "timezone", None), ("regions", "brand_id", None), ("brands", "name", None),
])
def test_org_changed_checks_every_record(table, field, value):
    messages = _nested_refusal(ev.ORG_CHANGED, lambda p: p[table][0].update({field: value}))
    assert field in messages[table][0]


def test_org_changed_carries_no_credentials():
    fields = set(ev.StaffRecord().fields)
    assert not fields & {"password", "password_hash", "failures", "locked_until"}
    assert set(ev.OrgChanged().fields) == {"version", "brands", "regions", "stores", "staff"}


def test_org_changed_of_the_seed_rebuilds_the_same_organisation():
    loaded = ev.load(ev.ORG_CHANGED, json.loads(json.dumps(ev.dump(ev.ORG_CHANGED, SAMPLES[ev.ORG_CHANGED]))))
    assert org.Organisation.from_snapshot(loaded) == org.Organisation.from_snapshot(SAMPLES[ev.ORG_CHANGED])
    assert org.Organisation.from_snapshot(loaded).version == 3


@pytest.mark.parametrize("mutate, where", [
    (lambda p: p.update(permissions=["feedback:submit", "case:delete"]), "permissions"),
    (lambda p: p["keys"][0].pop("digest"), "keys"),
    (lambda p: p["keys"][0].update(created_at="2026-11-24T09:30:00"), "keys"),  # naive
])
def test_integration_changed_vocabularies_and_keys(mutate, where):
    assert where in _nested_refusal(ev.INTEGRATION_CHANGED, mutate)


def test_integration_changed_defaults():
    payload = ev.dump(ev.INTEGRATION_CHANGED, SAMPLES[ev.INTEGRATION_CHANGED])
    del payload["store_ids"], payload["bus_user"]
    loaded = ev.load(ev.INTEGRATION_CHANGED, payload)
    assert (loaded["store_ids"], loaded["bus_user"]) == ([], None)


@pytest.mark.parametrize("submitted_by", [
    {"kind": "robot", "client_id": "x"}, {"client_id": "pos"}])
def test_submitted_by_names_a_kind_of_principal(submitted_by):
    messages = _nested_refusal(ev.CASE_SUBMITTED, lambda p: p.update(submitted_by=submitted_by))
    assert "kind" in messages["submitted_by"]


def test_case_reassigned_without_previous_assignee():
    data = dict(SAMPLES[ev.CASE_REASSIGNED], previous_assignee=None)
    assert ev.load(ev.CASE_REASSIGNED, ev.dump(ev.CASE_REASSIGNED, data)) == data
