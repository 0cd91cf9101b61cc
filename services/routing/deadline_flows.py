"""What happens when a case's time runs: warnings before a deadline, breaches, and the
climb up the escalation ladder when a rung does not acknowledge in time or a clock runs
out. Plain functions over the case repository, the organisation and the case rules;
the precise timers (closeloop_shared.due) and the safety-net scan call `check_case` /
`check_due`, several replicas at once: every write is conditional on the version read,
so each warning, breach and climb happens once."""
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from closeloop_shared import events as ev
from closeloop_shared.config import REFERENCE_CACHE_SECONDS, setting
from closeloop_shared.contract import ACTIVE_CASE_STATUSES, ClockName
from closeloop_shared.events import new_event as outgoing
from services.routing import calendar_flows, clocks, duty_flows, ladder, lifecycle, policy, policy_flows

log = logging.getLogger(__name__)
RETRY_BROKEN_AFTER = timedelta(minutes=5)
# The precise timers fire within a second of a deadline; the scan takes only what they
# have left for this long (all replicas down, a claim lost), so the two never race.
SAFETY_NET_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class CaseRules:
    """How routing handles cases, read fresh for each use case: the SLA policy a case's
    facts choose (stored or built in from config), each store's business calendar, whom a new case
    goes to, and how long each rung of the ladder has to acknowledge."""
    choose_policy: Callable  # policy.CaseFacts -> policy.SlaPolicy
    calendar_of: Callable  # store_id -> StoreCalendar
    assign: Callable       # (store_id, category, severity, now) -> duty.Assignment
    ack_timeouts: dict
    rungs_of: Callable     # store_id -> the ladder's rungs as the organisation holds them now


def case_rules(config, cases, policies, calendars, rosters, org):
    """The CaseRules of this moment from routing's stores and its nameko config;
    policies are read only when a new case needs one."""
    builtins = policy.builtin_policies_from(config)
    cached = setting(config, REFERENCE_CACHE_SECONDS)  # policies and rosters change rarely
    return CaseRules(
        choose_policy=lambda facts: policy.choose(policy_flows.active_policies(policies, cached), facts, builtins),
        calendar_of=lambda store_id: calendar_flows.calendar_for(calendars, org, store_id),
        assign=lambda store_id, category, severity, now: duty_flows.assignee_for(
            cases, rosters, org, store_id, category, severity, now, cached),
        ack_timeouts=ladder.timeouts(lambda key: setting(config, key)),
        rungs_of=lambda store_id: ladder.resolve_rungs(org, store_id))


def people(org, staff_ids):
    return [org.staff[staff_id].as_dict() for staff_id in staff_ids if staff_id in org.staff]


def schedule(clock_set, state):
    """When anything can next happen to the case: a warning, a breach or a climb."""
    moments = [m for m in (clocks.next_at(clock_set), ladder.next_at(state)) if m is not None]
    return min(moments, default=None)


def ladder_entries(notes, now):
    """Timeline entries of the ladder's notes (notified, skipped, top reached)."""
    return [lifecycle.entry(now, f"ladder_{note.kind.value}", "system", rung=note.level,
                            role=note.role.value, people=list(note.people), detail=note.detail)
            for note in notes]


def escalated_event(case, org, state, previous, assignee, reason, due_at, now):
    return outgoing(ev.CASE_ESCALATED, {
        "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
        "severity": case["severity"], "reason": reason, "rung": state.level, "role": state.role.value,
        "previous_assignee": previous, "assignee": assignee, "notified": people(org, state.people),
        "ack_due_at": state.ack_due_at, "escalated_at": now, "due_at": due_at, "locale": case["locale"]})


def check_case(repository, org, rules, case_id, now):
    """The check of one case when its precise timer fires, on the case as it is now:
    [(case, events)] if it was still due and this write won, else []."""
    case = repository.get(case_id)
    if case is None or case.get("next_check_at") is None or case["next_check_at"] > now:
        return []
    return _check(repository, org, rules, case, now)


def check_due(repository, org, rules, now, limit=200, grace=SAFETY_NET_GRACE):
    """The safety net: every case whose check has been due for `grace` and that no
    timer took (missed while all replicas were down, say). One broken case (its
    store left the organisation) is logged and looked at again later, never stalls the
    rest."""
    won = []
    for case in repository.due(now - grace, limit):
        try:
            won.extend(_check(repository, org, rules, case, now))
        except Exception:
            log.exception("deadline check failed", extra={"case_number": case.get("case_number")})
            repository.update(case, {"next_check_at": now + RETRY_BROKEN_AFTER}, [], [], now)
    return won


def _check(repository, org, rules, case, now):
    clock_set = clocks.from_doc(case["clocks"])
    state = ladder.LadderState.from_doc(case["ladder"])
    fired = clocks.due(clock_set, now)
    entries, outbox = [], []
    for name in fired.warnings:
        clock = fired.clocks[name]
        entries.append(lifecycle.entry(now, "sla_warning", "system", clock=name, due_at=clock.due_at))
        outbox.append(outgoing(ev.CASE_DEADLINE_APPROACHED, {
            "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
            "severity": case["severity"], "clock": name, "basis": clock.basis.value,
            "due_at": clock.due_at, "warned_at": now, "assignee": case["assignee"], "locale": case["locale"]}))
    for name in fired.breaches:
        clock = fired.clocks[name]
        entries.append(lifecycle.entry(now, "sla_breached", "system", clock=name, due_at=clock.due_at))
        outbox.append(outgoing(ev.CASE_DEADLINE_BREACHED, {
            "case_id": case["_id"], "case_number": case["case_number"], "store_id": case["store_id"],
            "severity": case["severity"], "category": case["category"], "clock": name,
            "basis": clock.basis.value, "policy_id": clock.policy_id, "policy_version": clock.policy_version,
            "due_at": clock.due_at, "breached_at": now, "rung": state.level, "assignee": case["assignee"],
            "locale": case["locale"]}))
    changes = {"clocks": clocks.to_doc(fired.clocks)}
    climb = _climb(rules, case, state, fired, now)
    if climb is not None:
        entries.extend(ladder_entries(climb.notes, now))
        if climb.reason is not None:
            assignee = org.staff[climb.state.people[0]].as_dict()
            changes.update(rung=climb.state.level, assignee=assignee)
            entries.append(lifecycle.entry(now, "escalated", "system", reason=climb.reason, rung=climb.state.level,
                                           assignee=assignee["staff_id"], ack_due_at=climb.state.ack_due_at))
            outbox.append(escalated_event(case, org, climb.state, case["assignee"], assignee, climb.reason,
                                          climb.due_at, now))
        state = climb.state
    changes["ladder"] = state.to_doc()
    changes["next_check_at"] = schedule(fired.clocks, state) if case["status"] in ACTIVE_CASE_STATUSES else None
    updated = repository.update(case, changes, entries, outbox, now)
    return [(updated, outbox)] if updated else []


@dataclass(frozen=True)
class Climb:
    state: object          # the ladder.LadderState after it
    notes: tuple           # what the ladder noted (notified, skipped, top reached), for the timeline
    reason: str | None     # the clock that ran out or "unacknowledged"; None: it stays on its rung
    due_at: object         # the deadline that caused it


def _climb(rules, case, state, fired, now):
    """The ladder's move at this check, or None. A clock that ran out moves the case up
    a rung even if its current rung acknowledged (a new alarm needs a new
    acknowledgement); an unacknowledged rung past its timeout too."""
    rungs = rules.rungs_of(case["store_id"])
    if fired.breaches:
        name = fired.breaches[0]
        climbed, notes = ladder.climb(ladder.rearmed(state), rungs, now, rules.ack_timeouts)
        if climbed.level == state.level:  # already on the top rung held
            return None
        return Climb(climbed, tuple(notes), name, fired.clocks[name].due_at)
    due = ladder.next_at(state)
    if due is None or due > now:
        return None
    climbed, notes = ladder.climb(state, rungs, now, rules.ack_timeouts)
    if climbed is state:  # the rungs above emptied since: nothing left to wait for
        settled = ladder.settled(state, now)
        return Climb(settled, settled.notes[-1:], None, due)
    return Climb(climbed, tuple(notes), "unacknowledged", due)


def clock_deadlines(clock_set):
    """{first_response_due: .., resolution_due: .., ...} as events carry them."""
    return {f"{name}_due": clock.due_at for name, clock in clock_set.items()
            if name in {c.value for c in ClockName}}
