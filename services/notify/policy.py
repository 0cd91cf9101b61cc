"""Who is reached how and when: channel order with fallback, quiet hours, rate limits.
Pure: no nameko, no pymongo.

- Customers: their preferred channel if they gave one and it reaches them, then the
  brand's order (default WeChat -> SMS -> e-mail). Staff: WeCom (their store's or
  region's group robot) -> e-mail. Outbound webhooks: the endpoint itself.
- Quiet hours (default 21:00-09:00, store-local): customer messages wait for the window
  to open; a brand may set other hours and add staff kinds. Urgent messages (a referral,
  the top rung) go out at once.
- Limits: per customer a day (suppressed over it: a flood of submissions naming one
  person never turns into an SMS bill), per staff member an hour (non-urgent ones wait
  for the next hour), per provider a minute (WeCom: per robot, its published 20).
- Consent: once a customer withdraws consent to be contacted, nothing notify still holds
  for them (waiting for quiet hours to end, for a retry, for the facts it should say) is
  sent, nor anything caused before the withdrawal that notify hears of only later (each
  event has its own queue); what went out already stays in the log as it was (Withdrawal)."""
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from closeloop_shared.contract import DeliveryStatus, NotifyChannel
from closeloop_shared.quiet_hours import QuietHours
from services.notify.kinds import Audience


def _channels(value):
    names = value.split(",") if isinstance(value, str) else value
    return tuple(NotifyChannel(name.strip()).value for name in names if name.strip())


def json_setting(value):
    """A JSON-valued setting, given as JSON text (environment) or already parsed (YAML)."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class ChannelPolicy:
    customer_channels: tuple
    staff_channels: tuple
    quiet_hours: QuietHours | None
    quiet_kinds: frozenset | None = None  # None: every customer kind

    def order(self, audience):
        return self.customer_channels if audience is Audience.CUSTOMER else self.staff_channels

    def quiet(self, notification):
        if notification.urgent or self.quiet_hours is None:
            return False
        if self.quiet_kinds is None:
            return notification.audience is Audience.CUSTOMER
        return notification.template in self.quiet_kinds

    def release_at(self, notification, now, zone):
        """When the notification may go: None for now, else the end of quiet hours."""
        return self.quiet_hours.opens_at(now, zone) if self.quiet(notification) else None

    def route(self, notification, reachable):
        """The channels to try, in order, with their addresses: the preferred one first
        (customers), then the policy's order; only channels that reach the person."""
        if notification.audience is Audience.SYSTEM:
            return [(NotifyChannel.WEBHOOK.value, reachable[NotifyChannel.WEBHOOK.value])]
        order = self.order(notification.audience)
        if notification.preferred in order:
            order = (notification.preferred, *[c for c in order if c != notification.preferred])
        return [(channel, reachable[channel]) for channel in order if reachable.get(channel)]


def _kinds(value):
    names = value.split(",") if isinstance(value, str) else value or ()
    kinds = frozenset(name.strip() for name in names if name.strip())
    return kinds or None


def policies(default_customer, default_staff, default_quiet, brand_overrides, default_quiet_kinds=None):
    """The base policy and the brands' own: {brand_id or None: ChannelPolicy}."""
    base = ChannelPolicy(_channels(default_customer), _channels(default_staff),
                         QuietHours.parse(default_quiet), _kinds(default_quiet_kinds))
    table = {None: base}
    for brand_id, override in (json_setting(brand_overrides) or {}).items():
        kinds = override.get("quiet_kinds")
        table[brand_id] = ChannelPolicy(
            _channels(override.get("customer_channels", base.customer_channels)),
            _channels(override.get("staff_channels", base.staff_channels)),
            QuietHours.parse(override["quiet_hours"]) if "quiet_hours" in override else base.quiet_hours,
            _kinds(kinds) if kinds is not None else base.quiet_kinds)
    return table


def window(now, seconds):
    """The fixed window `now` falls in: (its start as a key part, its end)."""
    start = int(now.timestamp()) // seconds * seconds
    return start, datetime.fromtimestamp(start + seconds, tz=timezone.utc)


def staff_counter(recipient, now):
    """(counter key, when the hour ends) for a staff member's hourly quota."""
    start, end = window(now, 3600)
    return f"staff|{recipient}|{start}", end


def provider_counter(channel, address_key, now):
    """(counter key, when the minute ends) for a provider's per-minute limit; WeCom's
    limit is per robot (address_key), the others per account."""
    start, end = window(now, 60)
    return f"{channel}|{address_key}|{start}", end


# Not sent yet: waiting (quiet hours, a quota, a retry, facts to come) or claimed by a
# sender that has not handed it to a provider yet.
NOT_SENT = frozenset({DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED, DeliveryStatus.FAILED,
                      DeliveryStatus.SENDING})
CONSENT_WITHDRAWN = "consent withdrawn"


def caused_at(delivery):
    """When what caused a customer delivery happened (the complaint submitted, the
    appointment confirmed, the reminder due): its own caused_at; for one recorded before
    notify kept it, or of a kind whose event says no such time, when it was made."""
    return delivery.get("caused_at") or delivery["created_at"]


def covers(withdrawn_at, caused):
    """Whether a withdrawal at `withdrawn_at` covers a message caused at `caused`: one
    caused at or before it, however late notify hears of its event. One caused later is
    an answer to something the customer did since (a new complaint's acknowledgement)."""
    return caused <= withdrawn_at


def withdrawn_since(withdrawn_ats, caused):
    """The latest recorded withdrawal (of the customer's member id or a handle) that
    covers a message caused at `caused`, which is then never sent; None if none does."""
    return max((withdrawn_at for withdrawn_at in withdrawn_ats if covers(withdrawn_at, caused)), default=None)


@dataclass(frozen=True)
class Withdrawal:
    """A customer's withdrawal of consent to be contacted (followup's
    customer_consent_withdrawn), as notify keeps it: their member id, the digests of
    their handles (services/notify/kinds.customer_keys), and when."""
    member_id: str
    customer_keys: frozenset
    withdrawn_at: datetime

    @classmethod
    def of(cls, record):
        """From the event or notify's stored record (the same fields)."""
        return cls(record["member_id"], frozenset(record.get("customer_keys") or ()), record["withdrawn_at"])

    def concerns(self, delivery):
        """A message to this customer: by their member id, or by any handle's digest.
        Staff told about their cases and webhook copies are not messages to them."""
        if delivery.get("audience") != Audience.CUSTOMER.value:
            return False
        return (self.member_id is not None and delivery.get("member_id") == self.member_id) \
            or not self.customer_keys.isdisjoint(delivery.get("customer_keys") or ())

    def stops(self, delivery):
        """Whether the withdrawal ends this delivery: a message to the customer, caused
        before they withdrew (covers: by its cause, not by when notify made it), not sent
        yet. Sent or delivered ones are history."""
        return (self.concerns(delivery) and covers(self.withdrawn_at, caused_at(delivery))
                and DeliveryStatus(delivery["status"]) in NOT_SENT)
