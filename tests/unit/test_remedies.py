"""services/routing/remedies.py (the remedy ledger and approval limits) and
services/routing/duplicates.py (recognising the same customer), pure."""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared import org
from closeloop_shared.config import DEFAULTS, REMEDY_APPROVAL_LIMITS_FEN
from closeloop_shared.contract import RefundOption, RemedyStatus, RemedyType, Role
from services.routing import duplicates, remedies
from services.routing.refusals import ActionRefused

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
LIMITS = remedies.Limits.from_config(DEFAULTS[REMEDY_APPROVAL_LIMITS_FEN])
CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
LADDER = [person.as_dict() for person in CHART.ladder("SH-XH-001")]


def propose(kind, amount_fen=0, option=None, proposer="sh-xh-mg", role=Role.STORE_MANAGER, repeat=None):
    return remedies.propose(kind, option, amount_fen, 1, proposer, role, LADDER, LIMITS, repeat, T0)


@pytest.mark.parametrize("kind, option, amount_fen, field", [
    ("refund", None, 1000, "refund_option"),
    ("refund", "partial_continue", 0, "amount_fen"),
    ("refund", "full_stop", 0, "amount_fen"),
    ("refund", "none_continue", 500, "amount_fen"),
    ("compensation", None, 0, "amount_fen"),
    ("voucher", None, 0, "amount_fen"),
    ("apology", None, 100, "amount_fen"),
    ("compensation", "full_stop", 100, "refund_option"),
])
def test_a_remedy_whose_parts_do_not_fit_is_refused_naming_the_field(kind, option, amount_fen, field):
    with pytest.raises(ActionRefused) as refused:
        remedies.check(kind, option, amount_fen)
    assert (refused.value.code, refused.value.field) == ("validation_failed", field)


def test_the_four_refund_options_are_a_to_d():
    assert [o.letter for o in RefundOption] == ["A", "B", "C", "D"]
    assert [o for o in RefundOption if not o.continues_treatment] == [RefundOption.FULL_STOP]
    assert [o for o in RefundOption if not o.refunds] == [RefundOption.NONE_CONTINUE]


def test_within_the_proposer_s_limit_a_remedy_is_approved_at_once():
    remedy = propose("compensation", 50_000)
    assert remedy.status is RemedyStatus.APPROVED and remedy.decided_by == "sh-xh-mg"
    assert remedy.approver is None


def test_above_the_store_manager_s_limit_it_waits_for_the_regional_manager():
    remedy = propose("compensation", 50_001)
    assert remedy.status is RemedyStatus.PENDING_APPROVAL and remedy.approver["staff_id"] == "rm-east"
    assert propose("compensation", 200_001).approver["role"] == "general_manager"


def test_a_refund_proposed_by_store_staff_waits_for_the_store_manager():
    remedy = propose("refund", 15_000, "partial_continue", proposer="sh-xh-s1", role=Role.STORE_STAFF)
    assert remedy.status is RemedyStatus.PENDING_APPROVAL and remedy.approver["staff_id"] == "sh-xh-mg"


def test_an_apology_and_option_a_need_nobody():
    for remedy in (propose("apology", proposer="sh-xh-s1", role=Role.STORE_STAFF),
                   propose("refund", 0, "none_continue", proposer="sh-xh-s1", role=Role.STORE_STAFF)):
        assert remedy.status is RemedyStatus.APPROVED


def test_a_repeat_customer_is_flagged_and_never_approved_by_the_proposer():
    repeat = remedies.repeat_of([("HZ-XH-002", _given("compensation", 30_000)),
                                 ("SH-XH-001", _given("refund", 98_000, "full_stop")),
                                 ("SH-XH-001", _given("apology", 0))], threshold=2)
    assert repeat == {"count": 2, "stores": ["HZ-XH-002", "SH-XH-001"], "amount_fen": 128_000}
    remedy = propose("compensation", 10_000, repeat=repeat)
    assert remedy.flags == ("repeat_customer",) and remedy.status is RemedyStatus.PENDING_APPROVAL
    assert remedy.approver["staff_id"] == "rm-east"  # the next one up whose limit covers it
    with pytest.raises(ActionRefused) as refused:
        remedies.decide(remedy, True, "sh-xh-mg", Role.STORE_MANAGER, LIMITS, "", T0)
    assert refused.value.code == "own_proposal"
    approved = remedies.decide(remedy, True, "rm-east", Role.REGIONAL_MANAGER, LIMITS, "ok", T0)
    assert approved.status is RemedyStatus.APPROVED and approved.flags == ("repeat_customer",)


def _given(kind, amount_fen, option=None):
    return {"type": kind, "refund_option": option, "amount_fen": amount_fen, "status": "approved"}


def test_below_the_threshold_nobody_is_flagged():
    assert remedies.repeat_of([("S", _given("compensation", 100))], threshold=2) is None


def test_a_decision_above_the_decider_s_limit_or_on_a_decided_remedy_is_refused():
    remedy = propose("compensation", 150_000)
    with pytest.raises(ActionRefused) as refused:
        remedies.decide(remedy, True, "sh-xh-mg", Role.STORE_MANAGER, LIMITS, "", T0)
    assert refused.value.code == "above_approval_limit"
    rejected = remedies.decide(remedy, False, "sh-xh-mg", Role.STORE_MANAGER, LIMITS, "太高", T0)
    assert rejected.status is RemedyStatus.REJECTED  # anyone who may approve may turn it down
    with pytest.raises(ActionRefused) as refused:
        remedies.decide(rejected, True, "rm-east", Role.REGIONAL_MANAGER, LIMITS, "", T0)
    assert refused.value.code == "remedy_decided"


def test_the_resolution_takes_the_round_s_newest_approved_remedy():
    first, second = propose("voucher", 10_000), propose("compensation", 20_000)
    assert remedies.for_resolution([first, second], 1) == second
    assert remedies.for_resolution([first, second], 1, first.remedy_id) == first
    assert remedies.for_resolution([first, second], 2) is None  # the next round: an apology
    with pytest.raises(ActionRefused) as refused:
        remedies.for_resolution([first, propose("compensation", 90_000)], 1)
    assert refused.value.code == "remedy_pending"


def test_the_ledger_entry_round_trips_through_its_document():
    remedy = propose("refund", 398_000, "full_stop")
    assert remedies.Remedy.from_doc(remedy.to_doc()) == remedy
    assert remedy.to_doc()["continue_treatment"] is False and remedy.type is RemedyType.REFUND


@given(amount=st.integers(0, 10**8), role=st.sampled_from(list(Role)))
def test_a_limit_covers_exactly_the_amounts_up_to_it(amount, role):
    remedy = remedies.Remedy("r", RemedyType.COMPENSATION, None, amount, 1, RemedyStatus.PENDING_APPROVAL, "x", T0)
    limit = LIMITS.by_role.get(role, 0)
    assert LIMITS.covers(role, remedy) == (amount == 0 or (role in LIMITS.by_role and (
        limit is None or amount <= limit)))
    assert isinstance(amount, int)


# -- duplicates ----------------------------------------------------------------------

def test_a_customer_is_known_by_member_id_and_normalised_phone():
    assert duplicates.customer_keys({"phone": "138 1234 5678", "member_id": "VIP-1"}) == [
        "member:VIP-1", "phone:+8613812345678"]
    assert duplicates.customer_keys({"phone": "+86 138-1234-5678"}) == ["phone:+8613812345678"]
    assert duplicates.customer_keys({"name": "刘"}) == []


def _case(case_id, hours, store="SH-XH-001", keys=("phone:+8613812345678",), **extra):
    return {"_id": case_id, "store_id": store, "submitted_at": T0 + timedelta(hours=hours),
            "customer_keys": list(keys), **extra}


def test_related_cases_are_the_same_customer_at_the_same_store_within_the_window():
    new = _case("new", 100)
    candidates = [_case("a", 0), _case("b", 90), _case("other-store", 95, store="HZ-XH-002"),
                  _case("other-customer", 95, keys=("phone:+8613900000000",)), _case("merged", 96, merged_into="b"),
                  _case("member", 97, keys=("member:VIP-1",)), new]
    assert duplicates.related(new, candidates, timedelta(hours=24)) == ["b"]
    member = _case("new2", 100, keys=("member:VIP-1", "phone:+8613700000000"))
    assert duplicates.related(member, candidates, timedelta(hours=24)) == ["member"]
    assert duplicates.related(new, candidates, timedelta(hours=200)) == ["a", "b"]


def test_approval_limits_come_from_a_mapping_or_its_json_text_as_the_environment_gives_it():
    from services.routing.remedies import Limits
    text = '{"store_manager": 80000, "general_manager": null}'
    assert Limits.from_config(text) == Limits.from_config({"store_manager": 80000, "general_manager": None})
    assert Limits.from_config(text).by_role == {Role.STORE_MANAGER: 80000, Role.GENERAL_MANAGER: None}
