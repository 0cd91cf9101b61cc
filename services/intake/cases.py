"""Turning an accepted submission into a case: its number, its dedupe key, its event.
Pure: no nameko, no pymongo."""
import json
import uuid

from closeloop_shared.clock import CHINA
from closeloop_shared.contract import Channel, PrincipalKind
from closeloop_shared.events import CASE_SUBMITTED
from closeloop_shared.events import new_event

CASE_NUMBER_PREFIX = "CL"


def case_number(submitted_at, sequence):
    """CL-20261124-000042: the China-local day and that day's running number, so staff
    can read a case's age off its number and say it over the phone."""
    day = submitted_at.astimezone(CHINA).strftime("%Y%m%d")
    return f"{CASE_NUMBER_PREFIX}-{day}-{sequence:06d}"


def sequence_name(submitted_at):
    return "case_number:" + submitted_at.astimezone(CHINA).strftime("%Y%m%d")


def submitter(principal=None, bus_publisher=None):
    """Who handed the feedback in, as case_submitted carries it: an integration by its
    client id (by key over HTTP, or mapped from its AMQP user on the bus), a staff
    member, or a trusted bus publisher known only by its AMQP user."""
    if principal is not None and principal.kind is PrincipalKind.INTEGRATION:
        return {"kind": PrincipalKind.INTEGRATION.value, "client_id": principal.subject, "staff_id": None}
    if principal is not None:
        return staff_submitter(principal.subject)
    return {"kind": PrincipalKind.INTEGRATION.value, "client_id": f"bus:{bus_publisher}", "staff_id": None}


def staff_submitter(staff_id):
    return {"kind": PrincipalKind.STAFF.value, "client_id": None, "staff_id": staff_id}


def revisit_feedback(voiced):
    """The feedback a revisit_complaint_voiced payload (as published) stands for, in
    POST /v1/feedback's shape."""
    contact = {k: v for k, v in voiced["customer"].items() if v is not None}
    return {"store_id": voiced["store_id"], "channel": Channel.SURVEY.value, "customer": contact,
            "content": voiced["content"], "occurred_at": voiced["voiced_at"],
            "external_ref": {"source": "revisit", "id": voiced["task_id"]},
            # the revisit may say what it is about (a booking problem: seed 003)
            **({"category": voiced["category"]} if voiced.get("category") else {})}


def dedupe_key(submission, submitted_by):
    """Same external reference from the same client => same case, whichever way (HTTP
    or bus) it came. Per client, so one client cannot squat another's reference and
    swallow a genuine complaint. JSON-encoded, so ("a:b", "c") and ("a", "b:c") stay
    two references."""
    ref = submission.get("external_ref")
    if not ref:
        return None
    client = submitted_by["client_id"] or "staff"
    return "ref:" + json.dumps([client, ref["source"], ref["id"]], ensure_ascii=False)


def new_case(submission, store, number, submitted_at, via, key, submitted_by):
    case = {
        "_id": uuid.uuid4().hex,
        "case_number": number,
        "dedupe_key": key or f"none:{uuid.uuid4().hex}",
        "store_id": store.store_id,
        "store_name": store.name,
        "channel": submission["channel"],
        "customer": submission["customer"],
        "content": submission["content"],
        "occurred_at": submission["occurred_at"],
        "category": submission.get("category"),
        "external_ref": submission.get("external_ref"),
        "service_context": submission.get("service_context"),
        "referral": submission.get("referral"),
        "locale": submission.get("locale", "zh-CN"),
        "via": via,
        "submitted_by": submitted_by,
        "submitted_at": submitted_at,
        "updated_at": submitted_at,
        "outbox_pending": True,
    }
    case["outbox"] = [new_event(CASE_SUBMITTED, submitted_event(case))]
    return case


def submitted_event(case):
    return {
        "case_id": case["_id"],
        **{key: case[key] for key in (
            "case_number", "store_id", "store_name", "channel", "customer", "content",
            "occurred_at", "submitted_at", "category", "external_ref", "service_context",
            "locale", "submitted_by")},
        "referral": case.get("referral"),
    }


def receipt(case, created):
    return {
        "case_id": case["_id"],
        "case_number": case["case_number"],
        "store_id": case["store_id"],
        "submitted_at": case["submitted_at"],
        "duplicate": not created,
        # the receipt here at intake; the case as it is handled, at the routing service
        "links": {"self": f"/v1/feedback/{case['_id']}", "routing_case": f"/v1/cases/{case['_id']}"},
    }
