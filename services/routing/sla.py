"""The clock side of case actions: the only way the lifecycle touches a case's SLA
clocks. Pure: case documents hold the clocks as services/routing/clocks.py stores them
({name: Clock.to_doc()}); these functions take and return those documents, with the
store's business calendar where time must be counted (a business clock moves by open
time, a wall clock by wall time)."""
from services.routing import clocks
from closeloop_shared.contract import ClockName

# The written report of a referral is owed to the consumer association or the media and
# to the general manager, not to the customer: waiting on the customer does not pause it.
NOT_PAUSED_BY_THE_CUSTOMER = (ClockName.REPORT.value,)


def deadlines(doc):
    """{first_response_due: .., ...} as events and the case view carry them."""
    return {f"{name}_due": clock["due_at"] for name, clock in doc.items()}


def pause(doc, now):
    """The case waits on the customer: its customer-facing clocks stop counting."""
    clock_set = clocks.from_doc(doc)
    waiting = {name: c for name, c in clock_set.items() if name not in NOT_PAUSED_BY_THE_CUSTOMER}
    return clocks.to_doc({**clock_set, **clocks.pause(waiting, now)})


def resume(doc, now, calendar):
    """The customer answered: each paused clock's deadline moves by the paused time."""
    return clocks.to_doc(clocks.resume(clocks.from_doc(doc), now, calendar))


def stop(doc, now):
    """A merged case: every clock still owed stops for good (neither met nor breached)."""
    return clocks.to_doc(clocks.stop(clocks.from_doc(doc), now))


def is_paused(doc):
    return clocks.is_paused(clocks.from_doc(doc))


def meet(doc, names, now):
    """(clocks, {name: on_time}) for the named running clocks met by an action now."""
    met, on_time = clocks.meet(clocks.from_doc(doc), names, now)
    return clocks.to_doc(met), on_time


def rearm(doc, names, now, calendar):
    """The named clocks the case has started afresh now, with the spec and policy they
    were armed with: the resolution clock on reopening, the keep-in-loop update clock
    after each customer-facing response."""
    clock_set = clocks.from_doc(doc)
    for name in names:
        if name in clock_set:
            clock_set = clocks.rearm(clock_set, name, now, None, calendar)
    return clocks.to_doc(clock_set)
