"""How each event changes a case's row in the read model. Pure.

Events reach reporting on separate queues, in any order and sometimes twice, so every
change is idempotent and order-proof: plain fields are overwritten with the same
values, counters only rise ($max), revisits and corrections are sets, and fields that belong to a
moment (the status, a resolution round) move only forward, guarded by that moment."""
from dataclasses import dataclass, field
from datetime import timezone

from closeloop_shared import events as ev
from closeloop_shared.contract import CaseStatus
from services.reporting.facts import customer_key


@dataclass(frozen=True)
class Guarded:
    """Set `fields` only if the row's `guard` is missing or not after `value`."""
    guard: str
    value: object
    fields: dict


@dataclass(frozen=True)
class Change:
    fields: dict = field(default_factory=dict)
    maxima: dict = field(default_factory=dict)
    guarded: tuple = ()
    revisit: dict | None = None
    correction: dict | None = None
    breach: dict | None = None


# Lifecycle order: breaks ties between events stamped with the same moment (resolving an
# unanswered case publishes case_first_responded and case_resolved with one timestamp).
STATUS_RANK = {status.value: rank for rank, status in enumerate((
    CaseStatus.NEW, CaseStatus.ASSIGNED, CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING,
    CaseStatus.PENDING_CUSTOMER, CaseStatus.RESOLVED, CaseStatus.REOPENED, CaseStatus.CLOSED,
    CaseStatus.ARCHIVED))}


def status_order(name, at):
    """A sortable key: UTC time to the microsecond, then the lifecycle rank."""
    return f"{at.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%S.%f}#{STATUS_RANK[name]}"


def _status(name, at):
    order = status_order(name, at)
    return Guarded("status_order", order, {"status": name, "status_at": at, "status_order": order})


def _handler(staff_id, at):
    """Who handles the case now: the latest assignee, then whoever resolved it."""
    return Guarded("handler_at", at, {"handler_id": staff_id, "handler_at": at})


def project(event_type, data):
    if event_type == ev.CASE_SUBMITTED:
        return Change(fields={"case_number": data["case_number"], "store_id": data["store_id"],
                              "channel": data["channel"], "submitted_at": data["submitted_at"],
                              "customer_key": customer_key(data["customer"])},
                      guarded=(_status(CaseStatus.NEW.value, data["submitted_at"]),))
    if event_type == ev.CASE_ROUTED:
        deadlines = data["deadlines"]
        # which model version put the case in which category (for the corrections report)
        model = {"model_version": data.get("model_version"), "model_category": data["category"]} \
            if data.get("classified_by") == "model" else {}
        return Change(fields={"category": data["category"], "severity": data["severity"],
                              "store_id": data["store_id"],
                              "first_response_due": deadlines["first_response_due"],
                              "report_due": deadlines.get("report_due"), **model},
                      guarded=(_status(CaseStatus.ASSIGNED.value, data["routed_at"]),
                               _handler(data["assignee"]["staff_id"], data["routed_at"]),
                               # a reopening re-arms the resolution clock: its due wins
                               Guarded("resolution_due_set_at", data["routed_at"], {
                                   "resolution_due": deadlines["resolution_due"],
                                   "resolution_due_set_at": data["routed_at"]})))
    if event_type == ev.CASE_FIRST_RESPONDED:
        return Change(fields={"first_responded_at": data["responded_at"],
                              "first_response_on_time": data["on_time"]},
                      guarded=(_status(CaseStatus.INVESTIGATING.value, data["responded_at"]),))
    if event_type == ev.CASE_RESOLVED:
        known = {"root_cause": data["root_cause"]} if data.get("root_cause") else {}
        return Change(fields={"category": data["category"], **known}, guarded=(
            _status(CaseStatus.RESOLVED.value, data["resolved_at"]),
            # who resolved it (older emitters name only the revisit owner, then the resolver)
            _handler(data.get("resolved_by") or data["revisit_owner"]["staff_id"], data["resolved_at"]),
            Guarded("resolution_round", data["resolution_round"], {
                "resolution_round": data["resolution_round"], "resolved_at": data["resolved_at"],
                "resolution_on_time": data["on_time"], "remedy_type": data["remedy"]["type"],
                "refund_option": data["remedy"].get("refund_option"),
                "remedy_amount_fen": data["remedy"].get("amount_fen", 0)})))
    if event_type == ev.CASE_REOPENED:
        reopened_at = data["reopened_at"]
        due = (Guarded("resolution_due_set_at", reopened_at, {
            "resolution_due": data["resolution_due"], "resolution_due_set_at": reopened_at}),) \
            if data.get("resolution_due") else ()
        return Change(fields={"reopened": True}, maxima={"last_reopened_at": reopened_at},
                      guarded=(_status(CaseStatus.REOPENED.value, reopened_at),) + due)
    if event_type == ev.CASE_CLOSED:
        return Change(fields={k: data[k] for k in ("root_cause", "merged_into") if data.get(k)},
                      guarded=(_status(CaseStatus.CLOSED.value, data["closed_at"]),))
    if event_type == ev.CASE_ESCALATED:
        return Change(fields={"escalated": True}, maxima={"top_rung": data["rung"]},
                      guarded=(_handler(data["assignee"]["staff_id"], data["escalated_at"]),))
    if event_type == ev.CASE_DEADLINE_BREACHED:
        # once per clock and deadline: a re-armed clock that breaches again counts again
        return Change(breach={"clock": data["clock"], "rung": data["rung"], "due_at": data["due_at"]})
    if event_type == ev.REPORT_SIGNED_OFF:
        return Change(fields={"report_on_time": data["on_time"]})
    if event_type == ev.CASE_RECLASSIFIED:
        at = data["reclassified_at"]
        return Change(fields={"store_id": data["store_id"]},
                      guarded=(Guarded("corrected_at", at, {"corrected_category": data["category"],
                                                            "corrected_at": at}),),
                      correction={key: data[key] for key in (
                          "correction_id", "previous_category", "category", "model_category",
                          "model_version", "by_role", "reclassified_at")})
    if event_type == ev.REVISIT_RECORDED:
        return Change(revisit={"revisit_id": data["revisit_id"], "score": data["score"],
                               "satisfied": data["satisfied"]})
    raise KeyError(event_type)


def apply(row, change):
    """The row after the change: what FactsRepository.apply does to the document."""
    row = dict(row, **change.fields)
    for name, value in change.maxima.items():
        row[name] = max(row[name], value) if name in row else value
    for guarded in change.guarded:
        if guarded.guard not in row or row[guarded.guard] <= guarded.value:
            row.update(guarded.fields)
    if change.revisit and change.revisit not in row.get("revisits", []):
        row["revisits"] = row.get("revisits", []) + [change.revisit]
    if change.correction and change.correction not in row.get("corrections", []):
        row["corrections"] = row.get("corrections", []) + [change.correction]
    if change.breach and change.breach not in row.get("breaches", []):
        row["breaches"] = row.get("breaches", []) + [change.breach]
    return row
