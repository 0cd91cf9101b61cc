"""Routing's use cases as plain functions over a repository, the org chart and an SLA
policy. Each returns the case as written and the events that write put in its outbox
(for the caller to publish; closeloop_shared.outbox)."""
import logging

from closeloop_shared import events as ev
from closeloop_shared.access import Scope, contact_view
from closeloop_shared.config import DEFAULTS, TRIAGE_CONFIDENCE_THRESHOLD
from closeloop_shared.contract import Permission, TriageStatus
from closeloop_shared.events import new_event as outgoing
from closeloop_shared.org import LADDER
from services.routing import classification, lifecycle, sla

MAX_ATTEMPTS = 5
EVERYWHERE = Scope(None)  # the system's own actions (deadlines, revisits) reach every case
log = logging.getLogger(__name__)


class CaseNotFound(Exception):
    pass


class ConcurrentUpdate(Exception):
    pass


class ActionForbidden(Exception):
    """The caller may act on the case but not in this way (HTTP 403)."""


# Complaints referred by a consumer association or the media: the store manager or
# someone above answers for them (seed 004), so only they may resolve one.
REFERRAL_CHANNELS = ("consumer_association", "media")
TRIAGE_RUNG = 1  # the store's supervisor (org.ladder(store)[1]) confirms unsure categories
TRIAGE_THRESHOLD = DEFAULTS[TRIAGE_CONFIDENCE_THRESHOLD]


def _escalated(case, rung, previous, assignee, reason, now, due_at=None):
    return outgoing(ev.CASE_ESCALATED, {
        "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
        "severity": case["severity"], "reason": reason, "rung": rung,
        "previous_assignee": previous, "assignee": assignee, "escalated_at": now,
        "locale": case["locale"], "due_at": due_at})


def route(repository, chart, policy, submitted, now, triage_threshold=TRIAGE_THRESHOLD):
    """A new case from case_submitted: classified (with confidence, runner-up, the
    deciding words and the model version), assigned, clocks armed. A model category
    below `triage_threshold` waits in the triage queue of the store's supervisor (rung
    1 at least) with the top two suggestions; a submitter's category is taken as is.
    Idempotent: a redelivered event finds the case already there and changes nothing."""
    existing = repository.get(submitted["case_id"])
    if existing:
        return existing, []
    decision = classification.classify(submitted["content"], submitted.get("category"))
    assessed = classification.assess_severity(submitted["channel"], submitted["content"])
    category, severity = decision.category, assessed.level
    ladder = [person.as_dict() for person in chart.ladder(submitted["store_id"])]
    in_triage = decision.needs_triage(triage_threshold)
    rung = sla.initial_rung(severity)
    if in_triage:
        rung = max(rung, TRIAGE_RUNG)
    clocks = sla.arm_clocks(policy, submitted["submitted_at"], severity)
    explained = decision.as_dict()
    case = {
        "_id": submitted["case_id"], **{k: v for k, v in submitted.items() if k != "case_id"},
        "category": category, "severity": severity, "status": lifecycle.CaseStatus.OPEN.value,
        "classification": explained, "severity_assessment": assessed.as_dict(),
        "triage": ({"status": TriageStatus.PENDING.value, "suggestions": explained["suggestions"],
                    "owner": ladder[TRIAGE_RUNG], "queued_at": now} if in_triage else None),
        "rung": rung, "assignee": ladder[rung], "clocks": clocks, "last_escalated_at": None,
        "resolution_round": 0, "reopen_count": 0, "version": 0, "routed_at": now,
        "updated_at": now, "outbox_pending": True,
        "timeline": [lifecycle.entry(submitted["submitted_at"], "submitted", "customer",
                                     channel=submitted["channel"]),
                     lifecycle.entry(now, "routed", "system", category=category,
                                     severity=severity, assignee=ladder[rung]["staff_id"],
                                     confidence=decision.confidence, runner_up=decision.runner_up,
                                     features=list(decision.features),
                                     model_version=decision.model_version, classified_by=decision.source,
                                     severity_reasons=list(assessed.reasons))],
    }
    if in_triage:
        case["timeline"].append(lifecycle.entry(
            now, "triage_queued", "system", owner=ladder[TRIAGE_RUNG]["staff_id"],
            suggestions=explained["suggestions"], threshold=triage_threshold))
    case["outbox"] = [outgoing(ev.CASE_ROUTED, {
        "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
        "category": category, "severity": severity, "assignee": ladder[rung], "rung": rung,
        "deadlines": sla.deadlines(clocks), "routed_at": now, "locale": case["locale"],
        "confidence": decision.confidence, "runner_up": decision.runner_up,
        "model_version": decision.model_version, "classified_by": decision.source,
        "triage": in_triage})]
    if sla.escalates_immediately(severity):
        case["rung"], case["assignee"], case["last_escalated_at"] = rung + 1, ladder[rung + 1], now
        case["timeline"].append(lifecycle.entry(now, "escalated", "system", reason="critical_referral",
                                                rung=rung + 1, assignee=ladder[rung + 1]["staff_id"]))
        case["outbox"].append(_escalated(case, rung + 1, ladder[rung], ladder[rung + 1],
                                         "critical_referral", now))
    case["next_check_at"] = sla.next_check_at(clocks, case["rung"], case["last_escalated_at"], policy)
    if repository.insert(case):
        return case, case["outbox"]
    return repository.get(case["_id"]), []


def check_deadlines(repository, chart, policy, now, limit=200):
    """Breach and escalate every case whose next check is due. Returns
    [(updated_case, decision, events)] for the checks this replica won."""
    won = []
    for case in repository.due(now, limit):
        try:
            won.extend(_check(repository, chart, policy, case, now))
        except Exception:  # one broken case (say, its store left the org chart) must not stall the rest
            log.exception("deadline check failed", extra={"case_number": case.get("case_number")})
            # look again one step later instead of heading every scan
            repository.update(case, {"next_check_at": now + policy.escalation_step}, [], [], now)
    return won


def check_case(repository, chart, policy, case_id, now):
    """The deadline check of one case when its precise timer fires, on the case as it is
    now: [(updated_case, decision, events)] if it was still due and this write won,
    else [] (handled meanwhile, by a staff action, the scan or another replica)."""
    case = repository.get(case_id)
    if case is None or case.get("next_check_at") is None or case["next_check_at"] > now:
        return []
    return _check(repository, chart, policy, case, now)


def _check(repository, chart, policy, case, now):
    """[(updated_case, decision, events)] if this replica's write won, else []."""
    decision = sla.evaluate(case["clocks"], case["rung"], case.get("last_escalated_at"), now, policy)
    changes = {"clocks": decision.clocks, "next_check_at": decision.next_check_at}
    entries = [lifecycle.entry(now, "sla_breached", "system", clock=name)
               for name in decision.newly_breached]
    outbox = []
    if decision.escalate:
        ladder = [person.as_dict() for person in chart.ladder(case["store_id"])]
        rung = case["rung"] + 1
        changes.update(rung=rung, assignee=ladder[rung], last_escalated_at=now)
        entries.append(lifecycle.entry(now, "escalated", "system", reason=decision.reason,
                                       rung=rung, assignee=ladder[rung]["staff_id"]))
        # due_at: the moment this check fell due (the breach, or the end of the step)
        outbox.append(_escalated(case, rung, case["assignee"], ladder[rung], decision.reason, now,
                                 case["next_check_at"]))
    updated = repository.update(case, changes, entries, outbox, now)
    return [(updated, decision, outbox)] if updated else []


def visible(case, scope):
    return case is not None and scope.allows(case["store_id"], case.get("submitted_by"))


def get_case(repository, case_id, scope):
    """The case if the caller's scope reaches it; CaseNotFound otherwise (a case out of
    scope is as absent as a missing one: no existence leak)."""
    case = repository.get(case_id)
    if not visible(case, scope):
        raise CaseNotFound(case_id)
    return case


def _act(repository, case_id, scope, now, action):
    """Run an action against the latest version of the case, retrying lost races."""
    for _ in range(MAX_ATTEMPTS):
        case = get_case(repository, case_id, scope)
        changes, entry, outbox = action(case)
        if entry is None:
            return case, []
        updated = repository.update(case, changes, [entry], outbox, now)
        if updated:
            return updated, outbox
    raise ConcurrentUpdate(case_id)


def _first_responded(case, now, on_time):
    return outgoing(ev.CASE_FIRST_RESPONDED, {
        "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
        "responded_at": now,
        "on_time": on_time, "seconds_to_respond": (now - case["submitted_at"]).total_seconds()})


def respond(repository, policy, case_id, principal, scope, note, now):
    def action(case):
        changes, entry, on_time = lifecycle.respond(case, principal.actor, note, now, policy)
        return changes, entry, [_first_responded(case, now, on_time)]
    return _act(repository, case_id, scope, now, action)


def file_report(repository, policy, case_id, principal, scope, summary, now):
    def action(case):
        changes, entry, _ = lifecycle.file_report(case, principal.actor, summary, now, policy)
        return changes, entry, []
    return _act(repository, case_id, scope, now, action)


def check_may_resolve(case, remedy, principal):
    """Refunds (options B-D) and referral cases need a store manager or above."""
    refunds = remedy["type"] == "refund" and remedy.get("refund_option") != "none_continue"
    if refunds and not principal.can(Permission.CASE_REFUND):
        raise ActionForbidden("a refund needs a store manager or above")
    if case["channel"] in REFERRAL_CHANNELS and not principal.can(Permission.CASE_CLOSE_REFERRAL):
        raise ActionForbidden("a consumer-association or media case is resolved by a store manager or above")


def resolve(repository, chart, policy, case_id, remedy, principal, scope, note, now):
    def action(case):
        check_may_resolve(case, remedy, principal)
        changes, entry, on_time = lifecycle.resolve(case, remedy, principal.actor, note, now, policy)
        outbox = []
        if "first_response_at" in changes:  # unanswered until now: the remedy is the answer
            outbox.append(_first_responded(case, now, now <= case["clocks"]["first_response"]["due_at"]))
        outbox.append(outgoing(ev.CASE_RESOLVED, {
            "case_id": case["_id"], "case_number": case["case_number"],
            "store_id": case["store_id"], "category": case["category"],
            "remedy": changes["remedy"], "note": note, "resolved_at": now, "on_time": on_time,
            "resolution_round": changes["resolution_round"], "customer": case["customer"],
            "revisit_owner": chart.revisit_owner(case["store_id"]).as_dict(),
            "locale": case["locale"]}))
        return changes, entry, outbox
    return _act(repository, case_id, scope, now, action)


def reopen(repository, policy, case_id, actor, reason, source, now, scope=EVERYWHERE):
    def action(case):
        changes, entry = lifecycle.reopen(case, actor, reason, source, now, policy)
        return changes, entry, [outgoing(ev.CASE_REOPENED, {
            "case_id": case["_id"], "case_number": case["case_number"],
            "store_id": case["store_id"], "reason": reason, "source": source,
            "reopened_at": now, "resolution_due": changes["clocks"]["resolution"]["due_at"]})]
    return _act(repository, case_id, scope, now, action)


def close(repository, case_id, actor, now):
    def action(case):
        changes, entry = lifecycle.close(case, actor, now)
        return changes, entry, [outgoing(ev.CASE_CLOSED, {
            "case_id": case["_id"], "store_id": case["store_id"], "closed_at": now})]
    return _act(repository, case_id, EVERYWHERE, now, action)


def reclassify(repository, corrections, case_id, category, reason, principal, scope, now):
    """A staff correction of the category: the case takes it (a pending triage is
    resolved), the timeline says who, why and what the model had said, and the
    corrections store keeps it for retraining (`python -m services.routing.triage export`)."""
    seen = {}

    def action(case):
        before = case.get("classification") or {}
        model_category = before.get("model_category") or (
            before.get("category") if before.get("source") == "model" else None)
        changes = {"category": category,
                   "classification": dict(before, category=category, source="staff",
                                          model_category=model_category, corrected_by=principal.actor)}
        if (case.get("triage") or {}).get("status") == TriageStatus.PENDING.value:
            changes["triage"] = dict(case["triage"], status=TriageStatus.RESOLVED.value,
                                     resolved_by=principal.actor, resolved_at=now)
        entry = lifecycle.entry(now, "reclassified", principal.actor, previous=case["category"],
                                category=category, reason=reason, model_category=model_category,
                                model_version=before.get("model_version"))
        seen.update(case=case, before=before, entry=entry)
        return changes, entry, []

    updated, events = _act(repository, case_id, scope, now, action)
    case, before, entry = seen["case"], seen["before"], seen["entry"]
    corrections.record({
        "_id": f"{case['_id']}:{case['version']}", "case_id": case["_id"],
        "case_number": case["case_number"], "store_id": case["store_id"], "text": case["content"],
        "channel": case["channel"], "locale": case.get("locale"), "previous": entry["previous"],
        "category": category, "reason": reason, "by": principal.actor, "at": now,
        "model_category": entry["model_category"], "model_version": entry["model_version"],
        "model_confidence": before.get("confidence")})
    return updated, events


def hand_over_cases_of(repository, chart, staff_id, now):
    """The active cases of a deactivated person pass to whoever now stands on their
    rung of the ladder (the next one up when nobody does); each handover is in the
    case's timeline and announced. Returns [(case, events)]."""
    handed = []
    for found in repository.active_assigned_to(staff_id):
        def action(case):
            if case["assignee"]["staff_id"] != staff_id:  # already moved meanwhile
                return {}, None, []
            successor = chart.ladder(case["store_id"])[case["rung"]].as_dict()
            if successor["staff_id"] == staff_id:  # still holds this rung after the change
                return {}, None, []
            entry = lifecycle.entry(now, "reassigned", "system", reason="staff_deactivated",
                                    previous=staff_id, assignee=successor["staff_id"])
            changes, events = reassignment(case, successor, "staff_deactivated", now)
            return changes, entry, events
        handed.append(_act(repository, found["_id"], EVERYWHERE, now, action))
    return handed


def reassignment(case, successor, reason, now):
    """The change and the case_reassigned event of handing `case` to `successor` (as
    Staff.as_dict()), for every kind of handover (a person deactivated, a shift ended, a
    manager's decision); the caller adds its own timeline entry."""
    return {"assignee": successor}, [outgoing(ev.CASE_REASSIGNED, {
        "case_id": case["_id"], "case_number": case["case_number"],
        "store_id": case["store_id"], "severity": case["severity"],
        "reason": reason, "previous_assignee": case["assignee"],
        "assignee": successor, "reassigned_at": now, "locale": case["locale"]})]


def apply_revisit(repository, policy, revisit, now):
    """A low score reopens the case; any other score closes it. Only the resolution
    the revisit asked about is touched: a redelivered or late revisit of an earlier
    round changes nothing."""
    case = repository.get(revisit["case_id"])
    if case is None or case["status"] != lifecycle.CaseStatus.RESOLVED.value \
            or case["resolution_round"] != revisit["round"]:
        return case, []
    actor = f"revisit:{revisit['revisit_id']}"
    if revisit["reopens_case"]:
        reason = f"revisit score {revisit['score']}: {revisit.get('comment') or ''}".strip()
        return reopen(repository, policy, case["_id"], actor, reason, "revisit", now)
    return close(repository, case["_id"], actor, now)


def public_view(case, principal):
    """GET /v1/cases/{id}: what staff and other systems see of a case, the customer's
    contact masked for roles that do not call customers."""
    hidden = {"_id", "outbox", "outbox_pending", "version", "lease_owner", "lease_until"}
    view = {"case_id": case["_id"], **{k: v for k, v in case.items() if k not in hidden}}
    view["customer"] = contact_view(case["customer"], principal)
    view["rung_role"] = LADDER[case["rung"]].value
    view["deadlines"] = sla.deadlines(case["clocks"])
    return view
