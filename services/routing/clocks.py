"""A case's SLA clocks: armed from its policy, paused while the case waits on the
customer, met by staff actions, and what falls due when. Pure (no nameko, no pymongo):
datetimes (timezone-aware UTC) in, new clocks out; nothing is changed in place.

A case holds {name: Clock} (names are ClockName values). Each clock carries a copy of
the spec it was armed with and the policy id and version that spec came from, so a
later change of the policy never moves a running case's deadlines.

A clock counts wall time or business time (ClockSpec.basis). Business clocks do their
arithmetic on the calendar passed in (anything with add(start, duration) and
elapsed(start, end), e.g. services/routing/calendar.StoreCalendar); wall clocks on
WallCalendar whatever is passed.

- pause stops every running clock; resume moves each one's due and warning times by
  the paused time as that clock counts it (a business clock by the open time the pause
  covered, a wall clock by the wall time). Only what was still ahead when the pause
  began moves: a clock already overdue (or a warning already due) stays so.
- due() reports each warning and each breach once: the clocks it returns mark them,
  and the caller stores those. A warning still unreported when its clock breaches is
  dropped (the breach says more).
- A met clock never fires again; rearm starts a clock afresh (the resolution clock on
  reopening, the keep-in-loop update clock after each customer-facing response).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Protocol

from closeloop_shared.contract import ClockBasis, ClockName
from services.routing.calendar import WallCalendar
from services.routing.policy import ClockSpec, SlaPolicy

WALL = WallCalendar()


class Calendar(Protocol):
    def add(self, start: datetime, duration: timedelta) -> datetime: ...

    def elapsed(self, start: datetime, end: datetime) -> timedelta: ...


def _calendar(basis: ClockBasis, business: Calendar) -> Calendar:
    return WALL if basis is ClockBasis.WALL else business


@dataclass(frozen=True)
class Clock:
    name: ClockName
    basis: ClockBasis
    duration: timedelta
    warning_lead: timedelta | None
    policy_id: str
    policy_version: int
    started_at: datetime
    due_at: datetime
    warn_at: datetime | None = None
    met_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    paused_at: datetime | None = None
    paused_for: timedelta = timedelta(0)  # counted as the clock counts: what resume added
    stopped_at: datetime | None = None    # stopped for good, neither met nor breached (a merged case)

    @property
    def spec(self) -> ClockSpec:
        return ClockSpec(self.name, self.duration, self.basis, self.warning_lead)

    @property
    def running(self) -> bool:
        return self.met_at is None and self.stopped_at is None

    def pending(self) -> dict[str, datetime]:
        """{"breach"/"warning": moment} not reported yet. While paused, only what fell
        due before the pause (the rest moves on resume)."""
        if not self.running or self.breached_at is not None:
            return {}
        pending = {"breach": self.due_at}
        if self.warn_at is not None and self.warned_at is None:
            pending["warning"] = self.warn_at
        return {kind: moment for kind, moment in pending.items()
                if self.paused_at is None or moment <= self.paused_at}

    def to_doc(self) -> dict:
        return {**self.spec.to_doc(), "policy_id": self.policy_id, "policy_version": self.policy_version,
                "started_at": self.started_at, "due_at": self.due_at, "warn_at": self.warn_at,
                "met_at": self.met_at, "warned_at": self.warned_at, "breached_at": self.breached_at,
                "paused_at": self.paused_at, "paused_seconds": self.paused_for.total_seconds(),
                "stopped_at": self.stopped_at}

    @classmethod
    def from_doc(cls, doc: Mapping) -> Clock:
        spec = ClockSpec.from_doc(doc)
        return cls(name=spec.name, basis=spec.basis, duration=spec.duration,
                   warning_lead=spec.warning_lead, policy_id=doc["policy_id"],
                   policy_version=int(doc["policy_version"]), started_at=doc["started_at"],
                   due_at=doc["due_at"], warn_at=doc.get("warn_at"), met_at=doc.get("met_at"),
                   warned_at=doc.get("warned_at"), breached_at=doc.get("breached_at"),
                   paused_at=doc.get("paused_at"),
                   paused_for=timedelta(seconds=doc.get("paused_seconds") or 0),
                   stopped_at=doc.get("stopped_at"))


def start(spec: ClockSpec, policy_id: str, policy_version: int, now: datetime,
          calendar: Calendar, paused: bool = False) -> Clock:
    """A clock for `spec` starting at `now` (already paused at `now` if `paused`)."""
    counting = _calendar(spec.basis, calendar)
    warn_at = (counting.add(now, spec.duration - spec.warning_lead)
               if spec.warning_lead is not None else None)
    return Clock(name=spec.name, basis=spec.basis, duration=spec.duration,
                 warning_lead=spec.warning_lead, policy_id=policy_id, policy_version=policy_version,
                 started_at=now, due_at=counting.add(now, spec.duration), warn_at=warn_at,
                 paused_at=now if paused else None)


def arm(policy: SlaPolicy, now: datetime, calendar: Calendar) -> dict[str, Clock]:
    """Every clock of `policy`, starting at `now` (the case's submission time)."""
    return {spec.name.value: start(spec, policy.policy_id, policy.version, now, calendar)
            for spec in policy.clocks}


def is_paused(clocks: Mapping[str, Clock]) -> bool:
    return any(c.running and c.paused_at is not None for c in clocks.values())


def pause(clocks: Mapping[str, Clock], now: datetime) -> dict[str, Clock]:
    """Stop every running clock at `now` (a clock already paused keeps its pause start)."""
    return {name: replace(c, paused_at=now) if c.running and c.paused_at is None else c
            for name, c in clocks.items()}


def resume(clocks: Mapping[str, Clock], now: datetime, calendar: Calendar) -> dict[str, Clock]:
    """Restart the paused clocks at `now`, their deadlines moved by the paused time."""
    resumed = {}
    for name, c in clocks.items():
        if c.paused_at is None:
            resumed[name] = c
            continue
        counting = _calendar(c.basis, calendar)
        gap = counting.elapsed(c.paused_at, now)
        changes = {"paused_at": None, "paused_for": c.paused_for + gap}
        if c.running and c.breached_at is None and c.due_at > c.paused_at:
            changes["due_at"] = counting.add(c.due_at, gap)
            if c.warn_at is not None and c.warned_at is None and c.warn_at > c.paused_at:
                changes["warn_at"] = counting.add(c.warn_at, gap)
        resumed[name] = replace(c, **changes)
    return resumed


def stop(clocks: Mapping[str, Clock], now: datetime) -> dict[str, Clock]:
    """Stop every running clock for good at `now` (a case merged into another): it
    neither breaches nor counts as met."""
    return {name: replace(c, stopped_at=now, paused_at=None) if c.running else c
            for name, c in clocks.items()}


def meet(clocks: Mapping[str, Clock], names: Iterable[ClockName | str], now: datetime
         ) -> tuple[dict[str, Clock], dict[str, bool]]:
    """Stop the named running clocks at `now` (a response, a report, a resolution);
    returns the new clocks and, for each one met now, whether it was on time. A clock
    paused before it fell due is on time whenever it is met during the pause."""
    updated, on_time = dict(clocks), {}
    for name in (ClockName(n).value for n in names):
        c = clocks.get(name)
        if c is None or not c.running:
            continue
        paused_in_time = c.paused_at is not None and c.due_at > c.paused_at
        on_time[name] = c.breached_at is None and (paused_in_time or now <= c.due_at)
        updated[name] = replace(c, met_at=now, paused_at=None)
    return updated, on_time


def rearm(clocks: Mapping[str, Clock], name: ClockName | str, now: datetime,
          spec: ClockSpec | None, calendar: Calendar) -> dict[str, Clock]:
    """Start clock `name` afresh at `now`: with `spec`, or (None) the spec it was armed
    with. It keeps the case's policy id and version; if the case is paused it starts
    paused. Used for the resolution clock on reopening and the keep-in-loop update
    clock after each customer-facing response."""
    key = ClockName(name).value
    origin = clocks.get(key) or next(iter(clocks.values()), None)
    if origin is None:
        raise ValueError("a case without clocks has no policy to rearm from")
    if spec is None:
        if key not in clocks:
            raise ValueError(f"the case has no {key} clock: pass its spec")
        spec = clocks[key].spec
    if spec.name.value != key:
        raise ValueError(f"spec {spec.name.value} given to rearm {key}")
    fresh = start(spec, origin.policy_id, origin.policy_version, now, calendar, paused=is_paused(clocks))
    return {**clocks, key: fresh}


@dataclass(frozen=True)
class Due:
    """What fell due at a check: clock names (earliest first) and the clocks with these
    marked as reported, to store."""
    warnings: tuple[str, ...]
    breaches: tuple[str, ...]
    clocks: dict[str, Clock]


def due(clocks: Mapping[str, Clock], now: datetime) -> Due:
    """The warnings and breaches that fell due by `now` and were not reported yet."""
    warnings, breaches, updated = [], [], dict(clocks)
    for name, c in clocks.items():
        fired = {kind: moment for kind, moment in c.pending().items() if moment <= now}
        if "breach" in fired:
            breaches.append((fired["breach"], name))
            updated[name] = replace(c, breached_at=now)
        elif "warning" in fired:
            warnings.append((fired["warning"], name))
            updated[name] = replace(c, warned_at=now)
    return Due(tuple(name for _, name in sorted(warnings)), tuple(name for _, name in sorted(breaches)),
               updated)


def next_at(clocks: Mapping[str, Clock]) -> datetime | None:
    """The earliest moment a warning or breach can fall due (possibly already past:
    then it is due now); None when nothing can (all met or reported, or paused)."""
    return min((moment for c in clocks.values() for moment in c.pending().values()), default=None)


def to_doc(clocks: Mapping[str, Clock]) -> dict:
    """The clocks as stored on the case."""
    return {name: c.to_doc() for name, c in clocks.items()}


def from_doc(doc: Mapping | None) -> dict[str, Clock]:
    return {name: Clock.from_doc(c) for name, c in (doc or {}).items()}
