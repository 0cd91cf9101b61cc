"""services/intake/cases.py: case numbers, dedupe keys and the case_submitted event."""
import re
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared import events, org
from closeloop_shared.access import Principal, Scope, scope_of
from closeloop_shared.contract import StoreStatus
from services.intake import cases, flows
from services.intake.schemas import FeedbackIn
from tests.unit.fakes import FakeFeedback

ROOT = Path(__file__).resolve().parents[2]
CHART = org.load(ROOT / "deploy" / "seeds" / "org.yaml")
STORE = CHART.store("SH-XH-001")
NOW = datetime(2026, 11, 23, 17, 30, tzinfo=timezone.utc)  # 2026-11-24 01:30 in China
POS = Principal.for_integration({"client_id": "pos", "name": "POS", "brand_id": "yueyan",
                                 "permissions": ["feedback:submit", "feedback:read"]})
CRM = Principal.for_integration({"client_id": "crm", "name": "CRM", "brand_id": "yueyan",
                                 "store_ids": ["SH-XH-001"], "permissions": ["feedback:submit"]})
CLERK = Principal.for_staff(CHART.staff["sh-xh-s1"], "yueyan")
BY_POS = cases.submitter(POS)


def submission(**overrides):
    body = {
        "store_id": "SH-XH-001", "channel": "wechat",
        "customer": {"name": "刘女士", "phone": "+86 138 1234 5678", "email": "liu@example.com"},
        "content": "预约了下午三点,到店后等了四十分钟都没人接待",
        "occurred_at": "2026-11-23T15:00:00",
    }
    body.update(overrides)
    return FeedbackIn().load(body)


# -- case numbers ---------------------------------------------------------------------

def test_case_number_uses_the_china_local_day():
    assert cases.case_number(NOW, 42) == "CL-20261124-000042"


@pytest.mark.parametrize("moment, day", [
    (datetime(2026, 11, 23, 15, 59, 59, tzinfo=timezone.utc), "20261123"),  # 23:59:59 China
    (datetime(2026, 11, 23, 16, 0, tzinfo=timezone.utc), "20261124"),       # midnight China
    (datetime(2026, 12, 31, 16, 0, tzinfo=timezone.utc), "20270101"),
])
def test_the_day_turns_at_china_midnight(moment, day):
    assert cases.case_number(moment, 1) == f"CL-{day}-000001"
    assert cases.sequence_name(moment) == f"case_number:{day}"


@given(st.integers(min_value=1, max_value=999_999))
def test_case_number_format(sequence):
    number = cases.case_number(NOW, sequence)
    assert re.fullmatch(r"CL-\d{8}-\d{6}", number)
    assert int(number.rsplit("-", 1)[1]) == sequence


def test_case_numbers_sort_like_their_sequence_within_a_day():
    numbers = [cases.case_number(NOW, n) for n in (1, 9, 10, 100, 99999)]
    assert numbers == sorted(numbers)


# -- dedupe ---------------------------------------------------------------------------

def test_dedupe_key_comes_from_the_client_and_the_external_reference():
    sub = submission(external_ref={"source": "meituan", "id": "MT-99812"})
    assert cases.dedupe_key(sub, BY_POS) == 'ref:["pos", "meituan", "MT-99812"]'


def test_no_external_reference_means_no_dedupe_key():
    assert cases.dedupe_key(submission(), BY_POS) is None
    assert cases.dedupe_key({"external_ref": None}, BY_POS) is None


def test_same_reference_same_key_whatever_else_differs():
    one = submission(external_ref={"source": "dianping", "id": "7"}, content="第一次提交")
    two = submission(external_ref={"source": "dianping", "id": "7"}, content="重复提交",
                     channel="web")
    assert cases.dedupe_key(one, BY_POS) == cases.dedupe_key(two, BY_POS)
    assert cases.dedupe_key(one, BY_POS) != cases.dedupe_key(
        submission(external_ref={"source": "dianping", "id": "8"}), BY_POS)
    assert cases.dedupe_key(one, BY_POS) != cases.dedupe_key(
        submission(external_ref={"source": "meituan", "id": "7"}), BY_POS)


def test_the_same_reference_from_two_clients_is_two_keys():
    """One client cannot squat another's reference and swallow a genuine complaint."""
    sub = submission(external_ref={"source": "meituan", "id": "MT-1"})
    keys = {cases.dedupe_key(sub, cases.submitter(POS)), cases.dedupe_key(sub, cases.submitter(CRM)),
            cases.dedupe_key(sub, cases.submitter(bus_publisher="wechat-bot")),
            cases.dedupe_key(sub, cases.submitter(CLERK))}
    assert len(keys) == 4


def test_staff_share_one_reference_namespace():
    sub = submission(external_ref={"source": "hotline", "id": "call-88"})
    manager = Principal.for_staff(CHART.staff["sh-xh-mg"], "yueyan")
    assert cases.dedupe_key(sub, cases.submitter(CLERK)) == cases.dedupe_key(sub, cases.submitter(manager)) \
        == 'ref:["staff", "hotline", "call-88"]'


def test_a_client_id_cannot_be_confused_with_a_reference():
    """JSON-encoding keeps the client apart from the reference's source."""
    sub = submission(external_ref={"source": "b:meituan", "id": "7"})
    other = submission(external_ref={"source": "meituan", "id": "7"})
    assert cases.dedupe_key(sub, {"client_id": "a"}) != cases.dedupe_key(other, {"client_id": "a:b"})


# -- submitter ------------------------------------------------------------------------

def test_submitter_of_an_integration_is_its_client_id():
    assert cases.submitter(POS) == {"kind": "integration", "client_id": "pos", "staff_id": None}


def test_submitter_of_a_staff_member_is_their_staff_id():
    assert cases.submitter(CLERK) == {"kind": "staff", "client_id": None, "staff_id": "sh-xh-s1"}


def test_submitter_of_an_unregistered_bus_publisher_is_its_amqp_user():
    assert cases.submitter(None, "legacy-pos") == {
        "kind": "integration", "client_id": "bus:legacy-pos", "staff_id": None}
    # a bus user never collides with an HTTP client id of the same name
    assert cases.submitter(None, "pos")["client_id"] != cases.submitter(POS)["client_id"]


# -- new_case -------------------------------------------------------------------------

def test_new_case_carries_the_submission_the_store_and_the_submitter():
    sub = submission(external_ref={"source": "meituan", "id": "MT-1"})
    case = cases.new_case(sub, STORE, "CL-20261124-000042", NOW, "http", cases.dedupe_key(sub, BY_POS),
                          BY_POS)
    assert re.fullmatch(r"[0-9a-f]{32}", case["_id"])
    assert case["case_number"] == "CL-20261124-000042"
    assert case["dedupe_key"] == 'ref:["pos", "meituan", "MT-1"]'
    assert case["store_id"] == "SH-XH-001"
    assert case["store_name"] == "上海徐汇店"
    assert case["customer"]["phone"] == "+8613812345678"
    assert case["via"] == "http"
    assert case["submitted_by"] == {"kind": "integration", "client_id": "pos", "staff_id": None}
    assert case["submitted_at"] == case["updated_at"] == NOW
    assert case["locale"] == "zh-CN"
    assert case["outbox_pending"] is True


def test_cases_without_reference_get_distinct_dedupe_keys():
    one = cases.new_case(submission(), STORE, "CL-20261124-000001", NOW, "bus", None, BY_POS)
    two = cases.new_case(submission(), STORE, "CL-20261124-000002", NOW, "bus", None, BY_POS)
    assert one["dedupe_key"].startswith("none:")
    assert one["dedupe_key"] != two["dedupe_key"]
    assert one["_id"] != two["_id"]


def test_new_case_outbox_holds_one_valid_case_submitted_event():
    sub = submission(category="booking", locale="en",
                     service_context={"service_item": "补水护理", "technician": None,
                                      "appointment_id": "A-17"})
    case = cases.new_case(sub, STORE, "CL-20261124-000042", NOW, "http", None, cases.submitter(CLERK))
    assert len(case["outbox"]) == 1
    event = case["outbox"][0]
    assert event["type"] == events.CASE_SUBMITTED
    assert re.fullmatch(r"[0-9a-f]{32}", event["id"])
    loaded = events.load(events.CASE_SUBMITTED, event["payload"])
    assert loaded["case_id"] == case["_id"]
    assert loaded["case_number"] == "CL-20261124-000042"
    assert loaded["store_name"] == "上海徐汇店"
    assert loaded["channel"] == "wechat"
    assert loaded["category"] == "booking"
    assert loaded["locale"] == "en"
    assert loaded["occurred_at"] == datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    assert loaded["submitted_at"] == NOW
    assert loaded["customer"] == {"name": "刘女士", "phone": "+8613812345678",
                                  "email": "liu@example.com", "member_id": None}
    assert loaded["service_context"]["appointment_id"] == "A-17"
    assert loaded["submitted_by"] == {"kind": "staff", "client_id": None, "staff_id": "sh-xh-s1"}
    # JSON-ready: times cross the bus as ISO strings.
    assert isinstance(event["payload"]["submitted_at"], str)


@pytest.mark.parametrize("submitted_by", [cases.submitter(POS), cases.submitter(CLERK),
                                          cases.submitter(None, "legacy-pos")])
def test_every_kind_of_submitter_fits_the_contract(submitted_by):
    case = cases.new_case(submission(), STORE, "CL-20261124-000042", NOW, "bus", None, submitted_by)
    assert events.load(events.CASE_SUBMITTED, case["outbox"][0]["payload"])["submitted_by"] == submitted_by


def test_submitted_event_has_exactly_the_contract_fields():
    case = cases.new_case(submission(), STORE, "CL-20261124-000042", NOW, "bus", None, BY_POS)
    assert set(cases.submitted_event(case)) == set(events.CaseSubmitted().fields)
    assert "dedupe_key" not in case["outbox"][0]["payload"]
    assert "via" not in case["outbox"][0]["payload"]


@pytest.mark.parametrize("created, duplicate", [(True, False), (False, True)])
def test_receipt(created, duplicate):
    case = cases.new_case(submission(), STORE, "CL-20261124-000042", NOW, "http", None, BY_POS)
    assert cases.receipt(case, created) == {
        "case_id": case["_id"], "case_number": "CL-20261124-000042", "store_id": "SH-XH-001",
        "submitted_at": NOW, "duplicate": duplicate,
        "links": {"self": f"/v1/feedback/{case['_id']}", "routing_case": f"/v1/cases/{case['_id']}"}}


def test_different_references_never_share_a_dedupe_key():
    one = submission(external_ref={"source": "dianping:shop", "id": "1"})
    two = submission(external_ref={"source": "dianping", "id": "shop:1"})
    assert cases.dedupe_key(one, BY_POS) != cases.dedupe_key(two, BY_POS)


@given(st.tuples(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1)),
       st.tuples(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1)))
def test_dedupe_keys_are_equal_exactly_when_client_and_reference_are(one, two):
    def key(client, source, ref_id):
        return cases.dedupe_key({"external_ref": {"source": source, "id": ref_id}}, {"client_id": client})
    assert (key(*one) == key(*two)) == (one == two)


# -- the store feedback is for (flows.store_for) ----------------------------------------

def test_store_for_an_open_store_in_scope():
    assert flows.store_for(CHART, scope_of(CLERK, CHART), "SH-XH-001") is STORE
    assert flows.store_for(CHART, Scope(None), "BJ-CY-101").store_id == "BJ-CY-101"  # bus, unregistered


@pytest.mark.parametrize("principal, store_id", [(POS, "SH-XH-001"), (POS, "GZ-TH-003"), (CRM, "SH-XH-001")])
def test_store_for_an_integration_in_its_brand(principal, store_id):
    assert flows.store_for(CHART, scope_of(principal, CHART), store_id).store_id == store_id


@pytest.mark.parametrize("principal, store_id", [
    (POS, "BJ-CY-101"),    # another brand's store
    (CRM, "HZ-XH-002"),    # its brand, but not one of the stores it was limited to
    (CLERK, "HZ-XH-002"),  # a store clerk registers feedback for their own store only
    (POS, "NOPE-404"),
])
def test_a_store_out_of_scope_is_as_unknown_as_a_missing_one(principal, store_id):
    with pytest.raises(flows.StoreRefused) as refused:
        flows.store_for(CHART, scope_of(principal, CHART), store_id)
    assert refused.value.code == "unknown_store"
    assert refused.value.message == f"unknown store {store_id!r}"


def test_a_closed_store_takes_no_feedback():
    closed = replace(CHART, stores={**CHART.stores, "SH-XH-001": replace(STORE, status=StoreStatus.CLOSED)})
    with pytest.raises(flows.StoreRefused) as refused:
        flows.store_for(closed, scope_of(CLERK, closed), "SH-XH-001")
    assert refused.value.code == "store_closed"
    # out of scope still says unknown: the closed state does not leak either
    with pytest.raises(flows.StoreRefused) as refused:
        flows.store_for(closed, Scope(frozenset({"HZ-XH-002"})), "SH-XH-001")
    assert refused.value.code == "unknown_store"


# -- accept (flows.accept over an in-memory repository) ---------------------------------

def accept(repository, sub, submitted_by, now=NOW):
    published = []
    case, created = flows.accept(repository, lambda event_type, payload: published.append(event_type),
                                 sub, STORE, "http", submitted_by, now)
    return case, created, published


def test_accept_numbers_stores_and_publishes_once_per_client_and_reference():
    repository = FakeFeedback()
    sub = submission(external_ref={"source": "meituan", "id": "MT-1"})
    first, created, published = accept(repository, sub, BY_POS)
    assert created and first["case_number"] == "CL-20261124-000001"
    assert published == [events.CASE_SUBMITTED]
    assert repository.docs[first["_id"]]["outbox"] == []  # published, so cleared
    again, created, published = accept(repository, sub, BY_POS)
    assert (again["_id"], created, published) == (first["_id"], False, [])
    other, created, published = accept(repository, sub, cases.submitter(CRM))
    # the repeat was told apart by its lost insert, after drawing 000002: numbers stay
    # unique and rising, a repeat leaves one unused
    assert created and other["_id"] != first["_id"] and other["case_number"] == "CL-20261124-000003"
    assert len(repository.docs) == 2


def test_accept_without_reference_always_makes_a_new_case():
    repository = FakeFeedback()
    numbers = [accept(repository, submission(), BY_POS)[0]["case_number"] for _ in range(3)]
    assert numbers == ["CL-20261124-000001", "CL-20261124-000002", "CL-20261124-000003"]


def test_accept_loses_a_concurrent_race_to_the_same_reference():
    """Another replica inserted the same reference between the look-up and the insert:
    the unique key lets one case through, and the loser publishes nothing."""
    repository = FakeFeedback()
    sub = submission(external_ref={"source": "meituan", "id": "MT-1"})
    winner, _, _ = accept(repository, sub, BY_POS)
    repository.stale_reads = True
    case, created, published = accept(repository, sub, BY_POS)
    assert (case["_id"], created, published) == (winner["_id"], False, [])
    assert len(repository.docs) == 1


def test_a_complaint_voiced_on_a_revisit_keeps_the_category_the_caller_gave_it():
    voiced = {"store_id": "SH-XH-001", "customer": {"name": "王女士", "phone": "+8613812345678", "email": None},
              "content": "我按时到店了,前台说没有我的预约", "voiced_at": "2026-11-25T10:00:00+08:00",
              "task_id": "no-show:A-4"}
    assert "category" not in cases.revisit_feedback(voiced)
    submission = FeedbackIn().load(cases.revisit_feedback(dict(voiced, category="booking")))
    assert submission["category"] == "booking" and submission["external_ref"]["source"] == "revisit"
