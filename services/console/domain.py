"""What the console works out from the services' answers, for the pages: the clocks'
countdowns and the queue ordered by the clock that breaks first, the actions a person
may take on a case, the remedy approval path, masking for a shared screen, the store's
open breaches and cases at risk. Pure: no nameko, no HTTP, no storage."""
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from closeloop_shared.access import ROLE_PERMISSIONS, mask_phone
from closeloop_shared.contract import (
    ACTIVE_CASE_STATUSES, CaseAction, CaseStatus, ClockName, Permission, RefundOption, RemedyStatus,
    RemedyType, Role, Severity)

SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}
AT_RISK_LEAD = timedelta(hours=4)  # as reporting's at-risk gauge (REPORTING_AT_RISK_LEAD_SECONDS)


class ClockState(str, Enum):
    BREACHED = "breached"   # ran out unmet
    WARNING = "warning"     # within its warning lead
    RUNNING = "running"
    PAUSED = "paused"       # waiting on the customer: the clock stands still
    MET = "met"


@dataclass(frozen=True)
class Countdown:
    clock: ClockName
    due_at: datetime | None
    state: ClockState
    remaining_seconds: float | None  # negative once breached; None when met

    @property
    def running(self):
        return self.state in (ClockState.RUNNING, ClockState.WARNING, ClockState.BREACHED)


def _time(value):
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def countdown(name, clock, now):
    """One clock of a case (routing's `clocks[name]`) as it stands at `now`."""
    due, warn = _time(clock.get("due_at")), _time(clock.get("warn_at"))
    if clock.get("met_at") or clock.get("stopped_at"):
        return Countdown(ClockName(name), due, ClockState.MET, None)
    if clock.get("paused_at"):
        paused = _time(clock["paused_at"])
        return Countdown(ClockName(name), due, ClockState.PAUSED, (due - paused).total_seconds() if due else None)
    remaining = (due - now).total_seconds() if due else None
    if clock.get("breached_at") or (remaining is not None and remaining <= 0):
        state = ClockState.BREACHED
    elif warn is not None and now >= warn:
        state = ClockState.WARNING
    else:
        state = ClockState.RUNNING
    return Countdown(ClockName(name), due, state, remaining)


def countdowns(case, now):
    """Every clock of the case, the one that breaks first first (met clocks last)."""
    found = [countdown(name, clock, now) for name, clock in (case.get("clocks") or {}).items()
             if name in ClockName._value2member_map_]
    return sorted(found, key=lambda c: (not c.running, c.remaining_seconds if c.remaining_seconds is not None
                                        else float("inf")))


def first_to_break(case, now):
    """The running clock that breaks first (a breached one is already broken), or None."""
    running = [c for c in countdowns(case, now) if c.running]
    return running[0] if running else None


def queue_order(cases, now):
    """Active cases first, by the clock that breaks first (the longest-breached on top),
    then severity, then the oldest; cases with no running clock (paused, done) last."""
    def key(case):
        first = first_to_break(case, now)
        active = case["status"] in {s.value for s in ACTIVE_CASE_STATUSES}
        return (not active, first is None,
                first.remaining_seconds if first and first.remaining_seconds is not None else float("inf"),
                SEVERITY_RANK.get(Severity(case.get("severity") or "low"), 9), case.get("submitted_at") or "")
    return sorted(cases, key=key)


# -- who may do what -------------------------------------------------------------------

# The permission each case action needs at routing (its `access=` rules); the console
# offers an action only if routing allows it in the case's status and the person's role
# holds this permission.
ACTION_PERMISSION = {
    CaseAction.ACKNOWLEDGE: Permission.CASE_ACKNOWLEDGE, CaseAction.RESPOND: Permission.CASE_RESPOND,
    CaseAction.NOTE: Permission.CASE_RESPOND, CaseAction.REPORT_TO_SUPERIOR: Permission.CASE_RESPOND,
    CaseAction.REQUEST_INFO: Permission.CASE_RESPOND, CaseAction.RESUME: Permission.CASE_RESPOND,
    CaseAction.PROPOSE_REMEDY: Permission.CASE_RESOLVE, CaseAction.APPROVE_REMEDY: Permission.CASE_REMEDY_APPROVE,
    CaseAction.REJECT_REMEDY: Permission.CASE_REMEDY_APPROVE, CaseAction.ROOT_CAUSE: Permission.CASE_ROOT_CAUSE,
    CaseAction.FILE_REPORT: Permission.CASE_REPORT, CaseAction.SIGN_OFF_REPORT: Permission.CASE_REPORT_SIGN_OFF,
    CaseAction.RESOLVE: Permission.CASE_RESOLVE, CaseAction.CLOSE: Permission.CASE_CLOSE,
    CaseAction.REOPEN: Permission.CASE_REOPEN, CaseAction.LINK: Permission.CASE_MERGE,
    CaseAction.MERGE: Permission.CASE_MERGE, CaseAction.ARCHIVE: Permission.CASE_ARCHIVE,
}
# The actions the console's case page offers (linking and merging need a second case:
# they stay with the API).
OFFERED = (CaseAction.ACKNOWLEDGE, CaseAction.RESPOND, CaseAction.NOTE, CaseAction.REQUEST_INFO,
           CaseAction.RESUME, CaseAction.REPORT_TO_SUPERIOR, CaseAction.PROPOSE_REMEDY,
           CaseAction.APPROVE_REMEDY, CaseAction.REJECT_REMEDY, CaseAction.RESOLVE, CaseAction.ROOT_CAUSE,
           CaseAction.FILE_REPORT,
           CaseAction.SIGN_OFF_REPORT, CaseAction.CLOSE, CaseAction.REOPEN, CaseAction.ARCHIVE)


@dataclass(frozen=True)
class Person:
    """The logged-in staff member, as routing's organisation names them now."""
    staff_id: str
    name: str
    role: Role
    store_id: str | None = None
    region_id: str | None = None
    brand_id: str | None = None

    @property
    def permissions(self):
        return ROLE_PERMISSIONS[self.role]

    def can(self, permission):
        return permission in self.permissions

    @classmethod
    def from_org(cls, staff_id, organisation):
        """From GET /v1/org (the caller's own view); None if they are not in it."""
        found = next((s for s in organisation.get("staff", []) if s["staff_id"] == staff_id
                      and s.get("active", True)), None)
        if found is None:
            return None
        return cls(staff_id, found["name"], Role(found["role"]), found.get("store_id"),
                   found.get("region_id"), found.get("brand_id"))


def pending_remedies(case):
    return [r for r in case.get("remedies") or () if r["status"] == RemedyStatus.PENDING_APPROVAL.value]


def actions_for(case, person):
    """The lifecycle actions this person may take on this case now, in page order."""
    allowed = set(case.get("allowed_actions") or ())
    offered = []
    for action in OFFERED:
        if action.value not in allowed or not person.can(ACTION_PERMISSION[action]):
            continue
        if action in (CaseAction.APPROVE_REMEDY, CaseAction.REJECT_REMEDY) and not awaiting(case, person):
            continue
        if action is CaseAction.RESUME and case["status"] != CaseStatus.PENDING_CUSTOMER.value:
            continue
        if action is CaseAction.ACKNOWLEDGE and (case.get("ladder") or {}).get("acknowledged_at") \
                and case["status"] not in (CaseStatus.ASSIGNED.value, CaseStatus.REOPENED.value):
            continue  # the current rung took it on already; a climb to a new rung asks again
        if action in (CaseAction.FILE_REPORT, CaseAction.SIGN_OFF_REPORT) and not case.get("referral"):
            continue
        if action is CaseAction.PROPOSE_REMEDY and pending_remedies(case):
            continue  # one proposal waits at a time: decide it first
        offered.append(action)
    return offered


def awaiting(case, person):
    """The remedies of the case waiting for this person's decision."""
    return [r for r in pending_remedies(case)
            if (r.get("approver") or {}).get("staff_id") == person.staff_id
            or (r.get("approver") is None and person.can(Permission.CASE_REMEDY_APPROVE))]


# -- the remedy form -------------------------------------------------------------------

REFUND_LETTER = {RefundOption.NONE_CONTINUE: "A", RefundOption.PARTIAL_CONTINUE: "B",
                 RefundOption.FULL_CONTINUE: "C", RefundOption.FULL_STOP: "D"}
# Who approves above whom (the ladder above the store), for showing the path.
APPROVAL_LADDER = (Role.STORE_MANAGER, Role.REGIONAL_MANAGER, Role.GENERAL_MANAGER)


def yuan_to_fen(text):
    """'300', '300.5', '¥1,200.00' -> fen (an integer: amounts are never floats);
    ValueError for anything else."""
    cleaned = str(text).strip().replace(",", "").replace("¥", "").replace("元", "").strip()
    if not cleaned:
        return 0
    match = _YUAN.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"not an amount in yuan: {text!r}")
    return int(match["whole"]) * 100 + int((match["cents"] or "").ljust(2, "0"))


_YUAN = re.compile(r"(?P<whole>\d{1,9})(?:\.(?P<cents>\d{1,2}))?")


def fen_to_yuan(fen):
    return f"{fen // 100:,}.{fen % 100:02d}"


def approver_for(amount_fen, remedy_type, person, limits):
    """The role that will have to approve a remedy of this amount proposed by this
    person, or None when it is approved at once (an apology, nothing to pay, or within
    their own limit). Routing's rule: the lowest rung above the proposer whose limit
    (limits: {role: fen, None for no limit}; a role not listed approves nothing that
    costs money) covers the amount. Routing decides; the form only says it beforehand."""
    if RemedyType(remedy_type) is RemedyType.APOLOGY or amount_fen <= 0:
        return None
    own = limits.get(person.role.value, 0)
    if own is None or amount_fen <= own:
        return None
    for role in APPROVAL_LADDER:
        if _rank(role) <= _rank(person.role):
            continue
        limit = limits.get(role.value, 0)
        if limit is None or amount_fen <= limit:
            return role
    return Role.GENERAL_MANAGER


def _rank(role):
    order = (Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER, Role.CUSTOMER_SERVICE,
             Role.REGIONAL_MANAGER, Role.GENERAL_MANAGER)
    return order.index(role) if role in order else -1


# -- masking for a shared screen ------------------------------------------------------

def mask_name(name):
    """刘女士 -> 刘**, Alice Wong -> A****: enough to find the right card at the desk."""
    if not name:
        return ""
    return name[0] + "*" * min(max(len(name) - 1, 1), 4)


def masked_customer(customer):
    """The queue shows every customer masked, whatever the role: it is read over a
    shoulder at the front desk. The case page shows what the role may see."""
    customer = customer or {}
    return {"name": mask_name(customer.get("name")), "phone": mask_phone(customer.get("phone")) or ""}


# -- the store dashboard ---------------------------------------------------------------

@dataclass(frozen=True)
class OpenCaseFigures:
    open_cases: int
    breached_open: int
    at_risk: int


def open_case_figures(cases, now, lead=AT_RISK_LEAD):
    """Of the active cases: how many have a clock that ran out unmet, and how many have
    one due within `lead` (at risk), as reporting's gauges count them."""
    active = [c for c in cases if c["status"] in {s.value for s in ACTIVE_CASE_STATUSES}]
    breached = at_risk = 0
    for case in active:
        clocks = countdowns(case, now)
        if any(c.state is ClockState.BREACHED for c in clocks):
            breached += 1
        elif any(c.running and c.remaining_seconds is not None and c.remaining_seconds <= lead.total_seconds()
                 for c in clocks):
            at_risk += 1
    return OpenCaseFigures(len(active), breached, at_risk)


def escalated_to(case, person):
    """Whether the case climbed the ladder and now waits on this person (its assignee or
    one of the people its current rung notified) without their acknowledgement."""
    ladder = case.get("ladder") or {}
    on_rung = person.staff_id in (ladder.get("people") or ()) or \
        (case.get("assignee") or {}).get("staff_id") == person.staff_id
    climbed = (case.get("rung") or 0) > 0 and any(
        e.get("action") == "escalated" for e in case.get("timeline") or ())
    return on_rung and climbed


def format_remaining(seconds, lang):
    """A countdown as people say it: 2小时15分 / 2 h 15 min; overdue: 已超时 35分."""
    if seconds is None:
        return ""
    overdue = seconds < 0
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if total < 60:
        text = "<1 min" if lang == "en" else "不到1分"
        return (f"overdue {text}" if lang == "en" else f"已超时{text}") if overdue else text
    if lang == "en":
        parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
                 f"{minutes} min" if not days else ""]
        text = " ".join(p for p in parts if p) or "<1 min"
        return f"overdue {text}" if overdue else text
    parts = [f"{days}天" if days else "", f"{hours}小时" if hours else "", f"{minutes}分" if not days else ""]
    text = "".join(p for p in parts if p) or "不到1分"
    return f"已超时{text}" if overdue else text
