from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from closeloop_shared.leases import Leases
from closeloop_shared.mongo import insert_new
from closeloop_shared.outbox import Outbox
from closeloop_shared.contract import AppointmentStatus, ContactStopped, RevisitTaskStatus
from services.followup.programme import OPEN as OPEN_TASK
from services.followup.revisits import RevisitStatus


class RevisitRepository:
    """followup's `revisits` collection: one revisit per (case, resolution round)."""

    def __init__(self, db):
        self.revisits = db["revisits"]
        self.outbox = Outbox(self.revisits)
        self.leases = Leases(self.revisits)

    @staticmethod
    def ensure_indexes(db):
        revisits = db["revisits"]
        revisits.create_index([("case_id", ASCENDING), ("round", ASCENDING)], unique=True)
        revisits.create_index([("status", ASCENDING), ("due_at", ASCENDING)])
        revisits.create_index([("customer.member_id", ASCENDING), ("status", ASCENDING)])
        # a store's waiting revisits by when they are due, or were first meant to be, for
        # moving them when its open hours change
        revisits.create_index([("store_id", ASCENDING), ("status", ASCENDING), ("due_at", ASCENDING)])
        revisits.create_index([("store_id", ASCENDING), ("status", ASCENDING), ("due_from", ASCENDING)])
        Outbox.ensure_indexes(revisits)

    def insert(self, revisit):
        return insert_new(self.revisits, revisit)

    def get(self, revisit_id):
        return self.revisits.find_one({"_id": revisit_id})

    def for_case(self, case_id):
        return list(self.revisits.find({"case_id": case_id}, {"outbox": 0}).sort("round", ASCENDING))

    def claim_due(self, now, event_for):
        """Move one due revisit to DUE with its followup_due event in its outbox, and
        return that event (None when nothing is due). With several replicas each revisit
        is announced exactly once: a replica leases the revisit (closeloop_shared.leases)
        while it builds the event, and the write that makes it DUE holds only under that
        lease. A replica dying in between leaves a lease that runs out in seconds."""
        claimed = self.leases.claim(
            {"status": RevisitStatus.SCHEDULED.value, "due_at": {"$lte": now}}, now=now)
        if claimed is None:
            return None
        event = event_for(claimed)
        if not self.leases.release(claimed, {
                "$set": {"status": RevisitStatus.DUE.value, "updated_at": now, "outbox_pending": True},
                "$push": {"outbox": event}}, where={"status": RevisitStatus.SCHEDULED.value}):
            # cancelled meanwhile (the case was reopened), or held past its lease and
            # taken over by another replica, which announces it
            self.leases.release(claimed)
            return None
        return event

    def waiting_between(self, store_id, start, end):
        """The store's scheduled revisits due, or first meant to be due (`due_from`),
        from `start` to before `end` (None: ever after); each once."""
        span = {"$gte": start} if end is None else {"$gte": start, "$lt": end}
        found = {}
        for field in ("due_at", "due_from"):
            for revisit in self.revisits.find({"store_id": store_id, "status": RevisitStatus.SCHEDULED.value,
                                               field: span}, {"outbox": 0}):
                found[revisit["_id"]] = revisit
        return list(found.values())

    def move(self, revisit, due_at, now):
        """A scheduled revisit to a new time, unless it changed meanwhile (False)."""
        return self.revisits.update_one(
            {"_id": revisit["_id"], "status": RevisitStatus.SCHEDULED.value, "due_at": revisit["due_at"]},
            {"$set": {"due_at": due_at, "updated_at": now}}).modified_count == 1

    def cancel_open(self, case_id, now):
        """Revisits not yet answered for a case that was reopened: nobody should ask
        the customer about a resolution that no longer stands."""
        return self.revisits.update_many(
            {"case_id": case_id, "status": {"$in": [RevisitStatus.SCHEDULED.value, RevisitStatus.DUE.value]}},
            {"$set": {"status": RevisitStatus.CANCELLED.value, "updated_at": now}}).modified_count

    def cancel_for_member(self, member_id, now):
        """The customer withdrew consent: their revisits not yet answered are not asked."""
        return self.revisits.update_many(
            {"customer.member_id": member_id,
             "status": {"$in": [RevisitStatus.SCHEDULED.value, RevisitStatus.DUE.value]}},
            {"$set": {"status": RevisitStatus.CANCELLED.value, "cancel_reason": ContactStopped.CONSENT_WITHDRAWN.value,
                      "updated_at": now}}).modified_count

    def complete(self, revisit_id, changes, event, now):
        """None if the revisit was already answered or cancelled."""
        return self.revisits.find_one_and_update(
            {"_id": revisit_id, "status": {"$in": [RevisitStatus.SCHEDULED.value, RevisitStatus.DUE.value]}},
            {"$set": dict(changes, updated_at=now, outbox_pending=True), "$push": {"outbox": event}},
            return_document=ReturnDocument.AFTER)


class CustomerRepository:
    """followup's `customers` collection: one profile per member id, with its visit
    history, computed tier, manual override and the override's audit trail."""

    def __init__(self, db):
        self.customers = db["customers"]
        self.outbox = Outbox(self.customers)

    @staticmethod
    def ensure_indexes(db):
        db["customers"].create_index([("home_store_id", ASCENDING)])
        Outbox.ensure_indexes(db["customers"])

    def get(self, member_id):
        return self.customers.find_one({"_id": member_id})

    def upsert_profile(self, profile_document, now):
        """Create or update the profile's fields (history, tier and audit kept)."""
        return self.customers.find_one_and_update(
            {"_id": profile_document["member_id"]},
            {"$set": dict(profile_document, updated_at=now),
             "$setOnInsert": {"visits": [], "visit_ids": [], "override": None, "tier_audit": [],
                              "created_at": now}},
            upsert=True, return_document=ReturnDocument.AFTER)

    def add_visit(self, member_id, visit_id, visit, now):
        """None when this visit was already counted (a redelivery) or the customer is unknown."""
        return self.customers.find_one_and_update(
            {"_id": member_id, "visit_ids": {"$ne": visit_id}},
            {"$push": {"visits": visit, "visit_ids": visit_id}, "$set": {"updated_at": now},
             "$inc": {"history_version": 1}},
            return_document=ReturnDocument.AFTER)

    def set_tier(self, member_id, tier, now, history_version=None):
        """With `history_version`: only if no visit arrived since the tier was computed
        (concurrent visits: the one that saw the whole history writes last). False if not."""
        where = {"_id": member_id}
        if history_version is not None:
            where["history_version"] = history_version
        return self.customers.update_one(where, {"$set": {"tier": tier, "updated_at": now}}).modified_count == 1

    def set_override(self, member_id, override, audit, now):
        return self.customers.find_one_and_update(
            {"_id": member_id}, {"$set": {"override": override, "updated_at": now},
                                 "$push": {"tier_audit": audit}},
            return_document=ReturnDocument.AFTER)

    def set_consent(self, member_id, consent, now, event=None):
        """The profile after the change; `event` (its announcement) goes into the
        profile's outbox by the same write."""
        update = {"$set": {"consent": consent, "consent_changed_at": now, "updated_at": now}}
        if event is not None:
            update["$set"]["outbox_pending"] = True
            update["$push"] = {"outbox": event}
        return self.customers.find_one_and_update({"_id": member_id}, update, return_document=ReturnDocument.AFTER)

    def count_planned(self, member_id):
        """How many cadence revisits were planned for the customer before this one."""
        counted = self.customers.find_one_and_update({"_id": member_id}, {"$inc": {"revisits_planned": 1}},
                                                     {"revisits_planned": 1})
        return (counted or {}).get("revisits_planned", 0)

    def record_survey(self, member_id, at):
        self.customers.update_one({"_id": member_id}, {"$max": {"last_survey_at": at}})


class TaskRepository:
    """followup's `revisit_tasks` collection: every relationship revisit (cadence, care
    after a no-show, ...). The due work of the programme: `due_at` is set while a task
    waits (status scheduled) and read through the (status, due_at) index by the precise
    timers (closeloop_shared.due), which claim each with a lease."""

    def __init__(self, db):
        self.tasks = db["revisit_tasks"]
        self.outbox = Outbox(self.tasks)

    @staticmethod
    def ensure_indexes(db):
        tasks = db["revisit_tasks"]
        tasks.create_index([("status", ASCENDING), ("due_at", ASCENDING)])
        tasks.create_index([("owner_id", ASCENDING), ("status", ASCENDING), ("planned_at", ASCENDING)])
        tasks.create_index([("member_id", ASCENDING), ("status", ASCENDING)])
        tasks.create_index([("store_id", ASCENDING), ("status", ASCENDING)])
        tasks.create_index([("store_id", ASCENDING), ("status", ASCENDING), ("due_at", ASCENDING)])
        Outbox.ensure_indexes(tasks)

    def insert(self, task):
        return insert_new(self.tasks, task)

    def get(self, task_id):
        return self.tasks.find_one({"_id": task_id})

    def open_for(self, member_id):
        return list(self.tasks.find({"member_id": member_id, "status": {"$in": list(OPEN_TASK)}}))

    def due_for_owner(self, owner_id, until):
        """The owner's revisits due by `until` (overdue ones included), earliest first."""
        return list(self.tasks.find({"owner_id": owner_id, "status": RevisitTaskStatus.DUE.value,
                                     "planned_at": {"$lte": until}}, {"outbox": 0}).sort("planned_at", ASCENDING))

    def transition(self, task_id, from_statuses, changes, now, push=None, event=None):
        """Conditional write: only from one of `from_statuses` (a concurrent write loses).
        The task after the write, or None."""
        update = {"$set": dict(changes, updated_at=now)}
        if push:
            update["$push"] = dict(push)
        if event:
            update["$set"]["outbox_pending"] = True
            update.setdefault("$push", {})["outbox"] = event
        return self.tasks.find_one_and_update(
            {"_id": task_id, "status": {"$in": list(from_statuses)}}, update,
            return_document=ReturnDocument.AFTER)

    def scheduled_between(self, store_id, start, end):
        """The store's waiting revisits due from `start` to before `end` (None: ever after)."""
        due = {"$gte": start} if end is None else {"$gte": start, "$lt": end}
        return list(self.tasks.find({"store_id": store_id, "status": RevisitTaskStatus.SCHEDULED.value,
                                     "due_at": due}, {"outbox": 0}))

    def move(self, task, due_at, now):
        """A waiting revisit to a new time, unless it changed meanwhile (False)."""
        return self.tasks.update_one(
            {"_id": task["_id"], "status": RevisitTaskStatus.SCHEDULED.value, "due_at": task["due_at"]},
            {"$set": {"due_at": due_at, "planned_at": due_at, "updated_at": now}}).modified_count == 1

    def cancel_all(self, member_id, reason, now):
        """Every open task of a customer (consent withdrawn): one write."""
        return self.tasks.update_many(
            {"member_id": member_id, "status": {"$in": list(OPEN_TASK)}},
            {"$set": {"status": RevisitTaskStatus.CANCELLED.value, "due_at": None,
                      "cancel_reason": reason, "updated_at": now}}).modified_count

    def status_counts(self, store_ids, statuses):
        """[(store_id, owner_id, status, n)] of the stores (None: all), counted by the server."""
        match = {"status": {"$in": list(statuses)}}
        if store_ids is not None:
            match["store_id"] = {"$in": sorted(store_ids)}
        grouped = self.tasks.aggregate([
            {"$match": match},
            {"$group": {"_id": {"store_id": "$store_id", "owner_id": "$owner_id", "status": "$status"},
                        "n": {"$sum": 1}}}])
        return [(g["_id"]["store_id"], g["_id"]["owner_id"], g["_id"]["status"], g["n"]) for g in grouped]


class AppointmentRepository:
    """followup's `appointments` collection: one document per booking-system appointment,
    with `reminder_at` while its day-before reminder is owed (read by the due timers
    through the (status, reminder_at) index) and its events in an outbox."""

    def __init__(self, db):
        self.appointments = db["appointments"]
        self.outbox = Outbox(self.appointments)

    @staticmethod
    def ensure_indexes(db):
        appointments = db["appointments"]
        appointments.create_index([("status", ASCENDING), ("reminder_at", ASCENDING)])
        appointments.create_index([("store_id", ASCENDING), ("status", ASCENDING), ("reminder_at", ASCENDING)])
        appointments.create_index([("member_id", ASCENDING), ("status", ASCENDING)])
        appointments.create_index([("store_id", ASCENDING), ("starts_at", ASCENDING)])  # a store's day
        Outbox.ensure_indexes(appointments)

    def insert(self, document):
        return insert_new(self.appointments, document)

    def get(self, appointment_id):
        return self.appointments.find_one({"_id": appointment_id})

    def apply_newer(self, appointment_id, version, changes, events, now):
        """Apply a newer version of the appointment (an older or equal one changes
        nothing: None), its events in the outbox by the same write."""
        update = {"$set": dict(changes, updated_at=now)}
        if events:
            update["$set"]["outbox_pending"] = True
            update["$push"] = {"outbox": {"$each": events}}
        return self.appointments.find_one_and_update(
            {"_id": appointment_id, "version": {"$lt": version}}, update, return_document=ReturnDocument.AFTER)

    def add_change_request(self, appointment, request, event, now):
        """Recorded at the version it was checked against (a newer one wins: False)."""
        return self.appointments.update_one(
            {"_id": appointment["_id"], "version": appointment["version"]},
            {"$set": {"updated_at": now, "outbox_pending": True},
             "$push": {"change_requests": request, "outbox": event}}).modified_count == 1

    def starting_between(self, store_id, start, end, limit):
        """The store's appointments starting from `start` to before `end`, earliest first."""
        return list(self.appointments.find({"store_id": store_id, "starts_at": {"$gte": start, "$lt": end}},
                                           {"outbox": 0}).sort("starts_at", ASCENDING).limit(limit))

    def reminders_between(self, store_id, start, end):
        """The store's owed reminders planned from `start` to before `end` (None: ever after)."""
        when = {"$gte": start} if end is None else {"$gte": start, "$lt": end}
        return list(self.appointments.find({"store_id": store_id, "status": AppointmentStatus.BOOKED.value,
                                            "reminder_at": when}, {"outbox": 0}))

    def move_reminder(self, appointment, reminder_at, now):
        """At the version and reminder time it was planned from (else False)."""
        return self.appointments.update_one(
            {"_id": appointment["_id"], "version": appointment["version"],
             "status": AppointmentStatus.BOOKED.value, "reminder_at": appointment["reminder_at"]},
            {"$set": {"reminder_at": reminder_at, "updated_at": now}}).modified_count == 1

    def stop_reminders(self, member_id, reason, now):
        """The customer withdrew consent: no reminder of any of their bookings goes."""
        return self.appointments.update_many(
            {"member_id": member_id, "status": AppointmentStatus.BOOKED.value, "reminder_at": {"$ne": None}},
            {"$set": {"reminder_at": None, "contact_stopped": reason, "updated_at": now}}).modified_count

    def take_reminder(self, appointment, event, now):
        """The reminder is sent once: only while still owed at the version it was built from."""
        return self.appointments.update_one(
            {"_id": appointment["_id"], "version": appointment["version"],
             "status": AppointmentStatus.BOOKED.value, "reminder_at": {"$lte": now}},
            {"$set": {"reminder_at": None, "reminded_at": now, "updated_at": now, "outbox_pending": True},
             "$push": {"outbox": event}}).modified_count == 1


class StoreCalendarRepository:
    """followup's `store_calendars`: its copy of each store's business calendar as
    routing last announced it (store_calendar_changed), one document per store; the
    newest `as_of` wins, a repeat or older announcement changes nothing."""

    def __init__(self, db):
        self.calendars = db["store_calendars"]

    @staticmethod
    def ensure_indexes(db):
        """Read by _id only."""

    def get(self, store_id):
        return self.calendars.find_one({"_id": store_id})

    def replace(self, store_id, announced, as_of, now):
        """(applied, the previous copy or None). Not applied when the copy is as new."""
        try:
            previous = self.calendars.find_one_and_update(
                {"_id": store_id, "as_of": {"$lt": as_of}},
                {"$set": dict(announced, as_of=as_of, updated_at=now)},
                upsert=True, return_document=ReturnDocument.BEFORE)
        except DuplicateKeyError:  # the copy is as new or newer: the upsert met it
            return False, None
        return True, previous
