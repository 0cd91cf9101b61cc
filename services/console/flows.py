"""The console's use cases: each gathers what one page shows from the services (as the
logged-in person) and the domain, or turns one form into one API call. No nameko here:
the entrypoints (service.py) hand in the person's ServicesApi and the form."""
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from closeloop_shared.contract import (
    ACTIVE_CASE_STATUSES, AppointmentStatus, CaseAction, Category, Permission, RefundOption, RemedyType)
from services.console import domain
from services.console.api import ApiError

CHINA = ZoneInfo("Asia/Shanghai")
TIMELINE_SHOWN = 30


class FormRefused(Exception):
    """A form the console itself refuses before calling anyone (in words: i18n key)."""

    def __init__(self, text_key, field=None):
        super().__init__(text_key)
        self.text_key, self.field = text_key, field


def local(value):
    """A service timestamp as China time, for people."""
    if not value:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(CHINA)


# -- the queue -------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueRow:
    case: dict
    customer: dict
    clocks: list
    first: domain.Countdown | None
    mine: bool


def queue(api, person, now, mine_only=False):
    """The person's active cases, the clock that breaks first first; customers masked."""
    active = [c for c in api.cases(limit=200) if c["status"] in {s.value for s in ACTIVE_CASE_STATUSES}]
    rows = []
    for case in domain.queue_order(active, now):
        mine = (case.get("assignee") or {}).get("staff_id") == person.staff_id or \
            person.staff_id in ((case.get("ladder") or {}).get("people") or ())
        if mine_only and not mine:
            continue
        clocks = domain.countdowns(case, now)
        rows.append(QueueRow(case, domain.masked_customer(case.get("customer")), clocks,
                             domain.first_to_break(case, now), mine))
    return rows


# -- one case --------------------------------------------------------------------------

def case_page(api, person, case_id, now, approval_limits):
    """`approval_limits()`: routing's limits {role: fen or None} (GET
    /v1/remedies/approval-limits), asked only when the remedy form is shown."""
    case = api.case(case_id)
    actions = domain.actions_for(case, person)
    limits = approval_limits() if CaseAction.PROPOSE_REMEDY in actions else {}
    revisits = api.revisits(case_id) if person.can(Permission.REVISIT_READ) else []
    timeline = sorted(case.get("timeline") or (), key=lambda e: e.get("seq") or 0, reverse=True)
    return {
        "case": case, "clocks": domain.countdowns(case, now),
        "actions": actions,
        "awaiting": domain.awaiting(case, person),
        "timeline": timeline[:TIMELINE_SHOWN], "timeline_total": case.get("timeline_count") or len(timeline),
        "revisits": revisits,         "can_record_revisit": person.can(Permission.REVISIT_RECORD),
        "can_reassign": person.can(Permission.CASE_REASSIGN) and case["status"] in {
            s.value for s in ACTIVE_CASE_STATUSES},
        "remedy_types": list(RemedyType), "refund_options": list(RefundOption),
        "limits": limits, "own_limit": limits.get(person.role.value, 0),
        "categories": list(Category),
        "approved_remedies": [r for r in case.get("remedies") or () if r["status"] == "approved"
                              and r.get("round") == (case.get("resolution_round") or 0) + 1],
    }


def _text(form, name, required=True):
    value = (form.get(name) or "").strip()
    if required and not value:
        raise ApiError(422, "validation_failed", f"{name} is required", {name: ["Missing data for required field."]})
    return value


def action_body(action, form, person):
    """The JSON body of a lifecycle action from its form (the acting person is never in
    it: the services take them from the token)."""
    if action in (CaseAction.ACKNOWLEDGE, CaseAction.SIGN_OFF_REPORT, CaseAction.CLOSE, CaseAction.ARCHIVE):
        return {}
    if action in (CaseAction.RESPOND, CaseAction.NOTE):
        return {"note": _text(form, "note")}
    if action is CaseAction.REQUEST_INFO:
        return {"question": _text(form, "question")}
    if action is CaseAction.RESUME:
        return {"answer": _text(form, "answer")}
    if action is CaseAction.REPORT_TO_SUPERIOR:
        return {"message": _text(form, "message")}
    if action is CaseAction.FILE_REPORT:
        return {"summary": _text(form, "summary")}
    if action is CaseAction.REOPEN:
        return {"reason": _text(form, "reason")}
    if action in (CaseAction.APPROVE_REMEDY, CaseAction.REJECT_REMEDY):
        return {"remedy_id": _text(form, "remedy_id"), "reason": _text(form, "reason", required=False)}
    if action is CaseAction.RESOLVE:
        body = {"note": _text(form, "note")}
        if form.get("remedy_id"):
            body["remedy_id"] = form["remedy_id"]
        return body
    if action is CaseAction.PROPOSE_REMEDY:
        return remedy_body(form)
    if action is CaseAction.ROOT_CAUSE:
        return root_cause_body(form, person)
    raise ValueError(f"the console offers no form for {action.value}")


def remedy_body(form):
    remedy_type = RemedyType(form.get("type") or RemedyType.APOLOGY.value)
    try:
        amount_fen = domain.yuan_to_fen(form.get("amount") or "0")
    except ValueError:
        raise FormRefused("amount_invalid", "amount")
    body = {"type": remedy_type.value, "amount_fen": 0 if remedy_type is RemedyType.APOLOGY else amount_fen,
            "note": _text(form, "note", required=False)}
    if remedy_type is RemedyType.REFUND:
        option = form.get("refund_option")
        if option not in {o.value for o in RefundOption}:
            raise FormRefused("refund_needs_option", "refund_option")
        body["refund_option"] = option
    return body


def root_cause_body(form, person):
    """The cause, and the improvement the salon makes (routing requires one for a
    salon-side cause): its owner (the person themself unless chosen) and due date."""
    body = {"cause": _text(form, "cause"), "note": _text(form, "note", required=False), "actions": []}
    if _text(form, "action_text", required=False):
        body["actions"].append({"text": form["action_text"].strip(),
                                "owner": form.get("action_owner") or person.staff_id,
                                "due": _text(form, "action_due")})
    return body


def act(api, person, case_id, action, form):
    """Take one lifecycle action; the case as it is afterwards."""
    return api.act(case_id, action.value, action_body(action, form, person))


def record_revisit(api, revisit_id, form):
    try:
        score = int(form.get("score") or "")
    except ValueError:
        raise ApiError(422, "validation_failed", "score", {"score": ["Missing data for required field."]})
    return api.record_revisit(revisit_id, score, _text(form, "comment", required=False))


# -- triage, revisits, escalations, dashboard, digest ---------------------------------

def triage(api):
    return api.cases(triage="pending", limit=200)


def reclassify(api, case_id, form):
    category = form.get("category")
    if category not in {c.value for c in Category}:
        raise ApiError(422, "validation_failed", "category", {"category": ["Not a valid choice."]})
    return api.reclassify(case_id, category, _text(form, "reason", required=False) or "前台确认类别")


CASE_REVISITS_LOOKED_AT = 30  # resolved cases whose satisfaction revisit the page looks up


def reassign(api, case_id, form):
    """Hand the case to someone else on its store's chain (routing checks who may take it)."""
    return api.reassign(case_id, _text(form, "staff_id"), _text(form, "reason"))


def revisits_today(api, now, store=None, day=None):
    """Today's calls: the tiered programme's revisits and care calls due by the end of
    the day (followup's list, with scripts), and the satisfaction revisits of resolved
    cases due by then (followup lists those per case: the newest resolved cases' are
    looked up); and the store's appointments of the day (`store`: one of the person's,
    None: nobody to ask for; `day`: YYYY-MM-DD, default today in the store)."""
    tasks = sorted(api.revisit_tasks_due_today(), key=lambda t: t.get("due_at") or "")
    end_of_day = local(now).replace(hour=23, minute=59, second=59)
    case_revisits = []
    for case in api.cases(status="resolved", limit=CASE_REVISITS_LOOKED_AT):
        for revisit in api.revisits(case["case_id"]):
            if revisit.get("status") in ("scheduled", "due") and local(revisit["due_at"]) <= end_of_day:
                case_revisits.append(dict(revisit, case_number=case["case_number"]))
    return {"tasks": tasks, "case_revisits": sorted(case_revisits, key=lambda r: r["due_at"]),
            "appointments": appointments_of_day(api, store, day) if store else None}


@dataclass(frozen=True)
class AppointmentRow:
    """One booking as the front desk's list shows it: the time in the store's zone, the
    customer masked (the list is read over a shoulder, as the queue)."""
    appointment: dict
    starts_at: datetime
    customer: dict
    status: AppointmentStatus


def at_zone(value, zone):
    """A service timestamp in a store's zone (a row's `starts_at.tzinfo`)."""
    return datetime.fromisoformat(value).astimezone(zone) if value else None


def appointments_of_day(api, store, day=None):
    """{store_id, day, rows}: followup's appointments of the store's day, earliest first."""
    listed = api.appointments(store_id=store, day=day)
    zone = ZoneInfo(listed.get("timezone") or "Asia/Shanghai")
    rows = [AppointmentRow(a, datetime.fromisoformat(a["starts_at"]).astimezone(zone),
                           domain.masked_customer(a.get("customer")), AppointmentStatus(a["status"]))
            for a in listed["appointments"]]
    return {"store_id": listed["store_id"], "day": listed["day"], "rows": rows}


def appointment_store(person, stores, chosen=None):
    """The store whose appointments the today page shows: the one asked for among the
    person's stores, else their own, else the first of theirs (None: no store)."""
    if chosen and chosen in stores:
        return chosen
    return person.store_id or (sorted(stores)[0] if stores else None)


def record_attempt(api, task_id, form):
    reached = form.get("reached") == "yes"
    body = {"reached": reached, "note": _text(form, "note", required=False)}
    if reached:
        if form.get("score"):
            try:
                body["score"] = int(form["score"])
            except ValueError:
                raise ApiError(422, "validation_failed", "score", {"score": ["Not a valid integer."]})
        for name in ("next_step", "complaint"):
            if (form.get(name) or "").strip():
                body[name] = form[name].strip()
    return api.record_attempt(task_id, body)


def escalations(api, person, now):
    """Cases that climbed the ladder to this person and wait for them, and remedies
    waiting for their approval."""
    cases = [c for c in api.cases(limit=200) if c["status"] in {s.value for s in ACTIVE_CASE_STATUSES}]
    escalated = [c for c in domain.queue_order(cases, now) if domain.escalated_to(c, person)
                 and not (c.get("ladder") or {}).get("acknowledged_at")]
    approvals = [(c, r) for c in cases for r in domain.awaiting(c, person)]
    return {"escalated": [(c, domain.countdowns(c, now)) for c in escalated], "approvals": approvals}


def dashboard(api, person, now, store=None):
    store = store or person.store_id
    summary = api.summary(store=store)
    kpis = api.kpis(store=store)
    cases = api.cases(store=store, limit=200)
    figures = domain.open_case_figures(cases, now)
    return {"summary": summary, "kpis": kpis, "figures": figures, "store": store}


def week_step(monday, days):
    """The ISO date `days` from a week's Monday (for the digest's previous/next week)."""
    return (date.fromisoformat(monday) + timedelta(days=days)).isoformat()


def digest(api, person, week=None):
    return api.weekly(store=person.store_id, week=week)
