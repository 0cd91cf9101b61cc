"""A customer's contact handles as digests: how notify files a customer's deliveries and
how followup names a customer who withdrew consent (customer_consent_withdrawn), so that
the two match without contact data crossing the bus. One definition for both sides.

Also the one phone normaliser (E.164) that every service reads phones with, so that a
number typed "138 1234 5678" in one place and "+8613812345678" in another is one handle."""
import hashlib

import phonenumbers

# The region of a number typed without its country code: the chain's customers are
# mainland Chinese, who leave +86 off.
DEFAULT_REGION = "CN"


def e164(raw, region=DEFAULT_REGION):
    """The E.164 form of a phone as people type it ("138 1234 5678", "021-6438 1234",
    "+86 21 6123 4567", "0086 138 1234 5678"); ValueError "not a phone number" when it
    does not read as one, "not a valid phone number" when it reads as a number no one
    can have (a digit short, an unallocated range). The messages never hold the number."""
    try:
        number = phonenumbers.parse("" if raw is None else str(raw).strip(), region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_handle(raw):
    """A phone as a handle: E.164 when it is a valid number, else as given (stripped),
    so that a number phonenumbers refuses is still someone's handle, matched as typed."""
    try:
        return e164(raw)
    except ValueError:
        return str(raw).strip()


def typed_handle(text):
    """One handle as someone types it, without saying which kind it is, normalised as
    handles() normalises its kind: an e-mail lower-cased, a phone E.164, an openid as is."""
    text = text.strip()
    if "@" in text:
        return text.lower()
    return phone_handle(text)


def digest(handle):
    return hashlib.sha256(handle.encode("utf-8")).hexdigest()[:24]


def handles(contact):
    """A customer's contact handles, normalised: phone (E.164 when valid), lower-case
    e-mail, openid."""
    phone, email, openid = (contact.get(key) for key in ("phone", "email", "wechat_openid"))
    return [h for h in (phone and phone_handle(phone), email and str(email).strip().lower(),
                        openid and str(openid).strip()) if h]


def handle_digests(contact):
    """The digest of each handle, in that order ([] for a contact without any)."""
    return [digest(handle) for handle in handles(contact)]
