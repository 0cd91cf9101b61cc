"""How each event changes a case's row in the read model. Pure: returns
(fields to set, status change or None, revisit to add or None). Events may arrive in
any order and more than once; every change is a plain overwrite or a set-add, and the
status only moves forward in time."""
from closeloop_shared import events as ev


def project(event_type, data):
    if event_type == ev.CASE_SUBMITTED:
        return ({"case_number": data["case_number"], "store_id": data["store_id"],
                 "channel": data["channel"], "submitted_at": data["submitted_at"]},
                ("submitted", data["submitted_at"]), None)
    if event_type == ev.CASE_ROUTED:
        deadlines = data["deadlines"]
        return ({"category": data["category"], "severity": data["severity"],
                 "store_id": data["store_id"],
                 "first_response_due": deadlines["first_response_due"],
                 "resolution_due": deadlines["resolution_due"]},
                ("open", data["routed_at"]), None)
    if event_type == ev.CASE_FIRST_RESPONDED:
        return ({"first_responded_at": data["responded_at"], "first_response_on_time": data["on_time"]},
                ("in_progress", data["responded_at"]), None)
    if event_type == ev.CASE_RESOLVED:
        return ({"resolved_at": data["resolved_at"], "resolution_on_time": data["on_time"],
                 "remedy_type": data["remedy"]["type"],
                 "refund_option": data["remedy"].get("refund_option"),
                 "category": data["category"]},
                ("resolved", data["resolved_at"]), None)
    if event_type == ev.CASE_REOPENED:
        # A reopened case needs a new resolution; its earlier one no longer counts.
        return ({"reopened": True, "last_reopened_at": data["reopened_at"]},
                ("reopened", data["reopened_at"]), None)
    if event_type == ev.CASE_CLOSED:
        return ({}, ("closed", data["closed_at"]), None)
    if event_type == ev.CASE_ESCALATED:
        return ({"escalated": True, "top_rung": data["rung"]}, None, None)
    if event_type == ev.REVISIT_RECORDED:
        return ({}, None, {"revisit_id": data["revisit_id"], "score": data["score"],
                           "satisfied": data["satisfied"]})
    raise KeyError(event_type)
