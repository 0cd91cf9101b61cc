"""services/intake/cases.py: case numbers, dedupe keys and the case_submitted event."""
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared import events, org
from services.intake import cases
from services.intake.schemas import FeedbackIn

ROOT = Path(__file__).resolve().parents[2]
CHART = org.load(ROOT / "deploy" / "seeds" / "org.yaml")
STORE = CHART.store("SH-XH-001")
NOW = datetime(2026, 11, 23, 17, 30, tzinfo=timezone.utc)  # 2026-11-24 01:30 in China


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

def test_dedupe_key_comes_from_the_external_reference():
    sub = submission(external_ref={"source": "meituan", "id": "MT-99812"})
    assert cases.dedupe_key(sub) == 'ref:["meituan", "MT-99812"]'


def test_no_external_reference_means_no_dedupe_key():
    assert cases.dedupe_key(submission()) is None
    assert cases.dedupe_key({"external_ref": None}) is None


def test_same_reference_same_key_whatever_else_differs():
    one = submission(external_ref={"source": "dianping", "id": "7"}, content="第一次提交")
    two = submission(external_ref={"source": "dianping", "id": "7"}, content="重复提交",
                     channel="web")
    assert cases.dedupe_key(one) == cases.dedupe_key(two)
    assert cases.dedupe_key(one) != cases.dedupe_key(
        submission(external_ref={"source": "dianping", "id": "8"}))
    assert cases.dedupe_key(one) != cases.dedupe_key(
        submission(external_ref={"source": "meituan", "id": "7"}))


# -- new_case -------------------------------------------------------------------------

def test_new_case_carries_the_submission_and_the_store():
    sub = submission(external_ref={"source": "meituan", "id": "MT-1"})
    case = cases.new_case(sub, STORE, "CL-20261124-000042", NOW, "http", cases.dedupe_key(sub))
    assert re.fullmatch(r"[0-9a-f]{32}", case["_id"])
    assert case["case_number"] == "CL-20261124-000042"
    assert case["dedupe_key"] == 'ref:["meituan", "MT-1"]'
    assert case["store_id"] == "SH-XH-001"
    assert case["store_name"] == "上海徐汇店"
    assert case["customer"]["phone"] == "+8613812345678"
    assert case["via"] == "http"
    assert case["submitted_at"] == case["updated_at"] == NOW
    assert case["locale"] == "zh-CN"
    assert case["outbox_pending"] is True


def test_cases_without_reference_get_distinct_dedupe_keys():
    one = cases.new_case(submission(), STORE, "CL-20261124-000001", NOW, "bus", None)
    two = cases.new_case(submission(), STORE, "CL-20261124-000002", NOW, "bus", None)
    assert one["dedupe_key"].startswith("none:")
    assert one["dedupe_key"] != two["dedupe_key"]
    assert one["_id"] != two["_id"]


def test_new_case_outbox_holds_one_valid_case_submitted_event():
    sub = submission(category="booking", locale="en",
                     service_context={"service_item": "补水护理", "technician": None,
                                      "appointment_id": "A-17"})
    case = cases.new_case(sub, STORE, "CL-20261124-000042", NOW, "http", None)
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
    # JSON-ready: times cross the bus as ISO strings.
    assert isinstance(event["payload"]["submitted_at"], str)


def test_submitted_event_has_exactly_the_contract_fields():
    case = cases.new_case(submission(), STORE, "CL-20261124-000042", NOW, "bus", None)
    assert set(cases.submitted_event(case)) == set(events.CaseSubmitted().fields)
    assert "dedupe_key" not in case["outbox"][0]["payload"]
    assert "via" not in case["outbox"][0]["payload"]


@pytest.mark.parametrize("created, duplicate", [(True, False), (False, True)])
def test_receipt(created, duplicate):
    case = cases.new_case(submission(), STORE, "CL-20261124-000042", NOW, "http", None)
    assert cases.receipt(case, created) == {
        "case_id": case["_id"], "case_number": "CL-20261124-000042", "store_id": "SH-XH-001",
        "submitted_at": NOW, "duplicate": duplicate,
        "links": {"self": f"/v1/feedback/{case['_id']}", "routing_case": f"/v1/cases/{case['_id']}"}}


def test_different_references_never_share_a_dedupe_key():
    one = submission(external_ref={"source": "dianping:shop", "id": "1"})
    two = submission(external_ref={"source": "dianping", "id": "shop:1"})
    assert cases.dedupe_key(one) != cases.dedupe_key(two)
