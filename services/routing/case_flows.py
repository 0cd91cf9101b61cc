"""The case lifecycle's use cases (services/routing/lifecycle.py is the state machine):
each loads the case within the caller's scope, runs the pure action, writes the changes,
the timeline entries and the events in one version-checked update (retrying lost races)
and returns (case, events) for the caller to publish."""
from dataclasses import dataclass
from datetime import timedelta

from closeloop_shared import events as ev
from closeloop_shared.config import (
    DEFAULTS, REMEDY_APPROVAL_LIMITS_FEN, REPEAT_REMEDY_THRESHOLD,
    REPEAT_REMEDY_WINDOW_SECONDS)
from closeloop_shared.contract import ACTIVE_CASE_STATUSES, CaseAction, LinkReason, Permission
from closeloop_shared.events import new_event as outgoing
from services.routing import clocks, deadline_flows, duplicates, ladder, lifecycle, remedies, sla
from services.routing.flows import (
    DUPLICATE_WINDOW, EVERYWHERE, REFERRAL_CHANNELS, ActionForbidden, CaseNotFound, _act, _first_responded,
    case_event, customer_duplicates, get_case, recognised_entry)
from services.routing.lifecycle import CaseView
from services.routing.refusals import ActionRefused


@dataclass(frozen=True)
class RemedyRules:
    """Approval limits and the repeat-customer flag (config: REMEDY_APPROVAL_LIMITS_FEN,
    REPEAT_REMEDY_WINDOW_SECONDS, REPEAT_REMEDY_THRESHOLD)."""
    limits: remedies.Limits = remedies.Limits.from_config(DEFAULTS[REMEDY_APPROVAL_LIMITS_FEN])
    repeat_window: timedelta = timedelta(seconds=DEFAULTS[REPEAT_REMEDY_WINDOW_SECONDS])
    repeat_threshold: int = DEFAULTS[REPEAT_REMEDY_THRESHOLD]


def _run(repository, case_id, scope, now, step):
    """_act over the typed view: `step(case_doc, view)` -> (changes, entries, events)."""
    def action(case):
        changes, entries, events = step(case, CaseView.of(case))
        return _scheduled(case, changes), entries, events
    return _act(repository, case_id, scope, now, action)


def _scheduled(case, changes):
    """A case on the escalation ladder is next checked when the deadline check would
    schedule it (a warning, a breach or the rung's acknowledgement timeout:
    deadline_flows.schedule), once an action changed its clocks, status or ladder."""
    if not case.get("ladder") or not {"clocks", "status", "ladder"} & set(changes):
        return changes
    if changes.get("status", case["status"]) not in ACTIVE_CASE_STATUSES:
        return dict(changes, next_check_at=None)
    state = ladder.LadderState.from_doc(changes.get("ladder", case["ladder"]))
    clock_set = clocks.from_doc(changes.get("clocks", case["clocks"]))
    return dict(changes, next_check_at=deadline_flows.schedule(clock_set, state))


def acknowledge(repository, chart, case_id, principal, scope, now):
    """The caller takes the case on; on a case climbing the escalation ladder this stops
    the climb (services/routing/ladder.py), for someone on the case's rung or above."""
    def step(case, view):
        changes, entry = lifecycle.acknowledge(view, principal.actor, now)
        if case.get("ladder"):
            person = chart.staff.get(principal.subject)
            try:
                state = ladder.acknowledge(ladder.LadderState.from_doc(case["ladder"]), person, now)
            except ladder.AcknowledgeRefused as refused:
                raise ActionRefused("below_rung", str(refused))
            changes["ladder"] = state.to_doc()
            entry["ladder_acknowledged_by"] = state.acknowledged_by
        return changes, entry, [case_event(ev.CASE_ACKNOWLEDGED, case, principal.actor, now, rung=view.rung)]
    return _run(repository, case_id, scope, now, step)


def respond(repository, calendars, case_id, principal, scope, note, now):
    def step(case, view):
        changes, entry, on_time = lifecycle.respond(view, principal.actor, note, now, calendars(case["store_id"]))
        return changes, entry, [_first_responded(case, now, on_time)] if on_time is not None else []
    return _run(repository, case_id, scope, now, step)


def add_note(repository, case_id, principal, scope, text, evidence, now):
    def step(case, view):
        changes, entry = lifecycle.note(view, principal.actor, text, evidence, now)
        return changes, entry, []
    return _run(repository, case_id, scope, now, step)


def report_to_superior(repository, chart, case_id, principal, scope, message, now):
    """The next rung above the case's, or the top rung's person when it is there already."""
    def step(case, view):
        ladder = [person.as_dict() for person in chart.ladder(case["store_id"])]
        superior = ladder[min(view.rung + 1, len(ladder) - 1)]
        changes, entry = lifecycle.report_to_superior(view, principal.actor, message, superior, now)
        return changes, entry, [case_event(ev.CASE_REPORTED_TO_SUPERIOR, case, principal.actor, now,
                                           superior=superior, message=message)]
    return _run(repository, case_id, scope, now, step)


def request_info(repository, case_id, principal, scope, question, now):
    def step(case, view):
        changes, entry = lifecycle.request_info(view, principal.actor, question, now)
        return changes, entry, [case_event(ev.CASE_PAUSED, case, principal.actor, now, question=question)]
    return _run(repository, case_id, scope, now, step)


def resume(repository, calendars, case_id, principal, scope, answer, now):
    def step(case, view):
        changes, entry = lifecycle.resume(view, principal.actor, answer, now, calendars(case["store_id"]))
        return changes, entry, [case_event(ev.CASE_RESUMED, case, principal.actor, now,
                                           deadlines=sla.deadlines(changes["clocks"]))]
    return _run(repository, case_id, scope, now, step)


def _customer_keys(case):
    return case.get("customer_keys") or duplicates.customer_keys(case.get("customer"))


def _received_elsewhere(repository, case, rules, now):
    """[(store_id, remedy_doc)] the customer was given on their other cases lately."""
    since = now - rules.repeat_window
    return [(other["store_id"], remedy) for other in repository.of_customer(_customer_keys(case), since)
            if other["_id"] != case["_id"] for remedy in other.get("remedies") or ()
            if remedy.get("decided_at") and remedy["decided_at"] >= since]


def propose_remedy(repository, chart, rules, case_id, principal, scope, proposal, now):
    """proposal: {type, refund_option, amount_fen, note}. Approved at once within the
    proposer's limit, else waiting for the approver the event names."""
    def step(case, view):
        repeat = remedies.repeat_of(_received_elsewhere(repository, case, rules, now), rules.repeat_threshold)
        ladder = [person.as_dict() for person in chart.ladder(case["store_id"])]
        remedy = remedies.propose(proposal["type"], proposal.get("refund_option"), proposal.get("amount_fen"),
                                  view.resolution_round + 1, principal.actor, principal.role, ladder,
                                  rules.limits, repeat, now, proposal.get("note") or "")
        changes, entry = lifecycle.propose_remedy(view, remedy, now)
        return changes, entry, [case_event(
            ev.REMEDY_PROPOSED, case, principal.actor, now, remedy_id=remedy.remedy_id, type=remedy.type.value,
            refund_option=remedy.refund_option.value if remedy.refund_option else None,
            amount_fen=remedy.amount_fen, status=remedy.status.value, approver=remedy.approver,
            approver_role=remedy.approver["role"] if remedy.approver else None,
            flags=list(remedy.flags), repeat=remedy.repeat)]
    return _run(repository, case_id, scope, now, step)


def decide_remedy(repository, rules, case_id, remedy_id, approve, reason, principal, scope, now):
    def step(case, view):
        lifecycle.next_status(view, CaseAction.APPROVE_REMEDY if approve else CaseAction.REJECT_REMEDY)
        pending = lifecycle.pending_remedy(view, remedy_id)
        decided = remedies.decide(pending, approve, principal.actor, principal.role, rules.limits, reason, now)
        changes, entry = lifecycle.decide_remedy(view, decided, now)
        return changes, entry, [case_event(
            ev.REMEDY_DECIDED, case, principal.actor, now, remedy_id=remedy_id, type=decided.type.value,
            refund_option=decided.refund_option.value if decided.refund_option else None,
            amount_fen=decided.amount_fen, decision=decided.status.value, proposed_by=decided.proposed_by,
            reason=reason)]
    return _run(repository, case_id, scope, now, step)


def _closed(case, now, root_cause=None, merged_into=None):
    return outgoing(ev.CASE_CLOSED, {"case_id": case["_id"], "store_id": case["store_id"], "closed_at": now,
                                     "root_cause": root_cause, "merged_into": merged_into})


def _improvements(chart, actions):
    """Improvement actions as stored: each owner an active staff member, due as a date."""
    stored = []
    for n, action in enumerate(actions):
        owner = chart.staff.get(action["owner"])
        if owner is None or not owner.active:
            raise ActionRefused("validation_failed", f"no active staff member {action['owner']}",
                                f"actions.{n}.owner")
        stored.append({"text": action["text"], "owner": owner.staff_id, "due": action["due"].isoformat()})
    return stored


def record_root_cause(repository, chart, case_id, principal, scope, cause, actions, note, now):
    """The root cause and improvement actions ([{text, owner, due: date}]). A resolved
    case whose satisfied revisit was waiting for it closes now (both on the timeline)."""
    improvements = _improvements(chart, actions)

    def step(case, view):
        changes, entry = lifecycle.record_root_cause(view, principal.actor, cause, improvements, note, now)
        if view.status is not lifecycle.CaseStatus.RESOLVED or not view.close_pending:
            return changes, entry, []
        recorded = CaseView.of({**case, **changes})
        closing, closed = lifecycle.close(recorded, f"revisit:{view.close_pending['revisit_id']}", now)
        return {**changes, **closing}, [entry, closed], [_closed(case, now, cause)]
    return _run(repository, case_id, scope, now, step)


def file_report(repository, case_id, principal, scope, summary, now):
    def step(case, view):
        changes, entry = lifecycle.file_report(view, principal.actor, summary, now)
        return changes, entry, [case_event(ev.REPORT_FILED, case, principal.actor, now,
                                           revision=changes["report"]["revision"],
                                           report_due=case["clocks"]["report"]["due_at"])]
    return _run(repository, case_id, scope, now, step)


def sign_off_report(repository, case_id, principal, scope, now):
    def step(case, view):
        changes, entry, on_time = lifecycle.sign_off_report(view, principal.actor, now)
        return changes, entry, [case_event(ev.REPORT_SIGNED_OFF, case, principal.actor, now, on_time=on_time)]
    return _run(repository, case_id, scope, now, step)


def resolve(repository, chart, case_id, remedy_id, note, principal, scope, now):
    def step(case, view):
        if case["channel"] in REFERRAL_CHANNELS and not principal.can(Permission.CASE_CLOSE_REFERRAL):
            raise ActionForbidden("a consumer-association or media case is resolved by a store manager or above")
        changes, entry, on_time = lifecycle.resolve(view, principal.actor, remedy_id, note, now)
        outbox = []
        if "first_response_at" in changes:  # unanswered until now: the remedy is the answer
            outbox.append(_first_responded(case, now, now <= case["clocks"]["first_response"]["due_at"]))
        remedy = changes["remedy"]
        outbox.append(outgoing(ev.CASE_RESOLVED, {
            "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
            "category": case["category"], "remedy": remedy, "amount_fen": remedy["amount_fen"],
            "root_cause": (view.root_cause or {}).get("cause"), "note": note, "resolved_at": now,
            "on_time": on_time, "resolution_round": changes["resolution_round"], "customer": case["customer"],
            "revisit_owner": chart.revisit_owner(case["store_id"]).as_dict(), "locale": case["locale"],
            "resolved_by": principal.actor}))
        return changes, entry, outbox
    return _run(repository, case_id, scope, now, step)


def close(repository, case_id, actor, now, scope=EVERYWHERE):
    def step(case, view):
        changes, entry = lifecycle.close(view, actor, now)
        return changes, entry, [_closed(case, now, view.root_cause["cause"])]
    return _run(repository, case_id, scope, now, step)


def reopen(repository, rules, case_id, actor, reason, source, now, scope=EVERYWHERE):
    """Fresh clocks for the new round, and the case's rung told again: it must
    acknowledge the reopened case within its timeout, or the case climbs."""
    def step(case, view):
        changes, entry = lifecycle.reopen(view, actor, reason, source, now, rules.calendar_of(case["store_id"]))
        state = ladder.renotified(ladder.LadderState.from_doc(case["ladder"]), rules.rungs_of(case["store_id"]),
                                  now, rules.ack_timeouts)
        changes["ladder"] = state.to_doc()
        return changes, entry, [outgoing(ev.CASE_REOPENED, {
            "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
            "reason": reason, "source": source, "reopened_at": now,
            "resolution_due": changes["clocks"]["resolution"]["due_at"]})]
    return _run(repository, case_id, scope, now, step)


def add_task_for_failed_notification(repository, failed, now):
    """notify gave a notification up (notification_failed): the store gets a task on the
    case, to phone the customer or to tell the staff member another way. Once per
    notification (its kind and recipient), however often the event is redelivered.
    (case, []) or (None, []) for a case routing does not have."""
    key = f"{failed['kind']}|{failed['recipient']}"

    def action(case):
        if any(task["key"] == key for task in case.get("tasks") or ()):
            return {}, None, []
        task = {"key": key, "action": failed["action"], "kind": failed["kind"], "audience": failed["audience"],
                "reason": failed["reason"], "channels_tried": failed["channels_tried"], "created_at": now}
        return {"tasks": [*(case.get("tasks") or ()), task]}, lifecycle.entry(
            now, "task_added", "notify", task=failed["action"], kind=failed["kind"], reason=failed["reason"]), []
    try:
        return _act(repository, failed["case_id"], EVERYWHERE, now, action)
    except CaseNotFound:
        return None, []


def apply_revisit(repository, rules, revisit, now):
    """A low score reopens the case; any other score closes it once its root cause is
    on record (until then it stays resolved, the close waiting for the root cause).
    Only the resolution the revisit asked about is touched: a redelivered or late
    revisit of an earlier round changes nothing."""
    case = repository.get(revisit["case_id"])
    if case is None or case["status"] != lifecycle.CaseStatus.RESOLVED.value \
            or case["resolution_round"] != revisit["round"]:
        return case, []
    actor = f"revisit:{revisit['revisit_id']}"
    if revisit["reopens_case"]:
        reason = f"revisit score {revisit['score']}: {revisit.get('comment') or ''}".strip()
        return reopen(repository, rules, case["_id"], actor, reason, "revisit", now)
    if case.get("root_cause"):
        return close(repository, case["_id"], actor, now)

    def step(case, view):
        if view.close_pending and view.close_pending["revisit_id"] == revisit["revisit_id"]:
            return {}, None, []  # redelivered
        changes, entry = lifecycle.await_root_cause(view, actor, revisit, now)
        return changes, entry, []
    return _run(repository, case["_id"], EVERYWHERE, now, step)


def _target(repository, other_id, scope, field):
    """The other case named in a body: 422 on that field when it is not there for the caller."""
    try:
        return get_case(repository, other_id, scope)
    except CaseNotFound:
        raise ActionRefused("validation_failed", f"no case {other_id}", field)


def _linker(related_id, actor, reason, now):
    """The step linking a case to `related_id` (nothing when it is linked already)."""
    def step(case, view):
        if related_id in view.related:
            return {}, None, []
        changes, entry = lifecycle.link(view, actor, related_id, reason, now)
        return changes, entry, [case_event(ev.CASE_LINKED, case, actor, now, related_case_id=related_id,
                                           reason=reason)]
    return step


def _link_both(repository, case_id, other_id, actor, reason, scope, now):
    first = _run(repository, case_id, scope, now, _linker(other_id, actor, reason, now))
    second = _run(repository, other_id, scope, now, _linker(case_id, actor, reason, now))
    return first, second


def link(repository, case_id, other_id, principal, scope, now):
    """Staff link two cases as related (both show it). Returns the first case's result
    and [(case, events)] of the other, for publishing."""
    get_case(repository, case_id, scope)
    if other_id == case_id:
        raise ActionRefused("validation_failed", "a case is not related to itself", "related")
    _target(repository, other_id, scope, "related")
    (case, events), other = _link_both(repository, case_id, other_id, principal.actor, LinkReason.STAFF.value,
                                       scope, now)
    return case, events, [other]


def link_duplicates(repository, case, now, window=DUPLICATE_WINDOW):
    """After routing: the same customer's cases the new case was linked to at routing
    (flows.route) are linked back to it, each on its timeline with its case_linked.
    Idempotent: a case already linked back is not written again (a redelivery).
    A case routed without its customer's keys (before routing recorded them) is
    recognised here, and linked on both sides. Returns [(case, events)] of every case
    written."""
    if "customer_keys" not in case:
        return _recognise_and_link(repository, case, now, window)
    written = []
    for other_id in case.get("related") or ():
        try:
            linked = _run(repository, other_id, EVERYWHERE, now,
                          _linker(case["_id"], "system", LinkReason.DUPLICATE.value, now))
        except (ActionRefused, CaseNotFound):  # archived meanwhile: history, not linked
            continue
        if linked[1]:
            written.append(linked)
    return written


def _recognise_and_link(repository, case, now, window):
    """link_duplicates for a case routed without its customer's keys: the keys go on it,
    then each duplicate (flows.customer_duplicates) is linked on both sides, the other
    case first, so that one archived or gone meanwhile is skipped before the new case
    names it (no one-sided link)."""
    keys, related = customer_duplicates(repository, case, window)

    def keep_keys(current, view):
        if "customer_keys" in current:
            return {}, None, []
        return {"customer_keys": keys}, recognised_entry(keys, related, now), []
    written = [_run(repository, case["_id"], EVERYWHERE, now, keep_keys)]
    for other_id in related:
        try:
            theirs = _run(repository, other_id, EVERYWHERE, now,
                          _linker(case["_id"], "system", LinkReason.DUPLICATE.value, now))
        except (ActionRefused, CaseNotFound):  # archived or gone meanwhile: history, not linked
            continue
        written += [theirs, _run(repository, case["_id"], EVERYWHERE, now,
                                 _linker(other_id, "system", LinkReason.DUPLICATE.value, now))]
    return written


def merge(repository, case_id, into_id, principal, scope, now):
    """The duplicate closes with a pointer (merged_into), its clocks stop; the case it
    went into records it as related. Returns (case, events, [(into_case, events)])."""
    get_case(repository, case_id, scope)
    lifecycle.can_absorb(CaseView.of(_target(repository, into_id, scope, "into")))

    def merged(case, view):
        changes, entry = lifecycle.merge(view, principal.actor, into_id, now)
        return changes, entry, [case_event(ev.CASE_MERGED, case, principal.actor, now, into_case_id=into_id),
                                _closed(case, now, merged_into=into_id)]

    def absorb(case, view):
        changes, entry = lifecycle.absorb(view, principal.actor, case_id, now)
        return changes, entry, []
    case, events = _run(repository, case_id, scope, now, merged)
    return case, events, [_run(repository, into_id, EVERYWHERE, now, absorb)]


def archive(repository, case_id, principal, scope, now):
    def step(case, view):
        changes, entry = lifecycle.archive(view, principal.actor, now)
        return changes, entry, [case_event(ev.CASE_ARCHIVED, case, principal.actor, now)]
    return _run(repository, case_id, scope, now, step)


def timeline(repository, case_id, scope, before, limit):
    """A page of the case's whole timeline, newest first, and where the next page starts."""
    case = get_case(repository, case_id, scope)
    entries = repository.timeline_page(case, before, limit)
    return {"case_id": case_id, "count": case.get("timeline_count", len(case.get("timeline", []))),
            "entries": entries, "next_before": entries[-1]["seq"] if len(entries) == limit else None}
