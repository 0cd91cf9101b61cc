"""Routing's use cases as plain functions over a repository, the org chart and an SLA
policy. Each returns the case as written and the events that write put in its outbox
(for the caller to publish; closeloop_shared.outbox)."""
import logging
from datetime import timedelta

from closeloop_shared import events as ev
from closeloop_shared.access import Scope, contact_view
from closeloop_shared.config import DEFAULTS, DUPLICATE_WINDOW_SECONDS, TRIAGE_CONFIDENCE_THRESHOLD
from closeloop_shared.contract import REFERRAL_CHANNELS, LinkReason, Role, TriageStatus
from closeloop_shared.events import new_event as outgoing
from closeloop_shared.org import LADDER
from services.routing import classification, clocks, deadline_flows, duplicates, ladder, lifecycle, policy, sla

MAX_ATTEMPTS = 5
EVERYWHERE = Scope(None)  # the system's own actions (deadlines, revisits) reach every case
log = logging.getLogger(__name__)


class CaseNotFound(Exception):
    pass


class ConcurrentUpdate(Exception):
    pass


class ActionForbidden(Exception):
    """The caller may act on the case but not in this way (HTTP 403)."""


TRIAGE_THRESHOLD = DEFAULTS[TRIAGE_CONFIDENCE_THRESHOLD]
DUPLICATE_WINDOW = timedelta(seconds=DEFAULTS[DUPLICATE_WINDOW_SECONDS])


def route(repository, org, rules, submitted, now, triage_threshold=TRIAGE_THRESHOLD,
          duplicate_window=DUPLICATE_WINDOW):
    """A new case from case_submitted: classified (with confidence, runner-up, the
    deciding words and the model version) and given a severity; its SLA policy chosen
    by condition and its clocks armed on the store's calendar; assigned to the fitting
    person on duty (else the ladder's rung) and put on the escalation ladder, whose rung
    must acknowledge in time. A model category below `triage_threshold` waits in the
    triage queue of the store's supervisor (or the first rung held above) with the top
    two suggestions; a submitter's category is taken as is. A consumer-association or
    media referral goes to the store manager and the customer-service department at
    once and owes a written report (its policy's report clock).
    The customer is recognised by their keys (member id, phone) and the case is linked to
    the same customer's cases at the store within `duplicate_window` (their side of the
    link: case_flows.link_duplicates), all in the case's first write.
    Idempotent: a redelivered event finds the case already there (the insert loses to
    it) and changes nothing. Not read first: a redelivery is rare, a read every time."""
    store_id, channel = submitted["store_id"], submitted["channel"]
    decision = classification.classify(submitted["content"], submitted.get("category"))
    assessed = classification.assess_severity(channel, submitted["content"])
    category, severity = decision.category, assessed.level
    in_triage = decision.needs_triage(triage_threshold)
    sla_policy = rules.choose_policy(policy.CaseFacts(severity, category, channel,
                                                      submitted["customer"].get("tier")))
    calendar = rules.calendar_of(store_id)
    clock_set = clocks.arm(sla_policy, submitted["submitted_at"], calendar)
    assignment = rules.assign(store_id, category, severity, now)
    rungs = ladder.resolve_rungs(org, store_id, assignee_id=assignment.person.staff_id)
    lowest = max(ladder.start_level(severity), ladder.LEVEL_OF_ROLE[assignment.person.role],
                 ladder.SUPERVISOR if in_triage else ladder.STORE_STAFF)
    state = ladder.start_on(rungs, lowest, now, rules.ack_timeouts)
    owner = assignment.person if assignment.person.staff_id in state.people else org.staff[state.people[0]]
    assignee = owner.as_dict()
    referral = channel in REFERRAL_CHANNELS
    informed = deadline_flows.people(org, [p.staff_id for p in org.all_active(
        Role.CUSTOMER_SERVICE, brand_id=org.brand_of_store(store_id))]) if referral else []
    explained = decision.as_dict()
    deadlines = deadline_flows.clock_deadlines(clock_set)
    case = {
        "_id": submitted["case_id"], **{k: v for k, v in submitted.items() if k != "case_id"},
        "category": category, "severity": severity, "status": lifecycle.CaseStatus.ASSIGNED.value,
        "classification": explained, "severity_assessment": assessed.as_dict(),
        "triage": ({"status": TriageStatus.PENDING.value, "suggestions": explained["suggestions"],
                    "owner": assignee, "queued_at": now} if in_triage else None),
        "policy": {"policy_id": sla_policy.policy_id, "version": sla_policy.version, "name": sla_policy.name},
        "rung": state.level, "assignee": assignee, "assigned_on_duty": assignment.on_duty,
        "ladder": state.to_doc(), "clocks": clocks.to_doc(clock_set), "informed": informed,
        "resolution_round": 0, "reopen_count": 0, "version": 0, "routed_at": now,
        "next_check_at": deadline_flows.schedule(clock_set, state),
        "updated_at": now, "outbox_pending": True,
        "timeline": [
            lifecycle.entry(submitted["submitted_at"], "submitted", "customer", channel=channel),
            lifecycle.entry(now, "routed", "system", category=category, severity=severity,
                            assignee=assignee["staff_id"], on_duty=assignment.on_duty,
                            confidence=decision.confidence, runner_up=decision.runner_up,
                            features=list(decision.features), model_version=decision.model_version,
                            classified_by=decision.source, severity_reasons=list(assessed.reasons),
                            policy_id=sla_policy.policy_id, policy_version=sla_policy.version,
                            deadlines=deadlines),
            *deadline_flows.ladder_entries(state.notes, now)],
    }
    if calendar.incomplete_years:
        case["timeline"].append(lifecycle.entry(now, "calendar_incomplete", "system",
                                                years=sorted(calendar.incomplete_years)))
    if in_triage:
        case["timeline"].append(lifecycle.entry(
            now, "triage_queued", "system", owner=assignee["staff_id"],
            suggestions=explained["suggestions"], threshold=triage_threshold))
    if referral:
        case["timeline"].append(lifecycle.entry(
            now, "referral_received", "system", authority=(submitted.get("referral") or {}).get("authority"),
            reference_number=(submitted.get("referral") or {}).get("reference_number"),
            informed=[p["staff_id"] for p in informed], report_due=deadlines.get("report_due")))
    related = _recognise_customer(repository, case, now, duplicate_window)
    case["outbox"] = [outgoing(ev.CASE_ROUTED, {
        "case_id": case["_id"], "case_number": case["case_number"], "store_id": store_id,
        "category": category, "severity": severity, "assignee": assignee, "rung": state.level,
        "deadlines": deadlines, "routed_at": now, "locale": case["locale"],
        "confidence": decision.confidence, "runner_up": decision.runner_up,
        "model_version": decision.model_version, "classified_by": decision.source,
        "triage": in_triage, "policy_id": sla_policy.policy_id, "ack_due_at": state.ack_due_at,
        "informed": informed, "referral": submitted.get("referral")})]
    case["outbox"] += [case_event(ev.CASE_LINKED, case, "system", now, related_case_id=other_id,
                                  reason=LinkReason.DUPLICATE.value) for other_id in related]
    if repository.insert(case):
        return case, case["outbox"]
    return repository.get(case["_id"]), []


def customer_duplicates(repository, case, window):
    """(the customer's keys, the ids of the same customer's cases at the store within
    `window` of `case`, oldest first): duplicates.related over the stored cases sharing
    a key; an archived case is history, not linked."""
    keys = duplicates.customer_keys(case.get("customer"))
    candidates = [other for other in repository.of_customer(keys, case["submitted_at"] - window)
                  if other.get("status") != lifecycle.CaseStatus.ARCHIVED.value]
    return keys, duplicates.related(dict(case, customer_keys=keys), candidates, window)


def recognised_entry(keys, related, now):
    return lifecycle.entry(now, "customer_recognised", "system", keys=len(keys), duplicates=len(related))


def _recognise_customer(repository, case, now, window):
    """Record the customer's keys on the new case and link it to their duplicates
    (customer_duplicates): changes `case` in place and returns the ids linked."""
    keys, related = customer_duplicates(repository, case, window)
    case["customer_keys"] = keys
    case["timeline"].append(recognised_entry(keys, related, now))
    for other_id in related:
        changes, entry = lifecycle.link(lifecycle.CaseView.of(case), "system", other_id,
                                        LinkReason.DUPLICATE.value, now)
        case.update(changes)
        case["timeline"].append(entry)
    return related


def case_event(kind, case, actor, now, **fields):
    """An event about `case` done by `actor` at `now` (events.CaseEvent), with `fields`."""
    return outgoing(kind, {"case_id": case["_id"], "case_number": case["case_number"],
                           "store_id": case["store_id"], "actor": actor, "at": now, **fields})


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
        changes, entry, outbox = action(case)  # entry: one timeline entry, a list of them, or None
        if not entry:
            return case, []
        updated = repository.update(case, changes, entry if isinstance(entry, list) else [entry], outbox, now)
        if updated:
            return updated, outbox
    raise ConcurrentUpdate(case_id)


def _first_responded(case, now, on_time):
    return outgoing(ev.CASE_FIRST_RESPONDED, {
        "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
        "responded_at": now,
        "on_time": on_time, "seconds_to_respond": (now - case["submitted_at"]).total_seconds()})


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
        return changes, entry, [outgoing(ev.CASE_RECLASSIFIED, {
            "correction_id": f"{case['_id']}:{case['version']}", "case_id": case["_id"],
            "case_number": case["case_number"], "store_id": case["store_id"],
            "previous_category": case["category"], "category": category, "model_category": model_category,
            "model_version": before.get("model_version"), "model_confidence": before.get("confidence"),
            "by_role": principal.role.value if principal.role else principal.kind.value,
            "reclassified_at": now})]

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
    manager's decision); the caller adds its own timeline entry. On the escalation ladder
    the successor takes the previous owner's place (ladder.handed_over)."""
    changes = {"assignee": successor}
    if case.get("ladder"):
        state = ladder.LadderState.from_doc(case["ladder"])
        moved = ladder.handed_over(state, case["assignee"]["staff_id"], successor["staff_id"], now)
        if moved != state:
            changes["ladder"] = moved.to_doc()
    return changes, [outgoing(ev.CASE_REASSIGNED, {
        "case_id": case["_id"], "case_number": case["case_number"],
        "store_id": case["store_id"], "severity": case["severity"],
        "reason": reason, "previous_assignee": case["assignee"],
        "assignee": successor, "reassigned_at": now, "locale": case["locale"]})]


def public_view(case, principal):
    """GET /v1/cases/{id}: what staff and other systems see of a case, the customer's
    contact masked for roles that do not call customers."""
    hidden = {"_id", "outbox", "outbox_pending", "version", "lease_owner", "lease_until",
              "customer_keys"}  # the keys hold the phone, unmasked
    view = {"case_id": case["_id"], **{k: v for k, v in case.items() if k not in hidden}}
    view["customer"] = contact_view(case["customer"], principal)
    view["rung_role"] = LADDER[case["rung"]].value
    view["deadlines"] = sla.deadlines(case["clocks"])
    view["allowed_actions"] = lifecycle.allowed_actions(case["status"])
    return view
