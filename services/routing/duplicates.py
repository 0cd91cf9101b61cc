"""Duplicate cases: the same customer (member id or normalised phone) complaining at the
same store again within a window is linked to the earlier cases as related. Pure: no
nameko, no pymongo."""
from closeloop_shared.contacts import e164

MEMBER, PHONE = "member", "phone"


def normalised_phone(raw):
    """E.164 for a valid number (mainland numbers without +86 too), else the digits as
    given: a key, not a dialable number."""
    if not raw:
        return None
    try:
        return e164(raw)
    except ValueError:
        return "".join(ch for ch in str(raw) if ch.isdigit()) or None


def customer_keys(contact):
    """Every key a customer is recognised by: ["member:<id>", "phone:<E.164>"]."""
    contact = contact or {}
    keys = []
    if contact.get("member_id"):
        keys.append(f"{MEMBER}:{contact['member_id']}")
    phone = normalised_phone(contact.get("phone"))
    if phone:
        keys.append(f"{PHONE}:{phone}")
    return keys


def related(case, candidates, window):
    """The ids of the candidates that are duplicates of `case`: same store, a customer
    key in common, submitted within `window` before it (or after it: a redelivered
    earlier case), never merged away, never the case itself. Oldest first."""
    keys = set(case.get("customer_keys") or customer_keys(case.get("customer")))
    found = []
    for other in candidates:
        if other["_id"] == case["_id"] or other.get("merged_into") or other["store_id"] != case["store_id"]:
            continue
        if not keys & set(other.get("customer_keys") or ()):
            continue
        if abs(case["submitted_at"] - other["submitted_at"]) <= window:
            found.append(other)
    return [other["_id"] for other in sorted(found, key=lambda c: c["submitted_at"])]
