"""A customer's contact handles as digests: how notify files a customer's deliveries and
how followup names a customer who withdrew consent (customer_consent_withdrawn), so that
the two match without contact data crossing the bus. One definition for both sides."""
import hashlib


def digest(handle):
    return hashlib.sha256(handle.encode("utf-8")).hexdigest()[:24]


def handles(contact):
    """A customer's contact handles, normalised: E.164 phone, lower-case e-mail, openid."""
    return [h for h in (contact.get("phone"), (contact.get("email") or "").lower() or None,
                        contact.get("wechat_openid")) if h]


def handle_digests(contact):
    """The digest of each handle, in that order ([] for a contact without any)."""
    return [digest(handle) for handle in handles(contact)]
