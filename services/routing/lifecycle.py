"""A case's lifecycle as an explicit state machine. Pure: no nameko, no pymongo.

TRANSITIONS says, for each status, which actions are allowed and the status each one
leads to; an action the table does not allow is refused (HTTP 409) naming the actions
that are. Each action is a function over a typed view of the case (CaseView) and `now`
returning the fields to change and a timeline entry (who, when, what, the values before
and after); the repository writes both at once, conditional on the version read. Clock
effects go only through services/routing/sla.py.
"""
from dataclasses import dataclass, field

from closeloop_shared.contract import ACTIVE_CASE_STATUSES, CaseAction, CaseStatus, RemedyStatus, RootCause
from services.routing import remedies, sla
from services.routing.refusals import ActionRefused
from services.routing.remedies import Remedy

__all__ = ["ActionRefused", "CaseStatus", "CaseView", "TRANSITIONS", "allowed_actions"]

S, A = CaseStatus, CaseAction
ACTIVE = tuple(s for s in S if s in ACTIVE_CASE_STATUSES)

# Actions that leave the status as it is, wherever they are allowed.
_IN_PLACE = (A.NOTE, A.REPORT_TO_SUPERIOR, A.PROPOSE_REMEDY, A.APPROVE_REMEDY, A.REJECT_REMEDY,
             A.ROOT_CAUSE, A.FILE_REPORT, A.SIGN_OFF_REPORT, A.LINK)


def _stay(status, actions):
    return {action: status for action in actions}


def _working(status):
    """What can be done to a case someone is working on."""
    return {**_stay(status, _IN_PLACE), A.ACKNOWLEDGE: S.ACKNOWLEDGED if status in (S.ASSIGNED, S.REOPENED)
            else status, A.RESPOND: S.INVESTIGATING, A.REQUEST_INFO: S.PENDING_CUSTOMER,
            A.RESOLVE: S.RESOLVED, A.MERGE: S.CLOSED}


TRANSITIONS = {
    # nobody owns it yet (the duty assignment moves it on): answer, investigate, merge
    S.NEW: {**_stay(S.NEW, (A.NOTE, A.REPORT_TO_SUPERIOR, A.ROOT_CAUSE, A.FILE_REPORT,
                            A.SIGN_OFF_REPORT, A.LINK)), A.RESPOND: S.INVESTIGATING, A.MERGE: S.CLOSED},
    S.ASSIGNED: _working(S.ASSIGNED),
    # acknowledging again is how an escalated rung's owner takes the case on
    S.ACKNOWLEDGED: _working(S.ACKNOWLEDGED),
    S.INVESTIGATING: _working(S.INVESTIGATING),
    S.REOPENED: _working(S.REOPENED),
    # waiting on the customer: no remedy is proposed and nobody answers until they do
    S.PENDING_CUSTOMER: {**_stay(S.PENDING_CUSTOMER, (
        A.ACKNOWLEDGE, A.NOTE, A.REPORT_TO_SUPERIOR, A.APPROVE_REMEDY, A.REJECT_REMEDY, A.ROOT_CAUSE,
        A.FILE_REPORT, A.SIGN_OFF_REPORT, A.LINK)), A.RESUME: S.INVESTIGATING, A.MERGE: S.CLOSED},
    S.RESOLVED: {**_stay(S.RESOLVED, (A.NOTE, A.ROOT_CAUSE, A.LINK)), A.CLOSE: S.CLOSED,
                 A.REOPEN: S.REOPENED},
    S.CLOSED: {A.LINK: S.CLOSED, A.REOPEN: S.REOPENED, A.ARCHIVE: S.ARCHIVED},
    S.ARCHIVED: {},
}


# How each action is named in the timeline (past tense, as routing's other entries).
TIMELINE_NAMES = {
    A.ACKNOWLEDGE: "acknowledged", A.RESPOND: "responded", A.NOTE: "noted",
    A.REPORT_TO_SUPERIOR: "reported_to_superior", A.REQUEST_INFO: "info_requested", A.RESUME: "resumed",
    A.PROPOSE_REMEDY: "remedy_proposed", A.APPROVE_REMEDY: "remedy_approved", A.REJECT_REMEDY: "remedy_rejected",
    A.ROOT_CAUSE: "root_cause_recorded", A.FILE_REPORT: "report_filed", A.SIGN_OFF_REPORT: "report_signed_off",
    A.RESOLVE: "resolved", A.CLOSE: "closed", A.REOPEN: "reopened", A.LINK: "linked", A.MERGE: "merged",
    A.ARCHIVE: "archived",
}


def allowed_actions(status):
    return [action.value for action in TRANSITIONS[CaseStatus(status)]]


@dataclass(frozen=True)
class CaseView:
    """What the state machine reads of a case document."""
    case_id: str
    status: CaseStatus
    clocks: dict
    rung: int
    resolution_round: int
    reopen_count: int
    remedies: tuple
    root_cause: dict | None
    report: dict | None
    merged_into: str | None
    related: tuple
    close_pending: dict | None  # a satisfied revisit whose close waits for the root cause
    doc: dict = field(default_factory=dict, repr=False, compare=False)  # for the audited "before"

    @classmethod
    def of(cls, doc):
        report = doc.get("report")
        return cls(case_id=doc["_id"], status=CaseStatus(doc["status"]), clocks=doc["clocks"],
                   rung=doc["rung"], resolution_round=doc.get("resolution_round", 0), reopen_count=doc.get("reopen_count", 0),
                   remedies=tuple(Remedy.from_doc(r) for r in doc.get("remedies") or ()),
                   root_cause=doc.get("root_cause"), report=report if isinstance(report, dict) else None,
                   merged_into=doc.get("merged_into"), related=tuple(doc.get("related") or ()),
                   close_pending=doc.get("close_pending"), doc=doc)

    def remedy(self, remedy_id):
        found = next((r for r in self.remedies if r.remedy_id == remedy_id), None)
        if found is None:
            raise ActionRefused("validation_failed", f"no remedy {remedy_id} on this case", "remedy_id")
        return found


def entry(now, action, actor, **details):
    return {"at": now, "action": action, "actor": actor, **details}


def _audited(before, after):
    """Only what changed, both ways."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {"before": {k: before.get(k) for k in keys}, "after": {k: after[k] for k in keys}}


def _due(clocks):
    return {name: c["due_at"] for name, c in clocks.items()}


def next_status(case, action):
    """The status `action` leads to, or ActionRefused naming what is allowed."""
    target = TRANSITIONS[case.status].get(action)
    if target is None:
        raise ActionRefused("invalid_transition", f"cannot {action.value} a case that is {case.status.value}",
                            allowed=allowed_actions(case.status))
    return target


def _refuse(case, code, message, field=None):
    raise ActionRefused(code, message, field, allowed=allowed_actions(case.status))


def _move(case, action, actor, now, clocks=None, changes=None, **details):
    """The changes and entry of `action`: the table's next status, the clocks (if they
    change) and the audited before/after values. (When the case is next checked follows
    from its clocks and its ladder: case_flows schedules it.)"""
    status = next_status(case, action)
    changes = dict(changes or {})
    before = {"status": case.status.value}
    after = {"status": status.value}
    if clocks is not None:
        changes["clocks"] = clocks
        before["deadlines"], after["deadlines"] = _due(case.clocks), _due(clocks)
    if status is not case.status:
        changes["status"] = status.value
    for key in changes:
        if key not in ("clocks", "next_check_at", "status", "remedies", "timeline"):
            before[key], after[key] = case.doc.get(key), changes[key]
    return changes, entry(now, TIMELINE_NAMES[action], actor, **details, **_audited(before, after))


# -- the actions --------------------------------------------------------------------

def acknowledge(case, actor, now):
    return _move(case, A.ACKNOWLEDGE, actor, now,
                 changes={"acknowledged_by": actor, "acknowledged_at": now}, rung=case.rung)


def respond(case, actor, note, now, calendar):
    """An answer to the customer. The first one meets the first-response clock; every
    one starts the keep-in-loop update clock afresh. The returned on_time is None for
    later ones (keep-in-loop updates)."""
    clocks, on_time = sla.meet(case.clocks, ["first_response"], now)
    clocks = sla.rearm(clocks, ["update"], now, calendar)
    first = "first_response" in on_time
    changes = {"first_response_at": now} if first else {}
    changes, item = _move(case, A.RESPOND, actor, now, clocks=clocks,
                          changes=changes, note=note, first=first, on_time=on_time.get("first_response"))
    return changes, item, on_time.get("first_response")


def note(case, actor, text, evidence, now):
    """An investigation note with evidence references ([{kind, ref}])."""
    return _move(case, A.NOTE, actor, now, note=text, evidence=list(evidence))


def report_to_superior(case, actor, message, superior, now):
    """报告上级: the superior (the next rung up, or the top) is told and on record."""
    return _move(case, A.REPORT_TO_SUPERIOR, actor, now, message=message,
                 superior=superior["staff_id"] if superior else None)


def request_info(case, actor, question, now):
    """Waiting for the customer's information: the customer-facing clocks pause."""
    clocks = sla.pause(case.clocks, now)
    return _move(case, A.REQUEST_INFO, actor, now, clocks=clocks, question=question,
                 paused=sorted(name for name, c in clocks.items() if c.get("paused_at")))


def resume(case, actor, answer, now, calendar):
    """The customer answered: the paused clocks resume, their deadlines moved on."""
    return _move(case, A.RESUME, actor, now, clocks=sla.resume(case.clocks, now, calendar), answer=answer)


def _ledger(case, remedy):
    others = [r.to_doc() for r in case.remedies if r.remedy_id != remedy.remedy_id]
    position = next((i for i, r in enumerate(case.remedies) if r.remedy_id == remedy.remedy_id), len(others))
    return others[:position] + [remedy.to_doc()] + others[position:]


def propose_remedy(case, remedy, now):
    """`remedy` from remedies.propose (approved at once, or waiting for its approver)."""
    before = {"remedy": None}
    changes, item = _move(case, A.PROPOSE_REMEDY, remedy.proposed_by, now,
                          changes={"remedies": _ledger(case, remedy)}, remedy_id=remedy.remedy_id)
    item.update(before=dict(item["before"], **before), after=dict(item["after"], remedy=remedy.to_doc()))
    return changes, item


def decide_remedy(case, decided, now):
    """`decided`: the remedy as remedies.decide left it (approved or rejected)."""
    action = A.APPROVE_REMEDY if decided.status is RemedyStatus.APPROVED else A.REJECT_REMEDY
    previous = case.remedy(decided.remedy_id)
    changes, item = _move(case, action, decided.decided_by, now,
                          changes={"remedies": _ledger(case, decided)}, remedy_id=decided.remedy_id,
                          reason=decided.reason)
    item.update(before=dict(item["before"], remedy_status=previous.status.value),
                after=dict(item["after"], remedy_status=decided.status.value))
    return changes, item


def pending_remedy(case, remedy_id):
    """The proposed remedy an approver decides on (409 if it is not waiting)."""
    remedy = case.remedy(remedy_id)
    if remedy.status is not RemedyStatus.PENDING_APPROVAL:
        _refuse(case, "remedy_decided", f"remedy {remedy_id} is already {remedy.status.value}")
    return remedy


def record_root_cause(case, actor, cause, actions, note_text, now):
    """The root cause (contract.RootCause) and improvement actions ([{text, owner, due}]):
    a cause on the salon's side needs at least one improvement action (seed 004: 找出问题所在,
    并制定相应的改进措施)."""
    next_status(case, A.ROOT_CAUSE)
    if RootCause(cause).side == "salon" and not actions:
        _refuse(case, "validation_failed", "a cause on the salon's side needs an improvement action", "actions")
    record = {"cause": RootCause(cause).value, "side": RootCause(cause).side, "actions": list(actions),
              "note": note_text, "recorded_by": actor, "recorded_at": now}
    return _move(case, A.ROOT_CAUSE, actor, now, changes={"root_cause": record})


def file_report(case, actor, summary, now):
    """A referral's written report. It counts as delivered only when the general
    manager signs it off; until then it may be filed again (a revision)."""
    next_status(case, A.FILE_REPORT)
    if case.clocks.get("report") is None:
        _refuse(case, "no_report_required", "only referral cases need a written report")
    if case.report and case.report.get("signed_off_at"):
        _refuse(case, "report_signed_off", "the report was already signed off")
    report = {"summary": summary, "filed_by": actor, "filed_at": now,
              "revision": (case.report or {}).get("revision", 0) + 1,
              "signed_off_by": None, "signed_off_at": None}
    return _move(case, A.FILE_REPORT, actor, now, changes={"report": report})


def sign_off_report(case, actor, now):
    """The general manager signs the filed report off: the report clock is met now."""
    next_status(case, A.SIGN_OFF_REPORT)
    if case.report is None or case.report.get("signed_off_at"):
        _refuse(case, "no_report_to_sign_off", "there is no filed report waiting for sign-off")
    clocks, on_time = sla.meet(case.clocks, ["report"], now)
    report = dict(case.report, signed_off_by=actor, signed_off_at=now)
    changes, item = _move(case, A.SIGN_OFF_REPORT, actor, now, clocks=clocks,
                          changes={"report": report}, on_time=on_time.get("report"))
    return changes, item, on_time.get("report")


def resolve(case, actor, remedy_id, note_text, now):
    """Resolved with the round's approved remedy (or an apology, which needs none).
    Stops the first-response, keep-in-loop update and resolution clocks (an unanswered
    case is answered by its remedy). A referral's written report must be signed off first."""
    next_status(case, A.RESOLVE)
    if "report" in case.clocks and case.clocks["report"]["met_at"] is None:
        _refuse(case, "report_required", "the referral's written report must be filed and signed off first")
    round_ = case.resolution_round + 1
    try:
        given = remedies.for_resolution(case.remedies, round_, remedy_id)
    except ActionRefused as refused:
        _refuse(case, refused.code, refused.message, refused.field)
    remedy = given.to_doc() if given else {"remedy_id": None, "type": "apology", "refund_option": None,
                                           "amount_fen": 0, "continue_treatment": True}
    clocks, on_time = sla.meet(case.clocks, ["first_response", "update", "resolution"], now)
    changes = {"remedy": remedy, "resolution_note": note_text, "resolved_at": now, "resolution_round": round_}
    if "first_response" in on_time:
        changes["first_response_at"] = now
    changes, item = _move(case, A.RESOLVE, actor, now, clocks=clocks, changes=changes,
                          on_time=on_time.get("resolution"))
    return changes, item, on_time.get("resolution")


def close(case, actor, now):
    """Closed once its root cause is on record (merged cases close by merge)."""
    next_status(case, A.CLOSE)
    if case.root_cause is None:
        _refuse(case, "root_cause_required", "record the root cause (POST .../root-cause) before closing")
    return _move(case, A.CLOSE, actor, now, changes={"closed_at": now, "close_pending": None})


def await_root_cause(case, actor, revisit, now):
    """A satisfied revisit of a case without a root cause: it stays resolved, and
    closes as soon as the root cause is recorded (flows.record_root_cause)."""
    pending = {"revisit_id": revisit["revisit_id"], "score": revisit["score"], "at": now}
    return {"close_pending": pending}, entry(now, "close_awaits_root_cause", actor,
                                             revisit_id=revisit["revisit_id"], score=revisit["score"])


def reopen(case, actor, reason, source, now, calendar):
    """Fresh resolution and keep-in-loop update clocks; the case keeps its rung (nobody
    is demoted)."""
    next_status(case, A.REOPEN)
    if case.merged_into:
        _refuse(case, "merged", f"this case was merged into {case.merged_into}: reopen that one")
    clocks = sla.rearm(case.clocks, ["resolution", "update"], now, calendar)
    changes = {"reopen_count": case.reopen_count + 1, "close_pending": None}
    return _move(case, A.REOPEN, actor, now, clocks=clocks, changes=changes,
                 reason=reason, source=source)


def link(case, actor, other_id, reason, now):
    """Related cases (duplicates): on both, each pointing at the other."""
    next_status(case, A.LINK)
    if other_id == case.case_id:
        _refuse(case, "validation_failed", "a case is not related to itself", "related")
    related = list(dict.fromkeys([*case.related, other_id]))
    return _move(case, A.LINK, actor, now, changes={"related": related},
                 related_case_id=other_id, reason=reason)


def merge(case, actor, into_id, now):
    """The duplicate closes with a pointer to the case it was merged into; its clocks
    stop for good."""
    next_status(case, A.MERGE)
    if into_id == case.case_id:
        _refuse(case, "validation_failed", "a case cannot be merged into itself", "into")
    related = list(dict.fromkeys([*case.related, into_id]))
    return _move(case, A.MERGE, actor, now, clocks=sla.stop(case.clocks, now),
                 changes={"merged_into": into_id, "closed_at": now, "related": related}, into=into_id)


def can_absorb(case):
    """A duplicate is merged into a case that is neither archived nor merged itself."""
    if case.status is CaseStatus.ARCHIVED or case.merged_into:
        raise ActionRefused("validation_failed", "merge into a case that is neither archived nor merged itself",
                            "into")


def absorb(case, actor, merged_id, now):
    """The case a duplicate was merged into: related to it, and on record."""
    can_absorb(case)
    related = list(dict.fromkeys([*case.related, merged_id]))
    return {"related": related}, entry(now, "merged_in", actor, merged_case_id=merged_id,
                                       before={"related": list(case.related)}, after={"related": related})


def archive(case, actor, now):
    return _move(case, A.ARCHIVE, actor, now, changes={"archived_at": now})
