"""Satisfaction revisits. Pure: no nameko, no pymongo."""
import uuid
from datetime import timedelta
from enum import Enum

from closeloop_shared import events as ev
from closeloop_shared.access import contact_view
from closeloop_shared.events import new_event

SATISFIED_FROM = 4   # 4-5: satisfied (counts toward the 95% target)
REOPEN_UP_TO = 2     # 1-2: dissatisfied, the case is reopened


class RevisitStatus(str, Enum):
    SCHEDULED = "scheduled"
    DUE = "due"
    COMPLETED = "completed"
    CANCELLED = "cancelled"   # the case was reopened before the customer was asked


def surveyor(resolved, candidates):
    """Who makes the satisfaction revisit: the store's revisit owner, unless they resolved
    the case themselves (nobody rates their own work), then the first of `candidates`
    (StaffMember dicts) who did not."""
    handler = resolved.get("resolved_by")
    for person in (resolved["revisit_owner"], *candidates):
        if person["staff_id"] != handler:
            return person
    return resolved["revisit_owner"]  # a one-person store: better asked by them than never


def schedule(resolved, owner, delay_seconds, opening, now):
    """The revisit of a resolution round; a round after a reopening is a recovery
    re-survey (the customer was unhappy once: asked again once it is put right). Due
    `delay_seconds` after the resolution (`due_from`), or when the store next opens
    after that (`opening`): whoever calls the customer is at work then."""
    due_from = resolved["resolved_at"] + timedelta(seconds=float(delay_seconds))
    return {
        "_id": uuid.uuid4().hex,
        "case_id": resolved["case_id"],
        "case_number": resolved["case_number"],
        "round": resolved["resolution_round"],
        "store_id": resolved["store_id"],
        "owner": owner,
        "recovery": resolved["resolution_round"] > 1,
        "customer": resolved["customer"],
        "locale": resolved["locale"],
        "remedy": resolved["remedy"],
        "resolved_at": resolved["resolved_at"],
        "due_from": due_from,
        "due_at": opening.first_open(due_from),
        "status": RevisitStatus.SCHEDULED.value,
        "scheduled_at": now,
        "updated_at": now,
        "outbox": [],
        "outbox_pending": False,
    }


def due_event(revisit):
    return new_event(ev.FOLLOWUP_DUE, {
        "revisit_id": revisit["_id"], "round": revisit["round"], "case_id": revisit["case_id"],
        "case_number": revisit["case_number"], "store_id": revisit["store_id"],
        "owner": revisit["owner"], "customer": revisit["customer"],
        "due_at": revisit["due_at"], "locale": revisit["locale"]})


def outcome(revisit, score, comment, actor, now):
    """The fields to set and the event to publish when the customer has answered."""
    satisfied, reopens = score >= SATISFIED_FROM, score <= REOPEN_UP_TO
    changes = {"status": RevisitStatus.COMPLETED.value, "score": score, "comment": comment,
               "satisfied": satisfied, "recorded_by": actor, "completed_at": now}
    return changes, new_event(ev.REVISIT_RECORDED, {
        "revisit_id": revisit["_id"], "round": revisit["round"], "case_id": revisit["case_id"],
        "case_number": revisit["case_number"], "store_id": revisit["store_id"], "score": score, "satisfied": satisfied,
        "reopens_case": reopens, "comment": comment, "recorded_at": now})


def view(revisit, principal):
    """What GET /v1/revisits shows of a revisit, the customer's contact masked for roles
    that do not call customers."""
    hidden = {"_id", "outbox", "outbox_pending"}
    shown = {"revisit_id": revisit["_id"], **{k: v for k, v in revisit.items() if k not in hidden}}
    shown["customer"] = contact_view(revisit["customer"], principal)
    return shown
