"""Duty use cases over the repositories: rosters (read, replace with validation), a
manager's reassignment of a case, and the shift-end handover. Each case write is
version-checked (flows._act) and carries its case_reassigned in the outbox; the caller
publishes the events returned."""
import logging
from datetime import timedelta

from closeloop_shared.cache import TimedCache
from closeloop_shared.contract import Role
from services.routing import duty, flows, ladder, lifecycle

log = logging.getLogger(__name__)
STORE_ROLES = (Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER)


class RosterRefused(Exception):
    """status 404 (unknown store), 409 (changed meanwhile) or 422 (the field at fault)."""

    def __init__(self, status, code, message, field=None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


_ROSTERS = TimedCache()  # (collection, store id) -> the store's Roster or None


def roster_for(repository, store_id, cache_seconds=0):
    """The store's roster, or None when it has none; read again after `cache_seconds`
    (a change through this process: at once)."""
    def load():
        doc = repository.get(store_id)
        return duty.Roster.from_doc(doc) if doc else None
    return _ROSTERS.get((repository.cache_key, store_id), load, cache_seconds)


def _checked_shift(org, store_id, index, body):
    where = f"shifts.{index}"
    for staff_id in body["staff_ids"]:
        person = org.staff.get(staff_id)
        if person is None or not person.active or person.store_id != store_id:
            raise RosterRefused(422, "validation_failed",
                                f"{staff_id} is not an active member of store {store_id}", f"{where}.staff_ids")
    if bool(body.get("weekdays")) == bool(body.get("date")):
        raise RosterRefused(422, "validation_failed", "a shift runs on weekdays or on one date", where)
    if body["start"] == body["end"]:
        raise RosterRefused(422, "validation_failed", "a shift ends at another time than it starts",
                            f"{where}.end")
    return duty.Shift(body["shift_id"], body["start"], body["end"], tuple(dict.fromkeys(body["staff_ids"])),
                      frozenset(body.get("weekdays") or ()), body.get("date"))


def set_roster(repository, org, store_id, shifts, expected_version, actor, now):
    """Replace the store's roster with `shifts` (as RosterIn loads them: times and dates
    parsed): every person an active member of the store, shift ids unique. With
    `expected_version` the write is refused (409) if the roster changed since; without
    it, it applies to whatever version is stored now."""
    if store_id not in org.stores:
        raise RosterRefused(404, "store_not_found", f"no store {store_id}")
    ids = [shift["shift_id"] for shift in shifts]
    if len(set(ids)) != len(ids):
        raise RosterRefused(422, "validation_failed", "shift ids must be unique", "shifts")
    checked = tuple(_checked_shift(org, store_id, i, body) for i, body in enumerate(shifts))
    current = repository.get(store_id)
    stored_version = current["version"] if current else 0
    if expected_version is not None and expected_version != stored_version:
        raise RosterRefused(409, "concurrent_update",
                            f"the roster is at version {stored_version}, not {expected_version}", "version")
    roster = duty.Roster(store_id, checked, stored_version + 1)
    if not repository.put(roster.to_doc(), stored_version, actor, now):
        raise RosterRefused(409, "concurrent_update", "the roster changed meanwhile; read it again", "version")
    _ROSTERS.forget(repository.cache_key)
    log.info("roster set", extra={"store_id": store_id, "version": roster.version, "by": actor})
    return roster


def roster_view(roster, store_id):
    return (roster or duty.Roster(store_id)).to_doc()


def open_cases(cases_repository, store_id, staff_ids):
    """duty.OpenCase-s of the store's active cases held by staff_ids."""
    return [duty.OpenCase(doc["_id"], doc["assignee"]["staff_id"], doc["category"], doc["severity"])
            for doc in cases_repository.active_assigned_at(store_id, staff_ids)]


def assignee_for(cases_repository, rosters, org, store_id, category, severity, now, roster_cache_seconds=0):
    """duty.Assignment of a new case: the fitting person on duty with the fewest open
    cases at the store, else the ladder's rung (duty.assign). The open cases are read
    fresh; the roster may be `roster_cache_seconds` old (roster_for)."""
    members = [p.staff_id for p in org.active_staff() if p.store_id == store_id]
    counts = cases_repository.active_counts_at(store_id, members)
    roster = roster_for(rosters, store_id, roster_cache_seconds)
    return duty.assign(roster, org, store_id, category, severity, counts, now)


class ReassignRefused(Exception):
    """The target cannot take the case (422, field staff_id) or already has it (409)."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def reassign(cases_repository, org, case_id, staff_id, reason, principal, scope, now):
    """A manager hands a case to another person on its store's chain (anyone active on
    one of its ladder's rungs); the timeline says who, why, from whom and to whom."""
    def action(case):
        if lifecycle.CaseStatus(case["status"]) not in lifecycle.ACTIVE:
            raise lifecycle.ActionRefused("invalid_transition",
                                          f"cannot reassign a case that is {case['status']}")
        on_chain = {i for rung in ladder.resolve_rungs(org, case["store_id"]) for i in rung.people}
        if staff_id not in on_chain:
            raise ReassignRefused(422, "validation_failed",
                                  f"{staff_id} is not an active person on this store's chain")
        if case["assignee"]["staff_id"] == staff_id:
            raise ReassignRefused(409, "already_assigned", f"the case is already {staff_id}'s")
        successor = org.staff[staff_id].as_dict()
        entry = lifecycle.entry(now, "reassigned", principal.actor, reason="manager", note=reason,
                                previous=case["assignee"]["staff_id"], assignee=staff_id)
        changes, events = flows.reassignment(case, successor, "manager", now)
        return changes, entry, events
    return flows._act(cases_repository, case_id, scope, now, action)


def _hand_over(cases_repository, handover, ended_at, now):
    """One case to the next shift, if it is still with the person whose shift ended."""
    def action(case):
        if case["assignee"]["staff_id"] != handover.from_id \
                or lifecycle.CaseStatus(case["status"]) not in lifecycle.ACTIVE:
            return {}, None, []  # moved or settled meanwhile
        successor = handover.to.as_dict()
        entry = lifecycle.entry(now, "handed_over", "system", reason="shift_handover",
                                **{"from": handover.from_id, "to": successor["staff_id"]},
                                shift=handover.shift_id, next_shift=handover.next_shift_id,
                                shift_ended_at=ended_at)
        changes, events = flows.reassignment(case, successor, "shift_handover", now)
        return changes, entry, events
    return flows._act(cases_repository, handover.case_id, flows.EVERYWHERE, now, action)


def hand_over_at_shift_end(cases_repository, rosters, org, now, lookback=timedelta(hours=12)):
    """For every roster and every shift end in the last `lookback` (not before the roster
    was first set): claim that shift end (one replica wins it), hand the open cases of
    the people leaving to the next shift, and mark it done. Returns [(case, events)] of
    the cases handed over by this replica."""
    handed = []
    for doc in rosters.all():
        store_id = doc["_id"]
        if store_id not in org.stores:
            continue  # the store left the organisation; its roster stays for the record
        roster = duty.Roster.from_doc(doc)
        since = max(now - lookback, doc["created_at"])
        for ended_at in duty.shift_ends(roster, org, store_id, since, now):
            claim = rosters.claim_shift_end(store_id, ended_at, now)
            if claim is None:
                continue
            with rosters.leases.hold(claim):
                staff_ids = {i for shift in roster.shifts for i in shift.staff_ids}
                held = open_cases(cases_repository, store_id, staff_ids)
                moves = duty.shift_handover(roster, org, store_id, held, ended_at, duty.open_counts(held))
                done = [_hand_over(cases_repository, move, ended_at, now) for move in moves]
            moved = [(case, events) for case, events in done if events]
            rosters.finish_shift_end(claim, len(moved), now)
            log.info("shift handed over", extra={"store_id": store_id, "ended_at": ended_at.isoformat(),
                                                 "cases": len(moved)})
            handed.extend(moved)
    return handed
