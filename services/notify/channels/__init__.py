"""The one small interface every channel adapter implements, and what a send returns.

An adapter turns one rendered message (Content) for one address into one provider call:
`send(outgoing) -> Receipt`, or it raises ChannelError saying what the failure means for
the next step:
- TRANSIENT: the provider or the network failed (timeout, 5xx, a busy provider): retry
  the same channel later, with backoff;
- THROTTLED: the provider's rate limit (WeChat 45009/45047, WeCom's 20 a minute, the
  SMS gateway's flow control): defer, not counted as a failed attempt;
- PERMANENT: this channel can never carry this message (the user refused WeChat
  messages, an invalid number, a template the provider rejects): try the next channel.

Adapters know nothing of cases or kinds; they never log addresses or secrets.
Pure of nameko and pymongo."""
import logging
from dataclasses import dataclass, field
from enum import Enum

from closeloop_shared.logs import scrub

# What a delivery keeps of a provider's answer (scrubbed of phones and e-mails).
RESPONSE_EXCERPT = 500
# urllib3 logs each request line at DEBUG, query string included: the WeChat app secret
# and access token, the WeCom robot key. Never, whatever LOG_LEVEL says.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)


class Failure(str, Enum):
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Content:
    """One message rendered for one channel (services/notify/templates.py)."""
    text: str = ""                 # plain text: e-mail body, SMS preview, markdown for WeCom
    subject: str = ""              # e-mail
    html: str | None = None        # e-mail
    params: dict = field(default_factory=dict)  # SMS template parameters / WeChat data fields
    template: str | None = None    # the provider's template code (SMS) or id (WeChat)
    link: str | None = None        # WeChat: the page the message opens


@dataclass(frozen=True)
class Outgoing:
    address: str          # e-mail, E.164 phone, openid, robot key, or webhook endpoint id
    content: Content
    idempotency_key: str  # the same on every attempt at one logical notification
    message_id: str       # e-mail Message-ID form of the same identity
    key: str = ""         # "<case id>:<kind>": lets a receiver group the copies of one notification


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it took the message."""
    request_id: str | None = None           # the provider's id of this request
    provider_message_id: str | None = None  # its id of the message (BizId, msgid, ...)
    response: str = ""


class ChannelError(Exception):
    def __init__(self, failure, code, message="", request_id=None, response=""):
        super().__init__(f"{code}: {message}" if message else str(code))
        self.failure, self.code, self.request_id = Failure(failure), str(code), request_id
        self.response = excerpt(response)


def excerpt(text):
    return scrub(text or "")[:RESPONSE_EXCERPT]


def http_failure(status):
    """What an HTTP status without a provider error code means."""
    if status == 429:
        return Failure.THROTTLED
    if status >= 500 or status in (408, 425):
        return Failure.TRANSIENT
    return Failure.PERMANENT
