"""Use cases of the relationship revisit programme and of appointments: plain functions
over followup's repositories (customers, revisit_tasks, appointments) and the
organisation; service.py calls them.

Every write that causes an event puts it in the task's outbox in the same update;
the caller flushes it (closeloop_shared.outbox)."""
import json
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from closeloop_shared import config as keys
from closeloop_shared import contacts
from closeloop_shared import events as ev
from closeloop_shared.access import contact_view
from closeloop_shared.config import setting
from closeloop_shared.contract import (
    AppointmentStatus, ContactStopped, CustomerTier, RevisitPurpose, RevisitTaskStatus, Role)
from closeloop_shared.events import new_event
from services.followup import appointments as appointments_domain
from services.followup import programme, revisits as revisits_domain, tiers
from services.followup import opening as opening_domain
from services.followup.opening import OpeningHours
from services.followup.profiles import MAX_IMPORT_ROWS, ContactHours, Profile, import_rows, read_csv
from closeloop_shared.quiet_hours import QuietHours

@dataclass(frozen=True)
class Settings:
    cadence: programme.Cadence
    rules: tiers.TierRules
    attempts: programme.AttemptPolicy
    survey_window: timedelta

    @classmethod
    def from_config(cls, config):
        def structured(key):
            value = setting(config, key)
            return json.loads(value) if isinstance(value, str) else value
        return cls(programme.Cadence.from_config(structured(keys.FOLLOWUP_CADENCE_MONTHS)),
                   tiers.TierRules.from_config(structured(keys.FOLLOWUP_TIER_RULES)),
                   programme.AttemptPolicy(max_attempts=int(setting(config, keys.FOLLOWUP_MAX_ATTEMPTS))),
                   timedelta(seconds=float(setting(config, keys.FOLLOWUP_SURVEY_WINDOW_SECONDS))))


class Refused(Exception):
    """A request the programme cannot do: (status, code, message, fields)."""

    def __init__(self, status, code, message, fields=None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}


def survey_candidates(org, store_id):
    """Who else may make a satisfaction revisit of the store: its supervisors and manager,
    then the brand's customer service (StaffMember dicts, in that order)."""
    brand_id = org.brand_of_store(store_id)
    people = [*org.all_active(Role.SUPERVISOR, store_id=store_id), *org.all_active(Role.STORE_MANAGER, store_id=store_id),
              *org.all_active(Role.CUSTOMER_SERVICE, brand_id=brand_id)]
    return [p.as_dict() for p in people]


def case_resolved(revisits, customers, org, calendars, resolved, delay_seconds, now):
    """Schedule the satisfaction revisit of a resolution round, inside the store's open
    hours; a customer who withdrew consent gets one too, kept visibly cancelled (not
    asked). The revisit, or None if this round has one already (a redelivery)."""
    owner = revisits_domain.surveyor(resolved, survey_candidates(org, resolved["store_id"]))
    revisit = revisits_domain.schedule(resolved, owner, delay_seconds,
                                       opening_of(calendars, org, resolved["store_id"]), now)
    member_id = resolved["customer"].get("member_id")
    profile = customers.get(member_id) if member_id else None
    if profile is not None and not profile.get("consent"):
        revisit.update(status=revisits_domain.RevisitStatus.CANCELLED.value,
                       cancel_reason=ContactStopped.CONSENT_WITHDRAWN.value)
    if not revisits.insert(revisit):
        return None
    if member_id:  # it is the customer's survey of the window: a programme's survey waits its turn
        customers.record_survey(member_id, revisit["due_at"])
    return revisit


def tier_of(document, settings, now):
    visits = [tiers.Visit(v["at"], v["spend_fen"]) for v in document.get("visits") or ()]
    computed = tiers.computed_tier(visits, document.get("special_needs") or (), settings.rules, now)
    override = document.get("override")
    return tiers.effective_tier(computed, override and tiers.Override(
        CustomerTier(override["tier"]), override["by"], override["reason"], override["at"]))


def _timezone(org, store_id):
    return org.stores[store_id].timezone


def opening_of(calendars, org, store_id):
    """The store's open hours as routing last announced them (followup's own copy); a
    store not announced yet counts as open all day in its time zone."""
    document = calendars.get(store_id)
    if document is None:
        return OpeningHours.always_open(_timezone(org, store_id))
    return OpeningHours.from_announcement(document)


def plan_next(customers, tasks, org, calendars, settings, document, now, previous=None):
    """Schedule the customer's next cadence revisit (one open cadence revisit at a time),
    unless consent is missing or one is already open. The task, or None."""
    if not document.get("consent"):
        return None
    if tasks.open_for(document["_id"]):
        return None
    profile = Profile.from_document(document)
    tier = tier_of(document, settings, now)
    tz = _timezone(org, profile.home_store_id)
    day = settings.cadence.next_after(now.astimezone(ZoneInfo(tz)).date(), tier,
                                      org.brand_of_store(profile.home_store_id))
    owner = org.revisit_owner(profile.home_store_id).as_dict()
    purpose = programme.purpose_for(customers.count_planned(profile.member_id), tier)
    opening = opening_of(calendars, org, profile.home_store_id)
    task = programme.new_task(profile, tier, owner, purpose,
                              programme.slot(day, profile.contact_hours, 0, tz, opening), now)
    if previous is not None:  # one successor per revisit, however often its ending is handled
        task["_id"] = f"after:{previous['_id']}"
    return task if tasks.insert(task) else None


def import_customers(customers, tasks, org, calendars, settings, rows, stores, now):
    """Profiles from import rows (home stores among `stores`, the caller's); the report of
    rejected rows; for each accepted customer with consent, the tier recomputed and the
    next revisit planned (without consent, every open revisit cancelled)."""
    report = import_rows(rows, stores, now)
    for profile in report.accepted:
        document = customers.upsert_profile(profile.to_document(), now)
        customers.set_tier(profile.member_id, tier_of(document, settings, now).value, now)
        if not profile.consent:
            tasks.cancel_all(profile.member_id, CONSENT_WITHDRAWN, now)
        else:
            plan_next(customers, tasks, org, calendars, settings, document, now)
    return report


def import_rows_of(body, content_type, json_body):
    """The rows of an import: a CSV file, or JSON {"customers": [...]} (already parsed)."""
    if content_type == "text/csv":
        try:
            rows = read_csv(body)
        except ValueError as exc:
            raise Refused(400, "malformed_csv", str(exc)[:300]) from None
    else:
        rows = json_body.get("customers")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise Refused(422, "validation_failed", "a list of customer objects is required",
                          {"customers": ["a list of objects"]})
    if len(rows) > MAX_IMPORT_ROWS:
        raise Refused(413, "payload_too_large", f"at most {MAX_IMPORT_ROWS} customers per import")
    return rows


def record_visit(customers, tasks, org, calendars, settings, visit, now):
    """A visit another system reports (visit.completed): history, tier recomputed.
    False when the customer is unknown or the visit was already counted."""
    document = customers.add_visit(visit["member_id"], visit["visit_id"],
                                   {"at": visit["visited_at"], "spend_fen": visit["spend_fen"],
                                    "store_id": visit["store_id"]}, now)
    if document is None:
        return False
    retier(customers, tasks, org, calendars, settings, document, tier_of(document, settings, now), now)
    return True


def retier(customers, tasks, org, calendars, settings, document, tier, now):
    """Store a customer's tier; when it changed, their waiting cadence revisit (not yet
    attempted) moves to the new tier's cadence, counted from when it was planned."""
    written = customers.set_tier(document["_id"], tier.value, now, document.get("history_version"))
    if not written or document.get("tier") == tier.value:
        return
    tz = _timezone(org, document["home_store_id"])
    opening = opening_of(calendars, org, document["home_store_id"])
    hours = Profile.from_document(document).contact_hours
    for task in tasks.open_for(document["_id"]):
        if task["status"] != RevisitTaskStatus.SCHEDULED.value or task["attempts"] or task.get("appointment_id"):
            continue
        day = settings.cadence.next_after(task["created_at"].astimezone(ZoneInfo(tz)).date(), tier,
                                          org.brand_of_store(document["home_store_id"]))
        due_at = programme.slot(day, hours, 0, tz, opening)
        tasks.transition(task["_id"], (RevisitTaskStatus.SCHEDULED.value,),
                         {"tier": tier.value, "due_at": due_at, "planned_at": due_at}, now)


def override_tier(customers, tasks, org, calendars, member_id, tier, reason, actor, settings, now):
    document = customers.get(member_id)
    if document is None:
        raise Refused(404, "customer_not_found", f"no customer {member_id}")
    previous = tier_of(document, settings, now)
    override = tiers.Override(CustomerTier(tier), actor, reason, now)
    stored = {"tier": override.tier.value, "by": actor, "reason": reason, "at": now}
    updated = customers.set_override(member_id, stored, tiers.audit_entry(previous, override), now)
    retier(customers, tasks, org, calendars, settings, document, override.tier, now)
    return dict(updated, tier=override.tier.value)


def withdraw_consent(customers, tasks, revisits, appointments, member_id, now):
    """Consent withdrawn: every programme stops at once: the tiered programme's revisits,
    the satisfaction revisits of their cases, and the reminders of their appointments
    (later bookings and changes are kept, neither confirmed nor reminded); and
    customer_consent_withdrawn, so that notify never sends what it still holds for them
    (a reminder deferred by quiet hours, a retry). (revisits cancelled, reminders
    stopped, the event: in the profile's outbox, to flush)."""
    document = customers.get(member_id)
    if document is None:
        raise Refused(404, "customer_not_found", f"no customer {member_id}")
    event = new_event(ev.CUSTOMER_CONSENT_WITHDRAWN, {
        "member_id": member_id, "customer_keys": contacts.handle_digests(document), "withdrawn_at": now})
    customers.set_consent(member_id, False, now, event)
    cancelled = tasks.cancel_all(member_id, CONSENT_WITHDRAWN, now) + revisits.cancel_for_member(member_id, now)
    return cancelled, appointments.stop_reminders(member_id, CONSENT_WITHDRAWN, now), event


def may_contact(customers, member_id):
    """Whether a booking's customer may be told anything: yes unless they are a known
    customer who withdrew consent (a booking of someone never imported is confirmed)."""
    profile = customers.get(member_id) if member_id else None
    return profile is None or bool(profile.get("consent"))


def make_due(customers, tasks, settings, task_id, now):
    """A scheduled task's time has come (the precise timer's claim): it goes on its
    owner's list, unless consent was withdrawn meanwhile or it is a survey within the
    window of another one (throttled: never asked twice)."""
    task = tasks.get(task_id)
    if task is None or task["status"] != RevisitTaskStatus.SCHEDULED.value:
        return None
    customer = customers.get(task["member_id"])
    scheduled = (RevisitTaskStatus.SCHEDULED.value,)
    if customer and not customer.get("consent"):  # no profile: a no-show's care revisit
        return tasks.transition(task_id, scheduled, {"status": RevisitTaskStatus.CANCELLED.value,
                                                     "due_at": None, "cancel_reason": CONSENT_WITHDRAWN}, now)
    if programme.is_survey(task["purpose"]) and not task["attempts"] and not programme.survey_allowed(
            (customer or {}).get("last_survey_at"), now, settings.survey_window):
        return tasks.transition(task_id, scheduled, {"status": RevisitTaskStatus.THROTTLED.value,
                                                     "due_at": None}, now)
    return tasks.transition(task_id, scheduled, {"status": RevisitTaskStatus.DUE.value, "due_at": None}, now)


def _owned(task, scope):
    if task is None or not scope.allows(task["store_id"]):
        raise Refused(404, "revisit_task_not_found", "no such revisit task")
    return task


def record_attempt(customers, tasks, org, calendars, settings, task_id, attempt, principal, scope, now):
    """An attempt to reach the customer. Unreached: retried the next day at another hour,
    or recorded unreachable once the attempts are spent (an outcome for the completion
    rate). Reached: the outcome is recorded, a complaint voiced opens a case through
    intake, and the next cadence revisit is planned."""
    task = _owned(tasks.get(task_id), scope)
    if task["status"] != RevisitTaskStatus.DUE.value:
        raise Refused(409, "revisit_task_not_due", f"this revisit is {task['status']}")
    entry = {"at": now, "by": principal.actor, "reached": attempt["reached"], "note": attempt["note"]}
    if not attempt["reached"]:
        document = customers.get(task["member_id"]) or {}
        hours = Profile.from_document(document).contact_hours if document else ContactHours()
        result = programme.after_unreached(len(task["attempts"]) + 1, hours,
                                           _timezone(org, task["store_id"]), now, settings.attempts,
                                           opening_of(calendars, org, task["store_id"]))
        if result.status is RevisitTaskStatus.UNREACHABLE:
            event = completed_event(task, RevisitTaskStatus.UNREACHABLE, None, now)
            updated = tasks.transition(task_id, (RevisitTaskStatus.DUE.value,), {
                "status": result.status.value, "completed_at": now}, now, push={"attempts": entry}, event=event)
            if updated and document:
                plan_next(customers, tasks, org, calendars, settings, document, now, previous=task)
            return updated, [event] if updated else []
        updated = tasks.transition(task_id, (RevisitTaskStatus.DUE.value,), {
            "status": RevisitTaskStatus.SCHEDULED.value, "due_at": result.due_at, "planned_at": result.due_at},
            now, push={"attempts": entry})
        return updated, []
    outcome = {"score": attempt.get("score"), "notes": attempt["note"], "next_step": attempt.get("next_step"),
               "complaint": attempt.get("complaint")}
    event = completed_event(task, RevisitTaskStatus.COMPLETED, outcome, now)
    pending = [event]
    if attempt.get("complaint"):
        pending.append(new_event(ev.REVISIT_COMPLAINT_VOICED, {
            "task_id": task["_id"], "store_id": task["store_id"], "customer": task["customer"],
            "content": attempt["complaint"], "voiced_at": now, "voiced_by": principal.subject,
            "category": attempt.get("complaint_category")}))
    changes = {"status": RevisitTaskStatus.COMPLETED.value, "outcome": outcome, "completed_at": now}
    updated = tasks.transition(task_id, (RevisitTaskStatus.DUE.value,), changes, now,
                               push={"attempts": entry}, event=event)
    if updated is None:
        raise Refused(409, "revisit_task_not_due", "this revisit was recorded meanwhile")
    if len(pending) > 1:  # the complaint in the outbox too (a second write: $push takes one entry here)
        tasks.transition(task_id, (RevisitTaskStatus.COMPLETED.value,), {}, now, event=pending[1])
    if attempt.get("score") is not None:
        customers.record_survey(task["member_id"], now)
    document = customers.get(task["member_id"])
    if document:
        plan_next(customers, tasks, org, calendars, settings, document, now, previous=task)
    return updated, pending


def reschedule(tasks, org, task_id, to, principal, scope, now):
    task = _owned(tasks.get(task_id), scope)
    if task["status"] not in programme.OPEN:
        raise Refused(409, "revisit_task_closed", f"this revisit is {task['status']}")
    if to <= now:
        raise Refused(422, "invalid", "the new time must be in the future", {"due_at": ["must be in the future"]})
    return tasks.transition(task_id, programme.OPEN, {
        "status": RevisitTaskStatus.SCHEDULED.value, "due_at": to, "planned_at": to,
        "rescheduled_by": principal.actor}, now)


def due_today(tasks, org, principal, now):
    """The caller's revisits due by the end of today (their store's day), overdue included."""
    tz = _timezone(org, principal.store_id) if principal.store_id in org.stores else "Asia/Shanghai"
    _, end = programme.local_day_bounds(now.astimezone(ZoneInfo(tz)).date(), tz)
    return tasks.due_for_owner(principal.subject, end)


def completed_event(task, status, outcome, now):
    return new_event(ev.REVISIT_TASK_COMPLETED, {
        "task_id": task["_id"], "store_id": task["store_id"], "owner_id": task["owner_id"],
        "tier": task["tier"], "purpose": task["purpose"], "status": status.value,
        "attempts": len(task["attempts"]) + 1, "score": (outcome or {}).get("score"),
        "complaint": bool((outcome or {}).get("complaint")), "planned_at": task["planned_at"],
        "completed_at": now})


def completion_rates(tasks, scope):
    return [dict(store_id=c.store_id, owner_id=c.owner_id, due=c.due, completed=c.completed,
                 unreachable=c.unreachable, rate=c.rate)
            for c in programme.completion(tasks.status_counts(scope.stores, programme.COUNTED))]


# -- appointments (services/followup/appointments.py) ---------------------------------------

CONSENT_WITHDRAWN = ContactStopped.CONSENT_WITHDRAWN.value


class BadMessage(Exception):
    """A well-formed booking message that can never be processed (dead-lettered)."""


def reminder_policy(config):
    return appointments_domain.ReminderPolicy(int(setting(config, keys.FOLLOWUP_REMINDER_HOUR)),
                                              QuietHours.parse(setting(config, keys.NOTIFY_QUIET_HOURS)))


def appointment_booked(appointments, customers, tasks, org, calendars, policy, appointment, now):
    """A new booking: stored with its reminder time, its confirmation in the outbox. The
    events to flush."""
    if appointment["store_id"] not in org.stores:
        raise BadMessage(f"unknown store {appointment['store_id']}")
    existing = appointments.get(appointment["appointment_id"])
    if existing is None:
        if appointment["starts_at"] <= now:
            raise BadMessage("starts_at has passed: nothing to confirm or remind")
        document = appointments_domain.booked(appointment, _timezone(org, appointment["store_id"]), policy, now,
                                              opening_of(calendars, org, appointment["store_id"]))
        if not may_contact(customers, document["member_id"]):  # kept, visibly not told
            document.update(reminder_at=None, outbox=[], outbox_pending=False, contact_stopped=CONSENT_WITHDRAWN)
        if appointments.insert(document):
            return document["outbox"]
        existing = appointments.get(appointment["appointment_id"])  # another replica was first
    return _newer(appointments, customers, tasks, org, calendars, policy, existing, appointment, now)


def appointment_changed(appointments, customers, tasks, org, calendars, policy, appointment, now):
    """A new time moves the reminder (and is confirmed); no_show makes a care revisit."""
    existing = appointments.get(appointment["appointment_id"])
    if existing is None:
        if appointment["status"] != AppointmentStatus.BOOKED.value:
            raise BadMessage("change of an unknown appointment")
        return appointment_booked(appointments, customers, tasks, org, calendars, policy, appointment, now)
    return _newer(appointments, customers, tasks, org, calendars, policy, existing, appointment, now)


def _newer(appointments, customers, tasks, org, calendars, policy, existing, appointment, now):
    if appointment["version"] <= existing["version"]:
        return []  # a repeat, or older news
    changes, events = appointments_domain.changed(existing, appointment, _timezone(org, existing["store_id"]),
                                                  policy, now, opening_of(calendars, org, existing["store_id"]))
    if not may_contact(customers, existing.get("member_id")):
        changes, events = dict(changes, reminder_at=None, contact_stopped=CONSENT_WITHDRAWN), []
    updated = appointments.apply_newer(existing["_id"], appointment["version"], changes, events, now)
    if updated is None:
        return []
    if updated["status"] == AppointmentStatus.NO_SHOW.value:
        no_show_revisit(customers, tasks, org, calendars, updated, now)
    return events


def appointment_cancelled(appointments, cancellation, now):
    """The reminder is removed. A cancellation arriving before its booking leaves a
    cancelled record, so the late booking (an older version) is never reminded."""
    changes = appointments_domain.cancelled(cancellation["version"])
    if appointments.apply_newer(cancellation["appointment_id"], cancellation["version"], changes, [], now):
        return True
    return appointments.insert(dict(changes, _id=cancellation["appointment_id"], created_at=now, updated_at=now,
                                    outbox=[], outbox_pending=False))


def appointment_reminder(appointments, customers, appointment_id, now):
    """The reminder's time came (the due timer's claim): its event, once, or None (also
    when the customer withdrew consent meanwhile: the reminder is dropped)."""
    document = appointments.get(appointment_id)
    if document is None or document.get("reminder_at") is None:
        return None
    if not may_contact(customers, document.get("member_id")):
        appointments.stop_reminders(document["member_id"], CONSENT_WITHDRAWN, now)
        return None
    event = appointments_domain.reminder(document, now)
    return event if appointments.take_reminder(document, event, now) else None


APPOINTMENTS_LISTED = 500  # a store's day holds far fewer; a bound all the same


def appointments_of_day(appointments, org, store_id, day, principal, scope, now):
    """(store id, day, its appointments) of one of the caller's stores (default: their
    own) on a store-local day (default: today there), earliest first, cancelled ones
    included (their status says so)."""
    store_id = store_id or principal.store_id
    if not store_id:
        raise Refused(422, "validation_failed", "store_id is required for a caller of several stores",
                      {"store_id": ["Missing data for required field."]})
    if store_id not in org.stores or not scope.covers(store_id):
        raise Refused(404, "store_not_found", f"no store {store_id}")
    tz = _timezone(org, store_id)
    day = day or now.astimezone(ZoneInfo(tz)).date()
    start, end = programme.local_day_bounds(day, tz)
    return store_id, day, appointments.starting_between(store_id, start, end, APPOINTMENTS_LISTED)


def appointment_view(document, principal):
    """What the front desk sees of an appointment: the customer's name, and their phone
    and e-mail as the role may see them (closeloop_shared.access.contact_view); whether
    the day-before reminder went; a change the customer asked for."""
    customer = document.get("customer") or {}
    contact = {"name": customer.get("name"), "phone": customer.get("phone"), "email": customer.get("email"),
               "member_id": customer.get("member_id")}
    asked = document.get("change_requests") or ()
    return {"appointment_id": document["_id"], "store_id": document["store_id"],
            "starts_at": document["starts_at"], "service_item": document.get("service_item"),
            "status": document["status"], "customer": contact_view(contact, principal),
            "reminder_sent": document.get("reminded_at") is not None, "reminded_at": document.get("reminded_at"),
            "reminder_at": document.get("reminder_at"), "contact_stopped": document.get("contact_stopped"),
            "change_requested_to": asked[-1]["starts_at"] if asked else None}


def request_change(appointments, org, appointment_id, request, principal, scope, now):
    """A change the customer asks us for: only for the booking's own customer (its phone),
    only of a booked appointment; recorded, and the store and the booking system told."""
    document = appointments.get(appointment_id)
    if document is None or document.get("store_id") is None or not scope.allows(document["store_id"]):
        raise Refused(404, "appointment_not_found", f"no appointment {appointment_id}")
    if document["status"] != AppointmentStatus.BOOKED.value:
        raise Refused(409, "appointment_not_booked", f"this appointment is {document['status']}")
    if not appointments_domain.same_person(document, request["phone"]):
        raise Refused(422, "identity_mismatch", "the phone is not the booking's",
                      {"phone": ["not the phone of this booking"]})
    if request["starts_at"] <= now:
        raise Refused(422, "validation_failed", "the new time must be in the future",
                      {"starts_at": ["must be in the future"]})
    store_id = document["store_id"]
    told = org.first_active(Role.STORE_MANAGER, store_id=store_id) or org.revisit_owner(store_id)
    event = appointments_domain.change_request(document, told.as_dict(), request["starts_at"], request["note"],
                                               principal.actor, now)
    if not appointments.add_change_request(document, {"starts_at": request["starts_at"], "by": principal.actor,
                                                      "at": now}, event, now):
        raise Refused(409, "concurrent_update", "the appointment changed meanwhile; try again")
    return event


def no_show_revisit(customers, tasks, org, calendars, appointment, now):
    """A care revisit the day after a missed appointment (once per appointment), by the
    store's revisit owner; not when the customer withdrew consent."""
    profile_document = customers.get(appointment["member_id"]) if appointment.get("member_id") else None
    if profile_document is not None and not profile_document.get("consent"):
        return None
    contact = appointment["customer"]
    profile = Profile.from_document(profile_document) if profile_document else Profile(
        member_id=contact.get("member_id") or f"appointment:{appointment['_id']}", name=contact["name"],
        phone=contact.get("phone"), home_store_id=appointment["store_id"], consent=True,
        preferred_channel=contact.get("preferred_channel"), wechat_openid=contact.get("wechat_openid"))
    tz = _timezone(org, appointment["store_id"])
    day = appointments_domain.no_show_revisit_day(appointment["starts_at"], tz)
    owner = org.revisit_owner(appointment["store_id"]).as_dict()
    tier = CustomerTier(profile_document["tier"]) if profile_document and profile_document.get("tier") \
        else CustomerTier.POTENTIAL
    task = programme.new_task(profile, tier, owner, RevisitPurpose.CARE,
                              programme.slot(day, profile.contact_hours, 0, tz,
                                             opening_of(calendars, org, appointment["store_id"])), now)
    task["_id"], task["appointment_id"] = f"no-show:{appointment['_id']}", appointment["_id"]
    tasks.insert(task)
    return task


# -- store calendars (routing's, announced by store_calendar_changed) ---------------------

def store_calendar_changed(calendars, customers, tasks, revisits, appointments, org, policy, announced, now):
    """routing announced a store's calendar: on the days whose open hours changed against
    followup's copy, the store's waiting revisit calls (programme and satisfaction) and
    owed reminders move to open time (a time a person chose by rescheduling stays); then
    the copy is replaced if this is newer. Moves first: a handler that fails part-way
    leaves the copy as it was, so the redelivery computes the same changes and finishes
    them (each move is conditional). (calls moved, reminders moved); (0, 0) for a repeat
    or older news."""
    store_id = announced["store_id"]
    stored = {"timezone": announced["timezone"], "weekly": announced["weekly"],
              "horizon_from": announced["horizon_from"].isoformat(), "horizon_to": announced["horizon_to"].isoformat(),
              "exceptions": [{"date": e["date"].isoformat(), "slots": e["slots"]} for e in announced["exceptions"]],
              "event_id": announced["event_id"]}
    previous = calendars.get(store_id)
    if previous is not None and previous["as_of"] >= announced["as_of"]:
        return 0, 0
    moved = _move_into_open_hours(customers, tasks, revisits, appointments, policy, store_id, previous, stored, now) \
        if store_id in org.stores else (0, 0)
    calendars.replace(store_id, stored, announced["as_of"], now)
    return moved


def _move_into_open_hours(customers, tasks, revisits, appointments, policy, store_id, previous, stored, now):
    new = OpeningHours.from_announcement(stored)
    old = OpeningHours.from_announcement(previous) if previous and previous.get("weekly") else None
    calls = reminders = 0
    for first, last in opening_domain.changed_spans(old, new, now.astimezone(new.zone).date()):
        start = new.instant(first, 0)
        end = None if last is None else new.instant(last + timedelta(days=1), 0)
        for task in tasks.scheduled_between(store_id, max(start, now), end):
            if task.get("rescheduled_by"):
                continue
            profile = customers.get(task["member_id"])
            hours = Profile.from_document(profile).contact_hours if profile else ContactHours()
            due_at = programme.slot(task["due_at"].astimezone(new.zone).date(), hours, len(task["attempts"]),
                                    new.timezone, new)
            calls += due_at != task["due_at"] and tasks.move(task, due_at, now)
        for revisit in revisits.waiting_between(store_id, max(start, now), end):
            due_at = new.first_open(max(revisit.get("due_from", revisit["due_at"]), now))
            if due_at != revisit["due_at"] and revisits.move(revisit, due_at, now):
                calls += 1
                if revisit["customer"].get("member_id"):  # the programme spaces its surveys from it
                    customers.record_survey(revisit["customer"]["member_id"], due_at)
        for appointment in appointments.reminders_between(store_id, max(start, now), end):
            at = appointments_domain.reminder_at(appointment["starts_at"], new.timezone, policy, now, new)
            reminders += at != appointment["reminder_at"] and appointments.move_reminder(appointment, at, now)
    return calls, reminders
