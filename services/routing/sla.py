"""SLA clocks and the escalation ladder. Pure: datetimes in, decisions out.

A case carries clocks {name: {"due_at", "met_at", "breached_at"}} (plus "paused_at" while
the case waits on the customer, "stopped_at" once it was merged). A clock breaches once,
when its due time passes unmet. An unmet overdue clock moves the case one rung up the
ladder, then again every `escalation_step` while it stays unmet, until the top rung.
"""
from dataclasses import dataclass
from datetime import timedelta

from closeloop_shared.org import LADDER

TOP_RUNG = len(LADDER) - 1
STORE_MANAGER_RUNG = LADDER.index("store_manager")


@dataclass(frozen=True)
class Policy:
    first_response: timedelta = timedelta(hours=24)
    resolution: timedelta = timedelta(hours=48)
    report: timedelta = timedelta(hours=8)  # written report on referral cases
    escalation_step: timedelta = timedelta(hours=4)

    @classmethod
    def from_seconds(cls, first_response, resolution, report, escalation_step):
        return cls(*(timedelta(seconds=float(s)) for s in
                     (first_response, resolution, report, escalation_step)))


def _clock(due_at):
    return {"due_at": due_at, "met_at": None, "breached_at": None}


def arm_clocks(policy, start, severity):
    clocks = {
        "first_response": _clock(start + policy.first_response),
        "resolution": _clock(start + policy.resolution),
    }
    if severity == "critical":
        clocks["report"] = _clock(start + policy.report)
    return clocks


def initial_rung(severity):
    """Who owns a new case: store staff for routine ones, the store manager when the
    customer may be hurt or the case is a referral (which then goes one rung higher at
    once, see `escalates_immediately`)."""
    return STORE_MANAGER_RUNG if severity in ("high", "critical") else 0


def escalates_immediately(severity):
    return severity == "critical"


def deadlines(clocks):
    return {f"{name}_due": clock["due_at"] for name, clock in clocks.items()}


def unmet(clocks):
    """The clocks still counting: not met, not paused, not stopped."""
    return {name: c for name, c in clocks.items()
            if c["met_at"] is None and c.get("paused_at") is None and c.get("stopped_at") is None}


# The written report of a referral is owed to the consumer association or the media and
# to the general manager, not to the customer: waiting on the customer does not pause it.
NOT_PAUSED_BY_THE_CUSTOMER = ("report",)


def pause(clocks, now):
    """The case waits on the customer: its customer-facing clocks stop counting."""
    return {name: dict(c, paused_at=now) if name in unmet(clocks) and name not in NOT_PAUSED_BY_THE_CUSTOMER
            else c for name, c in clocks.items()}


def resume(clocks, now):
    """The customer answered: each paused clock's due time (and its warning, not yet
    given) moves by the time it was paused (wall time; the calendar-aware clocks module
    will count business time)."""
    resumed = {}
    for name, clock in clocks.items():
        if clock.get("paused_at") is not None:
            waited = max(now - clock["paused_at"], timedelta(0))
            clock = dict(clock, due_at=clock["due_at"] + waited, paused_at=None)
            if clock.get("warn_at") is not None and clock.get("warned_at") is None:
                clock["warn_at"] += waited
            if "paused_seconds" in clock:  # the clocks module's record of the time added
                clock["paused_seconds"] += waited.total_seconds()
        resumed[name] = clock
    return resumed


def stop(clocks, now):
    """A merged case: every clock still owed stops for good (neither met nor breached)."""
    return {name: dict(c, stopped_at=now, paused_at=None)
            if c["met_at"] is None and c.get("stopped_at") is None else c
            for name, c in clocks.items()}


def is_paused(clocks):
    return any(c.get("paused_at") is not None for c in clocks.values())


@dataclass(frozen=True)
class Decision:
    newly_breached: tuple  # clock names that ran out since the last check
    escalate: bool
    reason: str | None  # the overdue clock that moves the case up
    next_check_at: object  # datetime or None: when anything can next happen
    clocks: dict  # the clocks with the new breaches marked


def next_check_at(clocks, rung, last_escalated_at, policy):
    """The earliest moment a clock can breach or the case can move up a rung."""
    waiting = unmet(clocks)
    candidates = [c["due_at"] for c in waiting.values() if c["breached_at"] is None]
    if waiting and rung < TOP_RUNG:
        earliest_due = min(c["due_at"] for c in waiting.values())
        if last_escalated_at is not None:
            earliest_due = max(earliest_due, last_escalated_at + policy.escalation_step)
        candidates.append(earliest_due)
    return min(candidates) if candidates else None


def evaluate(clocks, rung, last_escalated_at, now, policy):
    waiting = unmet(clocks)
    overdue = sorted((c["due_at"], name) for name, c in waiting.items() if c["due_at"] <= now)
    newly_breached = tuple(name for _, name in overdue if waiting[name]["breached_at"] is None)
    step_passed = last_escalated_at is None or now >= last_escalated_at + policy.escalation_step
    escalate = bool(overdue) and rung < TOP_RUNG and step_passed
    reason = overdue[0][1] if escalate else None
    after_clocks = {name: dict(c, breached_at=c["breached_at"] or (now if name in newly_breached else None))
                    for name, c in clocks.items()}
    after_rung = rung + 1 if escalate else rung
    after_last = now if escalate else last_escalated_at
    return Decision(newly_breached, escalate, reason,
                    next_check_at(after_clocks, after_rung, after_last, policy), after_clocks)


def meet(clocks, names, now):
    """Clocks stopped by an action (a response, a resolution); returns new clocks and
    whether each met one was on time."""
    updated, on_time = dict(clocks), {}
    for name in names:
        clock = clocks.get(name)
        if clock and clock["met_at"] is None:
            updated[name] = dict(clock, met_at=now)
            on_time[name] = now <= clock["due_at"]
    return updated, on_time


def rearm_resolution(clocks, now, policy):
    """A fresh resolution clock from `now`: for the duration it was armed with when it
    records one (the clocks module's format, kept whole), else the policy's."""
    old = clocks.get("resolution") or {}
    seconds = old.get("duration_seconds")
    due_at = now + (timedelta(seconds=seconds) if seconds is not None else policy.resolution)
    fresh = dict(old, **_clock(due_at))
    if "started_at" in old:
        lead = old.get("warning_lead_seconds")
        fresh.update(started_at=now, warn_at=due_at - timedelta(seconds=lead) if lead else None,
                     warned_at=None, paused_at=None, paused_seconds=0.0)
    return dict(clocks, resolution=fresh)
