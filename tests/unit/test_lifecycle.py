"""services/routing/lifecycle.py: a case's status and the staff actions that move it.

Case documents are built the way services/routing/flows.py route() builds them (checked
against route() itself with an in-memory repository below)."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from closeloop_shared import org
from services.routing import flows, lifecycle, sla
from services.routing.lifecycle import ActionRefused, CaseStatus
from services.routing.sla import Policy
from tests.unit.fakes import FakeCases

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
POLICY = Policy()
ALL_STATUSES = [s.value for s in CaseStatus]


def at(hours):
    return T0 + timedelta(hours=hours)


def make_case(severity="low", submitted_at=T0, routed_at=None, policy=POLICY):
    """A routed case, as flows.route() leaves it (without the org-chart fields)."""
    routed_at = routed_at or submitted_at
    rung = sla.initial_rung(severity)
    clocks = sla.arm_clocks(policy, submitted_at, severity)
    case = {
        "_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "severity": severity, "status": CaseStatus.OPEN.value, "rung": rung,
        "clocks": clocks, "last_escalated_at": None, "resolution_round": 0,
        "reopen_count": 0, "submitted_at": submitted_at,
    }
    if sla.escalates_immediately(severity):
        case["rung"], case["last_escalated_at"] = rung + 1, routed_at
    case["next_check_at"] = sla.next_check_at(
        clocks, case["rung"], case["last_escalated_at"], policy)
    return case


def apply(case, changes):
    return dict(case, **changes)


def with_status(case, status):
    return dict(case, status=status)


REFUND_B = {"type": "refund", "refund_option": "partial_continue", "amount": Decimal("150.00")}
APOLOGY = {"type": "apology"}


# -- the builder matches flows.route() ------------------------------------------------

@pytest.mark.parametrize("content, channel, severity", [
    ("前台态度冷淡", "in_store", "low"),
    ("我要求退款", "web", "medium"),
    ("脸上过敏红肿", "hotline", "high"),
    ("消费者协会转来的投诉", "consumer_association", "critical"),
])
def test_make_case_matches_what_route_builds(content, channel, severity):
    chart = org.load(ROOT / "deploy" / "seeds" / "org.yaml")
    submitted = {
        "case_id": "c1", "case_number": "CL-20261123-000001", "store_id": "SH-XH-001",
        "store_name": "上海徐汇店", "channel": channel,
        "customer": {"name": "刘女士", "phone": "+8613812345678", "email": None, "member_id": None},
        "content": content, "occurred_at": T0, "submitted_at": T0, "category": None,
        "external_ref": None, "service_context": None, "locale": "zh-CN",
        "submitted_by": {"kind": "staff", "client_id": None, "staff_id": "sh-xh-s1"}}
    # threshold 0: no triage queue here (an unsure category would start at the supervisor's rung)
    routed, _ = flows.route(FakeCases(), chart, POLICY, submitted, T0 + timedelta(seconds=3),
                            triage_threshold=0)
    built = make_case(severity, T0, T0 + timedelta(seconds=3))
    for key in ("severity", "status", "rung", "clocks", "last_escalated_at",
                "resolution_round", "reopen_count", "next_check_at"):
        assert routed[key] == built[key], key


# -- respond ------------------------------------------------------------------------

def test_respond_moves_an_open_case_in_progress():
    case = make_case()
    changes, entry, on_time = lifecycle.respond(case, "sh-xh-s1", "已电话联系顾客", at(2), POLICY)
    assert on_time is True
    assert changes["status"] == "in_progress"
    assert changes["first_response_at"] == at(2)
    assert changes["clocks"]["first_response"]["met_at"] == at(2)
    assert changes["clocks"]["resolution"]["met_at"] is None
    assert changes["next_check_at"] == at(48)  # only the resolution clock is left
    assert entry == {"at": at(2), "action": "first_response", "actor": "sh-xh-s1",
                     "note": "已电话联系顾客", "on_time": True}
    assert case["clocks"]["first_response"]["met_at"] is None  # input untouched


def test_a_late_first_response_is_recorded_as_late():
    case = make_case()
    changes, entry, on_time = lifecycle.respond(case, "sh-xh-s1", "抱歉回复晚了", at(30), POLICY)
    assert on_time is False
    assert entry["on_time"] is False
    assert changes["status"] == "in_progress"


@pytest.mark.parametrize("status", ["in_progress", "resolved", "reopened", "closed"])
def test_respond_is_only_for_open_cases(status):
    with pytest.raises(ActionRefused) as refused:
        lifecycle.respond(with_status(make_case(), status), "x", "note", at(1), POLICY)
    assert refused.value.code == "invalid_transition"
    assert status in refused.value.message


# -- file_report --------------------------------------------------------------------

def test_a_referral_files_its_written_report():
    case = make_case("critical")
    changes, entry, on_time = lifecycle.file_report(case, "sh-xh-mg", "书面报告:……", at(6), POLICY)
    assert on_time is True
    assert changes["report"] == "书面报告:……"
    assert changes["clocks"]["report"]["met_at"] == at(6)
    assert "status" not in changes
    assert entry == {"at": at(6), "action": "report_filed", "actor": "sh-xh-mg", "on_time": True}
    assert changes["next_check_at"] is not None


def test_a_late_report_is_late():
    _, entry, on_time = lifecycle.file_report(make_case("critical"), "m", "r", at(9), POLICY)
    assert on_time is False and entry["on_time"] is False


@pytest.mark.parametrize("severity", ["low", "medium", "high"])
def test_only_referrals_need_a_report(severity):
    with pytest.raises(ActionRefused) as refused:
        lifecycle.file_report(make_case(severity), "m", "r", at(1), POLICY)
    assert refused.value.code == "no_report_required"


def test_a_report_is_filed_once():
    case = make_case("critical")
    changes, _, _ = lifecycle.file_report(case, "m", "r", at(1), POLICY)
    with pytest.raises(ActionRefused) as refused:
        lifecycle.file_report(apply(case, changes), "m", "again", at(2), POLICY)
    assert refused.value.code == "invalid_transition"


def test_a_referral_is_resolved_only_after_its_written_report():
    case = make_case("critical")
    with pytest.raises(ActionRefused) as refused:
        lifecycle.resolve(case, APOLOGY, "m", "", at(3), POLICY)
    assert refused.value.code == "report_required"
    case = apply(case, lifecycle.file_report(case, "m", "书面报告", at(4), POLICY)[0])
    changes, _, _ = lifecycle.resolve(case, APOLOGY, "m", "", at(5), POLICY)
    assert changes["status"] == "resolved"
    with pytest.raises(ActionRefused) as refused:
        lifecycle.file_report(apply(case, changes), "m", "r", at(6), POLICY)
    assert refused.value.code == "invalid_transition"


def test_a_closed_referral_with_an_unmet_report_clock_is_refused():
    case = with_status(make_case("critical"), "closed")
    with pytest.raises(ActionRefused) as refused:
        lifecycle.file_report(case, "m", "r", at(4), POLICY)
    assert refused.value.code == "invalid_transition"


# -- resolve ------------------------------------------------------------------------

def test_resolve_stops_every_clock():
    case = make_case("high")
    changes, entry, on_time = lifecycle.resolve(case, REFUND_B, "sh-xh-mg", "已部分退款", at(20), POLICY)
    assert on_time is True
    assert changes["status"] == "resolved"
    assert changes["resolved_at"] == at(20)
    assert changes["resolution_note"] == "已部分退款"
    assert changes["resolution_round"] == 1
    assert all(c["met_at"] == at(20) for c in changes["clocks"].values())
    assert changes["next_check_at"] is None
    # Answered with its remedy: an unanswered case gets its first response now.
    assert changes["first_response_at"] == at(20)
    assert changes["remedy"] == {"type": "refund", "refund_option": "partial_continue",
                                 "amount": "150.00", "continue_treatment": True}
    assert entry == {"at": at(20), "action": "resolved", "actor": "sh-xh-mg",
                     "remedy": changes["remedy"], "note": "已部分退款", "on_time": True}


def test_resolving_an_answered_case_keeps_its_first_response_time():
    case = make_case()
    case = apply(case, lifecycle.respond(case, "s", "n", at(1), POLICY)[0])
    changes, _, _ = lifecycle.resolve(case, APOLOGY, "s", "", at(10), POLICY)
    assert "first_response_at" not in changes
    assert changes["clocks"]["first_response"]["met_at"] == at(1)


def test_a_late_resolution_is_late():
    changes, entry, on_time = lifecycle.resolve(make_case(), APOLOGY, "s", "", at(49), POLICY)
    assert on_time is False and entry["on_time"] is False
    assert changes["status"] == "resolved"


def test_resolution_exactly_at_the_deadline_is_on_time():
    assert lifecycle.resolve(make_case(), APOLOGY, "s", "", at(48), POLICY)[2] is True


@pytest.mark.parametrize("status", ["open", "in_progress", "reopened"])
def test_active_cases_can_be_resolved(status):
    changes, _, _ = lifecycle.resolve(with_status(make_case(), status), APOLOGY, "s", "", at(1), POLICY)
    assert changes["status"] == "resolved"


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_finished_cases_cannot_be_resolved(status):
    with pytest.raises(ActionRefused) as refused:
        lifecycle.resolve(with_status(make_case(), status), APOLOGY, "s", "", at(1), POLICY)
    assert refused.value.code == "invalid_transition"


def test_resolve_refuses_a_bad_remedy_before_changing_anything():
    with pytest.raises(ActionRefused) as refused:
        lifecycle.resolve(make_case(), {"type": "refund"}, "s", "", at(1), POLICY)
    assert refused.value.code == "validation_failed"
    assert refused.value.field == "remedy.refund_option"


def test_counters_start_from_zero_on_documents_without_them():
    case = make_case()
    del case["resolution_round"], case["reopen_count"]
    changes, _, _ = lifecycle.resolve(case, APOLOGY, "s", "", at(1), POLICY)
    assert changes["resolution_round"] == 1
    reopened, _ = lifecycle.reopen(apply(case, changes), "s", "r", "staff", at(2), POLICY)
    assert reopened["reopen_count"] == 1


def test_a_second_resolution_is_round_two():
    case = _resolved()
    case = apply(case, lifecycle.reopen(case, "s", "r", "revisit", at(80), POLICY)[0])
    changes, _, on_time = lifecycle.resolve(case, APOLOGY, "s", "", at(100), POLICY)
    assert changes["resolution_round"] == 2
    assert on_time is True  # judged against the re-armed clock (due at 128 h), not 48 h


# -- reopen, close --------------------------------------------------------------------

def _resolved(severity="low", when=at(10)):
    case = make_case(severity)
    return apply(case, lifecycle.resolve(case, APOLOGY, "s", "", when, POLICY)[0])


def test_reopen_rearms_the_resolution_clock_and_keeps_the_rung():
    case = dict(_resolved(), rung=3, last_escalated_at=at(5))
    changes, entry = lifecycle.reopen(case, "sh-xh-mg", "顾客不满意", "staff", at(80), POLICY)
    assert changes["status"] == "reopened"
    assert changes["reopen_count"] == 1
    assert changes["last_escalated_at"] is None
    assert "rung" not in changes  # nobody is demoted
    assert changes["clocks"]["resolution"] == {"due_at": at(128), "met_at": None, "breached_at": None}
    assert changes["clocks"]["first_response"] == case["clocks"]["first_response"]
    assert changes["next_check_at"] == at(128)
    assert entry == {"at": at(80), "action": "reopened", "actor": "sh-xh-mg",
                     "reason": "顾客不满意", "source": "staff"}


def test_a_closed_case_can_be_reopened():
    case = _resolved()
    case = apply(case, lifecycle.close(case, "s", at(20))[0])
    changes, _ = lifecycle.reopen(dict(case, reopen_count=2), "s", "r", "revisit", at(30), POLICY)
    assert changes["status"] == "reopened"
    assert changes["reopen_count"] == 3


@pytest.mark.parametrize("status", ["open", "in_progress", "reopened"])
def test_only_finished_cases_can_be_reopened(status):
    with pytest.raises(ActionRefused) as refused:
        lifecycle.reopen(with_status(make_case(), status), "s", "r", "staff", at(1), POLICY)
    assert refused.value.code == "invalid_transition"


def test_close_a_resolved_case():
    changes, entry = lifecycle.close(_resolved(), "revisit:r1", at(90))
    assert changes == {"status": "closed", "closed_at": at(90), "next_check_at": None}
    assert entry == {"at": at(90), "action": "closed", "actor": "revisit:r1"}


@pytest.mark.parametrize("status", ["open", "in_progress", "reopened", "closed"])
def test_only_resolved_cases_can_be_closed(status):
    with pytest.raises(ActionRefused) as refused:
        lifecycle.close(with_status(make_case(), status), "s", at(1))
    assert refused.value.code == "invalid_transition"


def test_an_unknown_status_is_not_silently_accepted():
    with pytest.raises(ValueError):
        lifecycle.close(with_status(make_case(), "archived"), "s", at(1))


# -- check_remedy ---------------------------------------------------------------------

@pytest.mark.parametrize("option, amount, expected_amount, continues", [
    ("none_continue", None, None, True),                   # A 不退款,还做
    ("none_continue", Decimal("0.00"), "0.00", True),
    ("partial_continue", Decimal("150.00"), "150.00", True),  # B 部分退,还做
    ("full_continue", None, None, True),                   # C 全退,还做
    ("full_continue", Decimal("3980.00"), "3980.00", True),
    ("full_stop", Decimal("3980.00"), "3980.00", False),   # D 全退,不做
    ("full_stop", None, None, False),
])
def test_the_four_refund_options(option, amount, expected_amount, continues):
    remedy = {"type": "refund", "refund_option": option, "amount": amount}
    assert lifecycle.check_remedy(remedy) == {
        "type": "refund", "refund_option": option, "amount": expected_amount,
        "continue_treatment": continues}


def test_only_full_stop_ends_the_treatment():
    stops = {option for option in lifecycle.REFUND_OPTIONS
             if not lifecycle.check_remedy({
                 "type": "refund", "refund_option": option,
                 "amount": None if option == "none_continue" else Decimal("10.00"),
             })["continue_treatment"]}
    assert stops == {"full_stop"}


def test_a_refund_needs_an_option():
    with pytest.raises(ActionRefused) as refused:
        lifecycle.check_remedy({"type": "refund", "amount": Decimal("100.00")})
    assert (refused.value.code, refused.value.field) == ("validation_failed", "remedy.refund_option")


@pytest.mark.parametrize("amount", [None, Decimal("0"), Decimal("-1.00")])
def test_a_partial_refund_needs_a_positive_amount(amount):
    with pytest.raises(ActionRefused) as refused:
        lifecycle.check_remedy({"type": "refund", "refund_option": "partial_continue", "amount": amount})
    assert (refused.value.code, refused.value.field) == ("validation_failed", "remedy.amount")


def test_option_a_refunds_nothing():
    with pytest.raises(ActionRefused) as refused:
        lifecycle.check_remedy({"type": "refund", "refund_option": "none_continue",
                                "amount": Decimal("50.00")})
    assert (refused.value.code, refused.value.field) == ("validation_failed", "remedy.amount")


def test_compensation_with_a_positive_amount():
    assert lifecycle.check_remedy({"type": "compensation", "amount": Decimal("200.00")}) == {
        "type": "compensation", "refund_option": None, "amount": "200.00",
        "continue_treatment": True}


@pytest.mark.parametrize("amount", [None, Decimal("0.00"), Decimal("-5")])
def test_compensation_needs_a_positive_amount(amount):
    with pytest.raises(ActionRefused) as refused:
        lifecycle.check_remedy({"type": "compensation", "amount": amount})
    assert (refused.value.code, refused.value.field) == ("validation_failed", "remedy.amount")


def test_an_apology():
    assert lifecycle.check_remedy({"type": "apology"}) == {
        "type": "apology", "refund_option": None, "amount": None, "continue_treatment": True}


def test_an_apology_takes_no_refund_option():
    with pytest.raises(ActionRefused) as refused:
        lifecycle.check_remedy({"type": "apology", "refund_option": "full_stop"})
    assert (refused.value.code, refused.value.field) == ("validation_failed", "remedy.refund_option")


def test_a_compensation_takes_no_refund_option():
    with pytest.raises(ActionRefused) as refused:
        lifecycle.check_remedy({"type": "compensation", "refund_option": "full_stop",
                                "amount": Decimal("200.00")})
    assert (refused.value.code, refused.value.field) == ("validation_failed", "remedy.refund_option")


def test_action_refused_carries_code_message_and_field():
    error = ActionRefused("validation_failed", "bad amount", "remedy.amount")
    assert isinstance(error, Exception)
    assert (error.code, error.message, error.field, str(error)) == (
        "validation_failed", "bad amount", "remedy.amount", "bad amount")


# -- stateful: random sequences of actions over time -----------------------------------

seconds = st.integers(min_value=60, max_value=200_000)
remedies = st.sampled_from([
    APOLOGY,
    {"type": "compensation", "amount": Decimal("88.00")},
    {"type": "refund", "refund_option": "none_continue"},
    REFUND_B,
    {"type": "refund", "refund_option": "full_continue", "amount": Decimal("980.00")},
    {"type": "refund", "refund_option": "full_stop", "amount": Decimal("3980.00")},
])


class CaseMachine(RuleBasedStateMachine):
    """One case under random staff actions, deadline checks and passing time."""

    @initialize(severity=st.sampled_from(("low", "medium", "high", "critical")),
                fr=seconds, res=seconds, rep=seconds, step=seconds)
    def route(self, severity, fr, res, rep, step):
        self.policy = Policy.from_seconds(fr, res, rep, step)
        self.now = T0
        self.case = make_case(severity, T0, T0, self.policy)
        self.resolves = 0
        self.reopens = 0
        self.rung_seen = self.case["rung"]

    def _refused(self, action, allowed):
        """Runs `action`; it must be refused exactly when the status is not allowed."""
        status = self.case["status"]
        if status in allowed:
            return action()
        with pytest.raises(ActionRefused) as refused:
            action()
        assert refused.value.code == "invalid_transition"
        return None

    @rule(delta=seconds)
    def time_passes(self, delta):
        self.now += timedelta(seconds=delta)

    @rule()
    def respond(self):
        done = self._refused(
            lambda: lifecycle.respond(self.case, "s", "note", self.now, self.policy), ("open",))
        if done:
            changes, _, on_time = done
            assert on_time == (self.now <= self.case["clocks"]["first_response"]["due_at"])
            self.case = apply(self.case, changes)

    @rule()
    def file_report(self):
        report = self.case["clocks"].get("report")
        if report is None or report["met_at"] is not None:
            with pytest.raises(ActionRefused) as refused:
                lifecycle.file_report(self.case, "m", "书面报告", self.now, self.policy)
            assert refused.value.code == ("no_report_required" if report is None else "invalid_transition")
            return
        done = self._refused(
            lambda: lifecycle.file_report(self.case, "m", "书面报告", self.now, self.policy),
            ("open", "in_progress", "reopened"))
        if done:
            self.case = apply(self.case, done[0])
            assert self.case["clocks"]["report"]["met_at"] == self.now

    @rule(remedy=remedies)
    def resolve(self, remedy):
        report = self.case["clocks"].get("report")
        if self.case["status"] in ("open", "in_progress", "reopened") and report and report["met_at"] is None:
            with pytest.raises(ActionRefused) as refused:
                lifecycle.resolve(self.case, remedy, "s", "", self.now, self.policy)
            assert refused.value.code == "report_required"
            return
        done = self._refused(
            lambda: lifecycle.resolve(self.case, remedy, "s", "", self.now, self.policy),
            ("open", "in_progress", "reopened"))
        if done:
            changes, _, on_time = done
            assert on_time == (self.now <= self.case["clocks"]["resolution"]["due_at"])
            assert changes["resolution_round"] == self.case["resolution_round"] + 1
            self.case = apply(self.case, changes)
            self.resolves += 1

    @rule(source=st.sampled_from(("staff", "revisit")))
    def reopen(self, source):
        done = self._refused(
            lambda: lifecycle.reopen(self.case, "s", "顾客不满意", source, self.now, self.policy),
            ("resolved", "closed"))
        if done:
            changes, _ = done
            assert changes["clocks"]["resolution"]["due_at"] == self.now + self.policy.resolution
            assert changes["clocks"]["resolution"]["met_at"] is None
            assert changes["clocks"]["resolution"]["breached_at"] is None
            self.case = apply(self.case, changes)
            self.reopens += 1

    @rule()
    def close(self):
        done = self._refused(lambda: lifecycle.close(self.case, "s", self.now), ("resolved",))
        if done:
            self.case = apply(self.case, done[0])

    @precondition(lambda self: self.case["next_check_at"] is not None
                  and self.case["next_check_at"] <= self.now)
    @rule()
    def deadline_check(self):
        """What flows.check_deadlines does with a case that is due."""
        case = self.case
        decision = sla.evaluate(case["clocks"], case["rung"], case["last_escalated_at"],
                                self.now, self.policy)
        clocks = {n: dict(c, breached_at=self.now) if n in decision.newly_breached else c
                  for n, c in case["clocks"].items()}
        changes = {"clocks": clocks, "next_check_at": decision.next_check_at}
        if decision.escalate:
            changes.update(rung=case["rung"] + 1, last_escalated_at=self.now)
        self.case = apply(case, changes)

    @invariant()
    def status_is_a_case_status(self):
        assert self.case["status"] in ALL_STATUSES

    @invariant()
    def scheduled_exactly_while_active(self):
        case = self.case
        finished = case["status"] in ("resolved", "closed")
        if finished:
            assert case["next_check_at"] is None
        elif case["next_check_at"] is None:
            # An active case goes unscheduled only when nothing more can happen: at the
            # top rung with every unmet clock already breached.
            assert case["rung"] == sla.TOP_RUNG
            assert all(c["breached_at"] is not None for c in sla.unmet(case["clocks"]).values())
            assert sla.unmet(case["clocks"])

    @invariant()
    def counters_follow_the_actions(self):
        assert self.case["resolution_round"] == self.resolves
        assert self.case["reopen_count"] == self.reopens

    @invariant()
    def rung_only_climbs(self):
        assert self.rung_seen <= self.case["rung"] <= sla.TOP_RUNG
        self.rung_seen = self.case["rung"]

    @invariant()
    def finished_cases_have_every_clock_met(self):
        if self.case["status"] in ("resolved", "closed"):
            assert all(c["met_at"] is not None for c in self.case["clocks"].values())


CaseMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestCaseMachine = CaseMachine.TestCase


def test_unscheduled_active_case_is_reachable_only_at_the_top():
    """The exception in `scheduled_exactly_while_active` does happen: a low case left
    unanswered climbs to the top and, once both clocks have breached, is not checked
    again until someone acts."""
    case = make_case("low")
    now = at(24)
    while case["next_check_at"] is not None:
        decision = sla.evaluate(case["clocks"], case["rung"], case["last_escalated_at"], now, POLICY)
        clocks = {n: dict(c, breached_at=now) if n in decision.newly_breached else c
                  for n, c in case["clocks"].items()}
        case = apply(case, {"clocks": clocks, "next_check_at": decision.next_check_at})
        if decision.escalate:
            case = apply(case, {"rung": case["rung"] + 1, "last_escalated_at": now})
        now = decision.next_check_at or now
    assert case["rung"] == sla.TOP_RUNG and case["status"] == "open"
    # Acting on it schedules it again.
    changes, _ = lifecycle.reopen(with_status(case, "resolved"), "s", "r", "staff", now, POLICY)
    assert changes["next_check_at"] == now + POLICY.resolution


def test_case_statuses_are_the_shared_vocabulary():
    from closeloop_shared.events import CASE_STATUSES
    assert tuple(status.value for status in CaseStatus) == CASE_STATUSES


def test_minus_zero_amount_is_stored_without_its_sign():
    from decimal import Decimal
    remedy = lifecycle.check_remedy({"type": "refund", "refund_option": "full_stop", "amount": Decimal("-0.00")})
    assert remedy["amount"] == "0.00"
