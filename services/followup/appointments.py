"""Appointments from booking systems: the confirmation, the reminder the day before at a
sensible local hour (never inside quiet hours), a change moving it, a cancellation
removing it, a no-show turning into a care revisit. Pure: no nameko, no pymongo.

The appointment's document carries `reminder_at` while a reminder is owed (status
booked): the precise timers (closeloop_shared.due) read it from an index and one
replica sends it. Messages can arrive out of order or twice: each carries the booking
system's `version`, and an older or equal version changes nothing."""
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from closeloop_shared import events as ev
from closeloop_shared.contract import AppointmentStatus
from closeloop_shared.events import new_event
# the one parser of NOTIFY_QUIET_HOURS (notify holds customer messages inside them)
from closeloop_shared.quiet_hours import QuietHours
from services.followup.opening import OpeningHours, reminder_time


@dataclass(frozen=True)
class ReminderPolicy:
    hour: int                       # store-local hour of the day-before reminder
    quiet_hours: QuietHours | None  # the reminder is planned outside them


def reminder_at(starts_at, tz, policy, now, opening=None):
    """When the day-before reminder goes (UTC): the previous store-local day at the
    policy's hour, moved out of quiet hours and into the store's open hours (its
    calendar as routing announced it: closures, holidays, opening hours); None when that
    moment has passed already (a booking made the evening before: its confirmation is
    the reminder). See opening.reminder_time."""
    return reminder_time(starts_at, policy.hour, policy.quiet_hours,
                         opening or OpeningHours.always_open(tz), now)


def booked(appointment, tz, policy, now, opening=None):
    """The document of a new booking and the confirmation to send."""
    document = {
        "_id": appointment["appointment_id"], "store_id": appointment["store_id"],
        "member_id": appointment["customer"].get("member_id"), "customer": appointment["customer"],
        "service_item": appointment["service_item"], "starts_at": appointment["starts_at"],
        "locale": appointment["locale"], "version": appointment["version"],
        "status": AppointmentStatus.BOOKED.value,
        "reminder_at": reminder_at(appointment["starts_at"], tz, policy, now, opening),
        "created_at": now, "updated_at": now, "outbox_pending": True,
    }
    document["outbox"] = [confirmation(document, now, change=False)]
    return document


def changed(current, appointment, tz, policy, now, opening=None):
    """($set changes, events) for a newer version of a known appointment."""
    status = AppointmentStatus(appointment["status"])
    changes = {"version": appointment["version"], "status": status.value, "customer": appointment["customer"],
               "service_item": appointment["service_item"], "starts_at": appointment["starts_at"]}
    if status is not AppointmentStatus.BOOKED:
        return dict(changes, reminder_at=None), []
    changes["reminder_at"] = reminder_at(appointment["starts_at"], tz, policy, now, opening)
    if appointment["starts_at"] == current["starts_at"]:
        return changes, []  # same time (say, another service item): nothing to tell
    return changes, [confirmation(dict(current, **changes), now, change=True)]


def cancelled(version):
    return {"version": version, "status": AppointmentStatus.CANCELLED.value, "reminder_at": None}


def confirmation(document, now, change):
    return new_event(ev.APPOINTMENT_CONFIRMED, dict(_common(document), confirmed_at=now, change=change))


def same_person(document, phone):
    """The caller proves to be the booking's customer by its phone (both E.164)."""
    return bool(phone) and document["customer"].get("phone") == phone


def change_request(document, store_staff, requested_starts_at, note, actor, now):
    return new_event(ev.APPOINTMENT_CHANGE_REQUESTED, dict(
        _common(document), store_staff=store_staff, requested_starts_at=requested_starts_at, note=note,
        requested_by=actor, requested_at=now))


def reminder(document, now):
    return new_event(ev.APPOINTMENT_REMINDER_DUE, dict(_common(document), reminded_at=now))


def _common(document):
    return {"case_id": document["_id"], "appointment_id": document["_id"], "store_id": document["store_id"],
            "customer": document["customer"], "service_item": document["service_item"],
            "starts_at": document["starts_at"], "locale": document["locale"]}


def no_show_revisit_day(starts_at, tz):
    """The store-local day a no-show's care revisit is due: the next day."""
    return starts_at.astimezone(ZoneInfo(tz)).date() + timedelta(days=1)
