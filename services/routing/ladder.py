"""The escalation ladder where every rung must acknowledge (issue 7, item 6). Pure: no
nameko, no pymongo; datetimes are timezone-aware UTC.

The rungs come from the store's chain, bottom to top (closeloop_shared.org.LADDER):
store staff -> supervisor -> store manager -> regional manager and the customer-service
department (both are told on that rung: the seed's "公司客户服务部或区域经理") -> general
manager. A case stands on one rung at a time; the people on it are notified and one of
them (or anyone higher up the chain) must acknowledge within the rung's timeout, or the
case climbs to the next rung that has anybody on it. A rung nobody holds (a store
without a supervisor, a region without a manager, a person deactivated) is skipped with
a note, never a crash. An acknowledgement stops the climb for good.

Org.ladder() (one person a rung, a missing rung filled from above) stays as it is for
routing's assignment; this module keeps a missing rung missing, so that the timeline can
say it was skipped.
"""
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

from closeloop_shared import config as keys
from closeloop_shared.contract import Role, Severity
from closeloop_shared.org import LADDER

# The rung each role stands on; customer service shares the regional manager's.
LEVEL_OF_ROLE = {**{role: level for level, role in enumerate(LADDER)},
                 Role.CUSTOMER_SERVICE: LADDER.index(Role.REGIONAL_MANAGER)}
STORE_STAFF, SUPERVISOR, STORE_MANAGER, REGIONAL, GENERAL_MANAGER = range(len(LADDER))

# Where a case starts climbing: a consumer-association or media referral, or anything
# else critical, at the store manager (seed 004: "要在第一时间让店长处理"); a case where the
# customer may be hurt (high) at the supervisor, who is on the floor during the shift
# and can act within the hour, with the store manager one timeout away; the rest at the
# store staff who took it.
START_LEVEL = {Severity.CRITICAL: STORE_MANAGER, Severity.HIGH: SUPERVISOR}

# The config keys of each rung's acknowledgement timeout (the top rung has none).
ACK_TIMEOUT_KEYS = {
    STORE_STAFF: keys.LADDER_ACK_STORE_STAFF_SECONDS,
    SUPERVISOR: keys.LADDER_ACK_SUPERVISOR_SECONDS,
    STORE_MANAGER: keys.LADDER_ACK_STORE_MANAGER_SECONDS,
    REGIONAL: keys.LADDER_ACK_REGIONAL_SECONDS,
}


def timeouts(seconds_of=lambda key: keys.DEFAULTS[key]):
    """{level: timedelta} from the configuration (`seconds_of(config key)`, e.g.
    `lambda key: setting(config, key)`); the defaults when called without one."""
    return {level: timedelta(seconds=float(seconds_of(key))) for level, key in ACK_TIMEOUT_KEYS.items()}


DEFAULT_TIMEOUTS = timeouts()


# The newest notes a case's ladder keeps (every one is in the case's timeline too): a
# case reopened hundreds of times must not grow its document without end.
NOTES_KEPT = 20


def _kept(notes):
    return notes[-NOTES_KEPT:]


class NoteKind(str, Enum):
    NOTIFIED = "notified"          # the case reached this rung; its people were told
    SKIPPED = "skipped"            # nobody holds this rung: passed over
    ACKNOWLEDGED = "acknowledged"  # someone acknowledged: the climb stops
    TOP_REACHED = "top_reached"    # no rung above is held: the case stays here
    HANDED_OVER = "handed_over"    # the case's owner on this rung changed (reassigned, shift end)


class AcknowledgeRefused(Exception):
    """The person is neither on the case's current rung nor above it (HTTP 403)."""


class NoLadder(ValueError):
    """Nobody at all on the store's chain: the organisation's own invariants (an open
    store has a manager, a brand with stores a general manager) were broken."""


@dataclass(frozen=True)
class Rung:
    level: int
    role: Role                    # LADDER[level]; the regional rung also holds customer service
    people: tuple = ()            # staff ids of the active people on it, in the org's order

    @property
    def present(self):
        return bool(self.people)


@dataclass(frozen=True)
class Note:
    at: datetime
    kind: NoteKind
    level: int
    role: Role
    people: tuple = ()
    detail: str | None = None

    def to_doc(self):
        return {"at": self.at, "kind": self.kind.value, "level": self.level, "role": self.role.value,
                "people": list(self.people), "detail": self.detail}

    @classmethod
    def from_doc(cls, doc):
        return cls(doc["at"], NoteKind(doc["kind"]), doc["level"], Role(doc["role"]),
                   tuple(doc["people"]), doc.get("detail"))


@dataclass(frozen=True)
class LadderState:
    level: int                    # the rung the case stands on
    people: tuple                 # who was notified on it
    notified_at: datetime
    ack_due_at: datetime | None   # None on the top rung held (nowhere to climb)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    notes: tuple = field(default=())

    @property
    def role(self):
        return LADDER[self.level]

    @property
    def acknowledged(self):
        return self.acknowledged_at is not None

    def to_doc(self):
        return {"level": self.level, "role": self.role.value, "people": list(self.people),
                "notified_at": self.notified_at, "ack_due_at": self.ack_due_at,
                "acknowledged_at": self.acknowledged_at, "acknowledged_by": self.acknowledged_by,
                "notes": [note.to_doc() for note in self.notes]}

    @classmethod
    def from_doc(cls, doc):
        return cls(doc["level"], tuple(doc["people"]), doc["notified_at"], doc["ack_due_at"],
                   doc.get("acknowledged_at"), doc.get("acknowledged_by"),
                   tuple(Note.from_doc(note) for note in doc.get("notes", ())))


def resolve_rungs(org, store_id, assignee_id=None):
    """The five rungs of the store's chain, bottom to top, each with the active people on
    it (none when nobody holds it). With `assignee_id` (an active store staff member of
    this store, the case's owner) the bottom rung is that person alone: a case at the
    bottom is its owner's, not the whole floor's."""
    store = org.stores[store_id]
    brand_id = org.brand_of_store(store_id)
    staff = org.all_active(Role.STORE_STAFF, store_id=store_id)
    owner = org.staff.get(assignee_id)
    if owner is not None and owner in staff:
        staff = (owner,)
    on_rungs = (
        staff,
        org.all_active(Role.SUPERVISOR, store_id=store_id),
        org.all_active(Role.STORE_MANAGER, store_id=store_id),
        org.all_active(Role.REGIONAL_MANAGER, region_id=store.region_id)
        + org.all_active(Role.CUSTOMER_SERVICE, brand_id=brand_id),
        org.all_active(Role.GENERAL_MANAGER, brand_id=brand_id),
    )
    return [Rung(level, LADDER[level], tuple(p.staff_id for p in people))
            for level, people in enumerate(on_rungs)]


def start_level(severity):
    return START_LEVEL.get(Severity(severity), STORE_STAFF)


def _place(rungs, lowest, now, timeouts, notes):
    """The state on the first rung held at or above `lowest`, the rungs passed over noted
    (the highest rung held when none at or above is)."""
    for rung in rungs[lowest:]:
        if rung.present:
            break
        notes.append(Note(now, NoteKind.SKIPPED, rung.level, rung.role,
                          detail=f"no active {rung.role.value} on this store's chain"))
    else:
        held = [rung for rung in rungs[:lowest] if rung.present]
        if not held:
            raise NoLadder("nobody on this store's escalation ladder")
        rung = held[-1]
    higher = any(r.present for r in rungs[rung.level + 1:])
    due = now + timeouts[rung.level] if higher else None
    notes.append(Note(now, NoteKind.NOTIFIED, rung.level, rung.role, rung.people))
    if not higher:
        notes.append(Note(now, NoteKind.TOP_REACHED, rung.level, rung.role))
    return rung, due


def start(rungs, severity, now, timeouts=DEFAULT_TIMEOUTS):
    """A new case's ladder: on the first rung held at or above its severity's start."""
    return start_on(rungs, start_level(severity), now, timeouts)


def start_on(rungs, level, now, timeouts=DEFAULT_TIMEOUTS):
    """A new case's ladder on the first rung held at or above `level` (the rung of the
    person the case was assigned to, when that is above the severity's start)."""
    notes = []
    rung, due = _place(rungs, level, now, timeouts, notes)
    return LadderState(rung.level, rung.people, now, due, notes=tuple(notes))


def climb(state, rungs, now, timeouts=DEFAULT_TIMEOUTS):
    """(state, new notes): the case on the next rung held above its current one, the
    rungs in between noted as skipped. Unchanged (no notes) once acknowledged or on the
    top rung held. The caller climbs when `next_at(state)` has passed; `rungs` are
    resolved again at that moment (the organisation may have changed)."""
    if state.acknowledged or not any(r.present for r in rungs[state.level + 1:]):
        return state, []
    notes = []
    rung, due = _place(rungs, state.level + 1, now, timeouts, notes)
    return replace(state, level=rung.level, people=rung.people, notified_at=now, ack_due_at=due,
                   notes=_kept(state.notes + tuple(notes))), notes


def may_acknowledge(state, person):
    """Someone notified on the current rung, or anyone whose role stands on it or above
    (the caller checks that the person's scope reaches the case's store)."""
    level = LEVEL_OF_ROLE.get(person.role)
    return person.active and (person.staff_id in state.people or (level is not None and level >= state.level))


def acknowledge(state, person, now):
    """The state with the climb stopped by `person` (a closeloop_shared.org.Staff).
    Idempotent: a second acknowledgement (by anyone entitled) changes nothing, the
    first one stands. AcknowledgeRefused for someone below the current rung."""
    if not may_acknowledge(state, person):
        raise AcknowledgeRefused(f"{person.staff_id} is below the case's rung ({state.role.value})")
    if state.acknowledged:
        return state
    note = Note(now, NoteKind.ACKNOWLEDGED, state.level, state.role, (person.staff_id,))
    return replace(state, acknowledged_at=now, acknowledged_by=person.staff_id, notes=_kept(state.notes + (note,)))


def handed_over(state, previous_id, successor_id, now):
    """The state once the case passed from `previous_id` to `successor_id` (a manager's
    reassignment, a shift's end, a person deactivated): where the previous owner stood on
    the case's rung, the successor stands now and is the one the rung's escalations name.
    The rung's acknowledgement deadline and any acknowledgement stand: they belong to the
    case, and a handover must not buy it more time. Unchanged when the previous owner
    was not on the rung (the case has climbed above them)."""
    if previous_id not in state.people or previous_id == successor_id:
        return state
    people = tuple(dict.fromkeys(successor_id if p == previous_id else p for p in state.people))
    note = Note(now, NoteKind.HANDED_OVER, state.level, state.role, (successor_id,), detail=f"from {previous_id}")
    return replace(state, people=people, notes=_kept(state.notes + (note,)))


def next_at(state):
    """When the case climbs unless acknowledged first: None once acknowledged or on the
    top rung held."""
    return None if state.acknowledged else state.ack_due_at


def renotified(state, rungs, now, timeouts=DEFAULT_TIMEOUTS):
    """The state of a case that needs its rung again (a reopened case): the people on
    its rung now are told afresh and must acknowledge within the rung's timeout; the
    notes so far are kept."""
    fresh = start_on(rungs, state.level, now, timeouts)
    return replace(fresh, notes=_kept(state.notes + fresh.notes))


def rearmed(state):
    """The state as if its rung had not acknowledged yet: a clock that runs out is a new
    alarm, so the case climbs again (and the rung it reaches must acknowledge again)."""
    return replace(state, acknowledged_at=None, acknowledged_by=None)


def settled(state, now):
    """The state with its acknowledgement timer stopped because no rung above is held
    any more (the organisation changed while the case waited): noted, never retried."""
    note = Note(now, NoteKind.TOP_REACHED, state.level, state.role)
    return replace(state, ack_due_at=None, notes=_kept(state.notes + (note,)))
