"""A case's status and the actions that move it. Pure: each action takes the case
document and `now`, checks it is allowed, and returns the fields to change plus a
timeline entry; the repository writes them atomically."""
from decimal import Decimal
from enum import Enum

from services.routing import sla


class CaseStatus(str, Enum):
    OPEN = "open"                 # routed, waiting for a first response
    IN_PROGRESS = "in_progress"   # someone has answered the customer
    RESOLVED = "resolved"         # remedy given, satisfaction revisit pending
    REOPENED = "reopened"         # the customer was not satisfied, or staff reopened it
    CLOSED = "closed"             # the revisit found the customer satisfied enough


ACTIVE = (CaseStatus.OPEN, CaseStatus.IN_PROGRESS, CaseStatus.REOPENED)


class ActionRefused(Exception):
    """The action does not fit the case's state (HTTP 409) or its input (HTTP 422)."""

    def __init__(self, code, message, field=None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def entry(now, action, actor, **details):
    return {"at": now, "action": action, "actor": actor, **details}


def _status(case):
    return CaseStatus(case["status"])


def _require(case, allowed, action):
    if _status(case) not in allowed:
        raise ActionRefused("invalid_transition",
                            f"cannot {action} a case that is {case['status']}")


def _with_schedule(case, clocks, policy, **changes):
    rung = changes.get("rung", case["rung"])
    last = changes.get("last_escalated_at", case.get("last_escalated_at"))
    status = changes.get("status", case["status"])
    active = CaseStatus(status) in ACTIVE
    return dict(changes, clocks=clocks,
                next_check_at=sla.next_check_at(clocks, rung, last, policy) if active else None)


def respond(case, actor, note, now, policy):
    _require(case, (CaseStatus.OPEN,), "record a first response on")
    clocks, on_time = sla.meet(case["clocks"], ["first_response"], now)
    changes = _with_schedule(case, clocks, policy, status=CaseStatus.IN_PROGRESS.value,
                             first_response_at=now)
    return changes, entry(now, "first_response", actor, note=note,
                          on_time=on_time["first_response"]), on_time["first_response"]


def file_report(case, actor, summary, now, policy):
    """The written report a consumer-association or media referral needs within 8 h."""
    if "report" not in case["clocks"]:
        raise ActionRefused("no_report_required", "only referral cases need a written report")
    if case["clocks"]["report"]["met_at"] is not None:
        raise ActionRefused("invalid_transition", "the report was already filed")
    _require(case, ACTIVE, "file a report on")
    clocks, on_time = sla.meet(case["clocks"], ["report"], now)
    changes = _with_schedule(case, clocks, policy, report=summary)
    return changes, entry(now, "report_filed", actor, on_time=on_time["report"]), on_time["report"]


# The store procedure's options A-D, and whether each refunds and continues the course.
REFUND_OPTIONS = {
    "none_continue": ("none", True),      # A 不退款,还做
    "partial_continue": ("partial", True),  # B 部分退,还做
    "full_continue": ("full", True),      # C 全退,还做
    "full_stop": ("full", False),         # D 全退,不做
}


def check_remedy(remedy):
    kind, option, amount = remedy["type"], remedy.get("refund_option"), remedy.get("amount")
    if kind == "refund":
        if option is None:
            raise ActionRefused("validation_failed", "a refund needs refund_option (A-D)",
                                "remedy.refund_option")
        refund, _ = REFUND_OPTIONS[option]
        if refund == "partial" and (amount is None or amount <= 0):
            raise ActionRefused("validation_failed", "a partial refund needs a positive amount",
                                "remedy.amount")
        if refund == "none" and amount not in (None, Decimal(0)):
            raise ActionRefused("validation_failed", "option none_continue refunds nothing",
                                "remedy.amount")
    elif kind == "compensation":
        if amount is None or amount <= 0:
            raise ActionRefused("validation_failed", "compensation needs a positive amount",
                                "remedy.amount")
    if kind != "refund" and option is not None:
        raise ActionRefused("validation_failed", "refund_option applies to refunds only",
                            "remedy.refund_option")
    continues = REFUND_OPTIONS[option][1] if option else True
    return {"type": kind, "refund_option": option,
            "amount": str(amount.copy_abs()) if amount is not None else None,  # no "-0.00"
            "continue_treatment": continues}


def resolve(case, remedy, actor, note, now, policy):
    """Resolving stops the response and resolution clocks (an unanswered case is
    answered by its remedy). A referral's written report must be filed first."""
    _require(case, ACTIVE, "resolve")
    if "report" in case["clocks"] and case["clocks"]["report"]["met_at"] is None:
        raise ActionRefused("report_required",
                            "file the written report of this referral before resolving it")
    remedy = check_remedy(remedy)
    clocks, on_time = sla.meet(case["clocks"], ["first_response", "resolution"], now)
    changes = _with_schedule(
        case, clocks, policy, status=CaseStatus.RESOLVED.value, remedy=remedy,
        resolution_note=note, resolved_at=now,
        resolution_round=case.get("resolution_round", 0) + 1)
    if "first_response" in on_time:
        changes["first_response_at"] = now
    return changes, entry(now, "resolved", actor, remedy=remedy, note=note,
                          on_time=on_time["resolution"]), on_time["resolution"]


def reopen(case, actor, reason, source, now, policy):
    """A fresh resolution clock; the case keeps its rung (nobody is demoted)."""
    _require(case, (CaseStatus.RESOLVED, CaseStatus.CLOSED), "reopen")
    clocks = sla.rearm_resolution(case["clocks"], now, policy)
    changes = _with_schedule(case, clocks, policy, status=CaseStatus.REOPENED.value,
                             reopen_count=case.get("reopen_count", 0) + 1,
                             last_escalated_at=None)
    return changes, entry(now, "reopened", actor, reason=reason, source=source)


def close(case, actor, now):
    _require(case, (CaseStatus.RESOLVED,), "close")
    return {"status": CaseStatus.CLOSED.value, "closed_at": now, "next_check_at": None}, \
        entry(now, "closed", actor)
