"""Which notifications an event causes: one table row per kind. Pure: no nameko, no pymongo.

A row names the event, the template (services/notify/templates/<locale>/<template>.<channel>.*),
who is told (the event field holding the person), what makes a repeat of the event a
notification of its own (each rung of an escalation, each handover, each revisit), and
whether it is urgent (goes out at once, whatever the quiet hours and staff quotas).
Adding a kind is a template per channel plus one row here (and the event's handler in
service.py, which nameko needs per event).

Templates get the event's own fields (deadlines included) as variables, so what a
message says about time always comes from the event."""
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Callable

from closeloop_shared import contacts
from closeloop_shared import events as ev
from closeloop_shared.contract import NotifyChannel, Severity
from closeloop_shared.org import LADDER

TOP_RUNG = len(LADDER) - 1


class Audience(str, Enum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"  # an outbound webhook to another system


def _never(event):
    return False


def _none(event):
    return None


def _referral_or_top(event):
    """A consumer-association / media referral, or a breach reaching the top rung."""
    return event.get("severity") == Severity.CRITICAL.value or event.get("rung", 0) >= TOP_RUNG


@dataclass(frozen=True)
class Rule:
    event: str
    template: str
    audience: Audience
    person: str | None                            # the event field holding whom to tell (None: only `others`)
    others: str | None = None                     # an event field listing more people told the same
    occurrence: Callable[[dict], str | None] = _none
    urgent: Callable[[dict], bool] = _never
    waits_for: str | None = None                  # a later event whose facts it should say (COMPLETIONS)
    subject: str = "case_id"                      # the event field naming what it is about (its case)
    caused_at: str | None = None                  # customers: the event field saying when its cause happened


RULES = {rule.event: rule for rule in (
    # waits briefly for routing's deadlines, so it can promise the case's own first-response time
    Rule(ev.CASE_SUBMITTED, "acknowledgement", Audience.CUSTOMER, "customer", waits_for=ev.CASE_ROUTED,
         caused_at="submitted_at"),
    # a referral's customer-service department is told at once too (seed 004)
    Rule(ev.CASE_ROUTED, "assigned", Audience.STAFF, "assignee", others="informed",
         urgent=lambda e: e["severity"] == Severity.CRITICAL.value),
    # everyone on the rung the case reached, any of whom may acknowledge it
    Rule(ev.CASE_ESCALATED, "escalated", Audience.STAFF, "assignee", others="notified",
         occurrence=lambda e: str(e["rung"]), urgent=_referral_or_top),
    Rule(ev.CASE_REASSIGNED, "reassigned", Audience.STAFF, "assignee",
         occurrence=lambda e: (e.get("previous_assignee") or {}).get("staff_id") or "-"),
    Rule(ev.FOLLOWUP_DUE, "revisit_due", Audience.STAFF, "owner", occurrence=lambda e: e["revisit_id"]),
    # a clock's warning; a re-armed clock warns again, for its new due time
    Rule(ev.CASE_DEADLINE_APPROACHED, "deadline_warning", Audience.STAFF, "assignee",
         occurrence=lambda e: f"{e['clock']}:{e['due_at'].isoformat()}",
         urgent=lambda e: e["severity"] == Severity.CRITICAL.value),
    # appointments (followup): a booking or its new time is confirmed, and the customer
    # reminded the day before; each time of an appointment is a notification of its own
    Rule(ev.APPOINTMENT_CONFIRMED, "appointment_confirmation", Audience.CUSTOMER, "customer",
         occurrence=lambda e: e["starts_at"].isoformat(), caused_at="confirmed_at"),
    Rule(ev.APPOINTMENT_REMINDER_DUE, "appointment_reminder", Audience.CUSTOMER, "customer",
         occurrence=lambda e: e["starts_at"].isoformat(), caused_at="reminded_at"),
    # the store (and the booking system, by a webhook of this kind) hears of each request
    Rule(ev.APPOINTMENT_CHANGE_REQUESTED, "appointment_change_requested", Audience.STAFF, "store_staff",
         occurrence=lambda e: e["requested_at"].isoformat()),
    # reporting's weekly summary of a region or brand (seed 000), to each of its managers;
    # about no case: the digest is its subject (one notification per digest and manager)
    Rule(ev.WEEKLY_DIGEST_READY, "weekly_digest", Audience.STAFF, None, others="managers", subject="digest_id"),
)}
TEMPLATES = tuple(sorted({rule.template for rule in RULES.values()}))
# What a later event adds to the variables of a notification still waiting for it.
COMPLETIONS = {
    ev.CASE_ROUTED: lambda e: {"first_response_due": e["deadlines"].get("first_response_due")},
}


@dataclass(frozen=True)
class Notification:
    """One logical notification: (case_id, kind, recipient) is its identity."""
    case_id: str
    case_number: str | None
    store_id: str
    kind: str            # the template, plus the occurrence: "escalated:3"
    template: str
    audience: Audience
    recipient: str       # "staff:<id>", "customer:<digest of the contact>", "webhook:<id>"
    locale: str
    urgent: bool
    addresses: dict = field(default_factory=dict)  # channel -> address the event gives
    preferred: str | None = None
    context: dict = field(default_factory=dict)    # the template variables
    customer_keys: tuple = ()                      # customers: a digest of each handle
    waits_for: str | None = None
    # customers: when what caused it happened, as its event says (Rule.caused_at), which a
    # withdrawal of consent is compared with; None for staff, or an event saying no such time
    caused_at: datetime | None = None


def customer_keys(contact):
    """Digests of each of a customer's handles, so the delivery log finds them by any
    (no raw contact data in the keys); the first is their identity as a recipient."""
    return contacts.handle_digests(contact) or [contacts.digest("")]


def contact_key(contact):
    """The key of one handle as someone types it: a phone (any usual form), an e-mail,
    or an openid; normalised as customer_keys normalises each kind, so they match."""
    return contacts.digest(contacts.typed_handle(contact))


def notifications(event_type, event):
    """Every notification an event (as loaded through its schema) causes: to its person,
    and to each of the others it names (once each)."""
    rule = RULES[event_type]
    people = [*([event[rule.person]] if rule.person else []),
              *(event.get(rule.others) or [] if rule.others else [])]
    seen, unique = set(), []
    for person in people:
        key = person.get("staff_id") if rule.audience is Audience.STAFF else id(person)
        if key not in seen:
            seen.add(key)
            unique.append(person)
    return [notification(event_type, event, person) for person in unique]


def notification(event_type, event, person=None):
    """The notification an event causes to `person` (the rule's person by default)."""
    rule = RULES[event_type]
    if person is None:  # the rule's person, else the first of the others it names
        person = event[rule.person] if rule.person else event[rule.others][0]
    occurrence = rule.occurrence(event)
    kind = f"{rule.template}:{occurrence}" if occurrence is not None else rule.template
    if rule.audience is Audience.CUSTOMER:
        recipient = f"customer:{customer_keys(person)[0]}"
        addresses = {NotifyChannel.WECHAT.value: person.get("wechat_openid"),
                     NotifyChannel.SMS.value: person.get("phone"),
                     NotifyChannel.EMAIL.value: person.get("email")}
        preferred = person.get("preferred_channel")
        keys = tuple(customer_keys(person))
    else:
        recipient = f"staff:{person['staff_id']}"
        addresses, preferred, keys = {NotifyChannel.EMAIL.value: person.get("email")}, None, ()
    return Notification(
        case_id=event[rule.subject], case_number=event.get("case_number"), store_id=event["store_id"],
        kind=kind, template=rule.template, audience=rule.audience, recipient=recipient,
        locale=event.get("locale") or "zh-CN", urgent=bool(rule.urgent(event)),
        addresses={c: a for c, a in addresses.items() if a}, preferred=preferred,
        context={**event, "person": person}, customer_keys=keys, waits_for=rule.waits_for,
        caused_at=event.get(rule.caused_at) if rule.caused_at else None)
