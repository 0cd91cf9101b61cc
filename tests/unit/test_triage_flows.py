"""flows.route() and flows.reclassify() with the trained classifier, over in-memory
fakes: what a case records of its classification, the triage queue, corrections."""
from datetime import datetime, timedelta, timezone

import pytest

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.access import Principal, Scope
from closeloop_shared.contract import Role
from services.routing import flows
from tests.fixtures import ROOT
from tests.unit.fakes import FakeCases
from tests.unit.fakes import rules as case_rules

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
STORE = "SH-XH-001"


class FakeCorrections:
    def __init__(self):
        self.records = {}

    def record(self, correction):
        self.records.setdefault(correction["_id"], correction)


@pytest.fixture(scope="module")
def chart():
    return org.load(ROOT / "deploy" / "seeds" / "org.yaml")


def submitted(content, channel="wechat", category=None, case_id="c1"):
    return {"case_id": case_id, "case_number": "CL-20261125-000001", "store_id": STORE,
            "store_name": "上海徐汇店", "channel": channel,
            "customer": {"name": "陈女士", "phone": "+8613912345678", "email": None, "member_id": None},
            "content": content, "occurred_at": T0, "submitted_at": T0, "category": category,
            "external_ref": None, "service_context": None, "locale": "zh-CN", "submitted_by": None}


def route(chart, content, threshold=0.4, **kwargs):
    cases = FakeCases()
    case, events = flows.route(cases, chart, case_rules(), submitted(content, **kwargs), T0, threshold)
    return cases, case, events


def supervisor(chart):
    person = chart.ladder(STORE)[1]
    assert person.role is Role.SUPERVISOR
    return Principal.for_staff(person, "yueyan")


def test_a_sure_case_is_routed_with_its_explanation_on_the_case_the_timeline_and_the_event(chart):
    _, case, events = route(chart, "会员卡余额被莫名扣了两次钱，消费记录对不上")
    assert case["category"] == "price" and case["triage"] is None and case["rung"] == 0
    explained = case["classification"]
    assert explained["source"] == "model" and explained["confidence"] >= 0.4 and explained["features"]
    routed = case["timeline"][1]
    assert routed["confidence"] == explained["confidence"] and routed["model_version"] == explained["model_version"]
    payload = ev.load(ev.CASE_ROUTED, events[0]["payload"])
    assert payload["model_version"] == explained["model_version"] and payload["triage"] is False
    assert payload["runner_up"] == explained["runner_up"]


def test_an_unsure_case_goes_to_the_supervisor_with_two_suggestions(chart):
    _, case, events = route(chart, "一般般")
    assert case["triage"]["status"] == "pending" and len(case["triage"]["suggestions"]) == 2
    assert case["rung"] == 1 and case["assignee"]["role"] == "supervisor"
    assert [e["action"] for e in case["timeline"][-2:]] == ["triage_queued", "customer_recognised"]
    assert events[0]["payload"]["triage"] is True


def test_a_harmful_unsure_case_keeps_the_higher_rung_its_severity_asks_for(chart):
    # critical starts at the store manager (ladder.START_LEVEL), above the triage's supervisor
    _, case, _ = route(chart, "做完以后起了水泡，我要找律师", threshold=0.99)
    assert case["triage"]["status"] == "pending" and case["severity"] == "critical"
    assert case["rung"] >= 2


def test_the_submitters_category_is_never_triaged(chart):
    _, case, _ = route(chart, "一般般", threshold=0.99, category="booking")
    assert case["category"] == "booking" and case["triage"] is None
    assert case["classification"]["source"] == "submitter"


def test_a_correction_resolves_the_triage_and_is_recorded_with_who_and_why(chart):
    cases, case, _ = route(chart, "一般般")
    corrections = FakeCorrections()
    who = supervisor(chart)
    corrected, events = flows.reclassify(cases, corrections, "c1", "service_quality", "整体服务不满意",
                                         who, Scope(frozenset({STORE})), T0 + timedelta(minutes=5))
    assert corrected["category"] == "service_quality"
    assert corrected["triage"]["status"] == "resolved" and corrected["triage"]["resolved_by"] == who.actor
    assert corrected["classification"]["source"] == "staff"
    assert corrected["classification"]["model_category"] == case["category"]
    entry = corrected["timeline"][-1]
    assert (entry["action"], entry["actor"], entry["reason"], entry["previous"]) == (
        "reclassified", who.actor, "整体服务不满意", case["category"])
    [record] = corrections.records.values()
    assert (record["text"], record["category"], record["by"], record["model_category"]) == (
        "一般般", "service_quality", who.actor, case["category"])
    # reporting hears of it: what was corrected to what, by which model, by role (no one's name or id)
    [event] = [e for e in events if e["type"] == ev.CASE_RECLASSIFIED]
    told = ev.load(ev.CASE_RECLASSIFIED, event["payload"])
    assert (told["previous_category"], told["category"], told["model_category"], told["by_role"]) == (
        case["category"], "service_quality", case["category"], "supervisor")
    assert told["correction_id"] == record["_id"] and told["model_version"] == case["classification"]["model_version"]
    assert who.actor not in str(event["payload"])


def test_a_case_out_of_scope_cannot_be_corrected(chart):
    cases, _, _ = route(chart, "一般般")
    with pytest.raises(flows.CaseNotFound):
        flows.reclassify(cases, FakeCorrections(), "c1", "price", "x", supervisor(chart),
                         Scope(frozenset({"HZ-XH-002"})), T0)
