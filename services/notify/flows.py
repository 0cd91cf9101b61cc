"""notify's use cases over its repository and channel adapters: accept a notification
(route it, render it for every channel on its route, apply quotas and quiet hours),
send it (one attempt, then the outcome: sent, retried later, deferred, the next channel,
or abandoned with a notification_failed event). Plain functions: no nameko, no pymongo
(the repository hides storage)."""
import dataclasses
import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from closeloop_shared import events as ev
from closeloop_shared.contract import DeliveryStatus as S
from closeloop_shared.contract import NotifyChannel as C
from closeloop_shared.logs import scrub
from closeloop_shared.org import DEFAULT_TIMEZONE, Store
from services.notify import kinds, metrics, policy, quota, templates
from services.notify.channels import ChannelError, Content, Failure, Outgoing, excerpt
from services.notify.configuration import address_key
from services.notify.kinds import Audience, Notification
from services.notify.repository import Outcome, identity

log = logging.getLogger(__name__)
# Attempts on one channel before the next one takes over (with the 30 s default the
# retries come after 30 s, 1, 2, 4 and 8 minutes).
ATTEMPTS_PER_CHANNEL = 6
# A provider's throttling ("try later"), or our own per-minute count: try again then.
THROTTLE_PAUSE = timedelta(seconds=60)
# Abandoned deliveries to a webhook endpoint before it is disabled.
WEBHOOK_FAILURES_TO_DISABLE = 3


@dataclasses.dataclass(frozen=True)
class Place:
    """Where a notification's store is, as notify's organisation copy knows it."""
    store: Store | None
    brand_id: str | None
    zone: ZoneInfo


def place_of(organisation, store_id):
    store = organisation.store(store_id)
    if store is None:
        return Place(None, None, ZoneInfo(DEFAULT_TIMEZONE))
    return Place(store, organisation.brand_of_store(store_id), ZoneInfo(store.timezone or DEFAULT_TIMEZONE))


def webhook_copies(notification, settings, repository):
    """The same facts for every outbound webhook endpoint that wants this kind."""
    return [dataclasses.replace(notification, audience=Audience.SYSTEM, recipient=f"webhook:{e.endpoint_id}",
                                addresses={C.WEBHOOK.value: e.endpoint_id}, preferred=None, urgent=True)
            for e in settings.webhooks
            if e.wants(notification.template) and not repository.endpoint_disabled(e.endpoint_id)]


def deliver(repository, channels, settings, organisation, notification, clock, publish, arrived=None):
    """Everything one event causes: its notification and the webhook copies, each sent
    at once when it may go (else left for the send timer). `arrived` (case_id,
    event_type, facts): the event completes notifications waiting for its facts
    (kinds.COMPLETIONS): remembered with the first one's quotas (for one still to
    come), and the first waiting one is released in the same write as the first one's
    insert; the others as complete() does."""
    for each in (notification, *webhook_copies(notification, settings, repository)):
        delivery, plans = _accept(repository, channels, settings, organisation, each, clock(), publish,
                                  start=True, arrived=arrived, completes=arrived is not None)
        arrived = None
        if delivery is not None:
            attempt(repository, channels, settings, delivery, clock, publish)
        for plan, resumed in plans:
            resume(repository, channels, settings, plan, resumed, clock, publish)


def accept(repository, channels, settings, organisation, notification: Notification, now, publish, start=False):
    """_accept for a notification that completes nothing: the delivery to send now, or None."""
    delivery, _ = _accept(repository, channels, settings, organisation, notification, now, publish, start)
    return delivery


def _content(channel, notification, context, settings, now):
    if channel == C.WEBHOOK.value:
        return Content(params=templates.webhook_body(notification, now))
    content = templates.render(notification.template, channel, notification.locale, context,
                               sms_sign=settings.sms_sign)
    provider_templates = settings.provider_templates.get(channel)
    if provider_templates is not None:
        code = provider_templates.get(notification.template)
        if not code:
            raise templates.InvalidMessage(f"no {channel} template code configured for {notification.template}")
        content = dataclasses.replace(content, template=code)
    return content


def _accept(repository, channels, settings, organisation, notification: Notification, now, publish, start=False,
            arrived=None, completes=False):
    """Record the notification (once, whatever the redeliveries) with its route and its
    message for each channel on it. The delivery, leased, if it should be sent now; None
    if it exists already, waits (quiet hours, quota) or reaches nobody.

    What happens to it (quotas, quiet hours, waiting for facts) is decided before the
    insert, so that the insert records it: one write. The counts a quota takes are taken
    back if the delivery exists already. With `start`, a delivery to send now is inserted
    with its first channel's attempt begun (attempt() then sends it without recording
    the start again): a withdrawal of consent marked after that insert is one marked
    after the attempt began, which the provider may have (as with start_attempt).
    `arrived` (case_id, event_type, facts): an event's facts to remember for a
    notification still to come (complete), written in the same round trip as the quotas.
    `completes`: release what waits for them (resumptions), the first in the same round
    trip as the insert. (the delivery or None, [(Resumption, the delivery it released
    or None)] for the caller to send: resume())."""
    place = place_of(organisation, notification.store_id)
    chosen = settings.policy(place.brand_id)
    reachable = dict(notification.addresses)
    if notification.audience is Audience.STAFF:
        reachable[C.WECOM.value] = settings.robot(place.store, place.brand_id,
                                                  notification.context["person"].get("role"))
    route = [(channel, address) for channel, address in chosen.route(notification, reachable) if channel in channels]
    context = {**notification.context, "timezone": place.zone.key,
               "store_name": notification.context.get("store_name") or (
                   place.store.name if place.store else notification.store_id)}
    waits = notification.waits_for if settings.completion_wait > 0 else None
    limits = _limits(settings, notification, now) if route else []
    over, came_first = repository.take([(key, limit, expires_at) for key, limit, expires_at, _ in limits], now,
                                       waits=(notification.case_id, waits) if waits and route else None,
                                       arrived=arrived)
    counted = [key for (key, *_), refused in zip(limits, over) if not refused]
    over = {what: refused for (*_, what), refused in zip(limits, over)}
    if came_first is not None:  # the facts it waits for came first, on their own queue
        context.update(came_first)
        waits = None
    contents, unusable = {}, []
    for channel, _ in route:
        try:
            contents[channel] = dataclasses.asdict(_content(channel, notification, context, settings, now))
        except templates.InvalidMessage as exc:
            unusable.append({"channel": channel, "reason": str(exc)[:300]})
            log.warning("message not renderable for a channel", extra={
                "kind": notification.kind, "channel": channel, "error": str(exc)[:200]})
    route = [{"channel": c, "address": a} for c, a in route if c in contents]
    document = {
        "case_id": notification.case_id, "case_number": notification.case_number,
        "store_id": notification.store_id, "kind": notification.kind, "template": notification.template,
        "audience": notification.audience.value, "recipient": notification.recipient,
        "customer_keys": list(notification.customer_keys),
        # who the customer is to followup, so their withdrawal of consent finds it (None: staff)
        "member_id": notification.context.get("person", {}).get("member_id")
        if notification.audience is Audience.CUSTOMER else None,
        "locale": notification.locale, "urgent": notification.urgent, "route": route,
        "contents": contents, "unusable": unusable, "channel": route[0]["channel"] if route else None,
        # kept only while it may be rendered again (COMPLETIONS); never the complaint itself
        "waiting_for": waits, "context": {k: v for k, v in context.items() if k != "content"} if waits else None,
    }
    # what the event completes, found once its facts are remembered (take) for any still to come
    plans = resumptions(repository, settings, *arrived, now) if completes and arrived is not None else []
    if not route:
        for key in counted:  # nothing will be sent: it takes no quota
            repository.uncount(key)
        delivery = repository.create(document, now)
        if delivery is not None:  # else a redelivered event: already given up
            reason = "no reachable channel" if not unusable else \
                "no channel could carry it: " + "; ".join(f"{u['channel']}: {u['reason']}" for u in unusable)
            abandon(repository, settings, delivery, now, reason[:500], publish)
        return None, [(plan, repository.resume(now=plan.now, **plan.waiting)) for plan in plans]
    outcome, counted_as = _outcome(settings, chosen, place, notification, document, now, over)
    begins = None
    if start and outcome is None:  # sent now: the provider's per-minute limit is counted as the attempt begins
        first = route[0]
        outcome = _over_provider_limit(repository, settings, first["channel"], first["address"], now, counted)
        begins, counted_as = (first["channel"], None) if outcome is None else (None, "deferred")
    released = []
    if plans:  # one round trip for this insert and the first release
        delivery, resumed = repository.create_and_resume(document, now, plans[0].waiting, outcome=outcome,
                                                         start=begins)
        released = [(plans[0], resumed), *((plan, repository.resume(now=plan.now, **plan.waiting))
                                           for plan in plans[1:])]
    else:
        delivery = repository.create(document, now, outcome=outcome, start=begins)
    if delivery is None:  # a redelivered event: sent, being sent, or waiting; counted once already
        for key in counted:
            repository.uncount(key)
        return None, released
    if outcome is not None:
        if counted_as:
            metrics.count(delivery["channel"], notification.template, counted_as)
        return None, released
    return delivery, released


def _limits(settings, notification, now):
    """The quota windows a notification counts in: [(counter key, limit, when the
    counter may be forgotten, which quota)]. A customer's day (suppressed over it), a
    staff member's hour for non-urgent alerts (deferred over it)."""
    if notification.audience is Audience.CUSTOMER:
        key, expires_at = quota.day_counter(notification.recipient, now)
        return [(key, settings.customer_daily_quota, expires_at, Audience.CUSTOMER)]
    if notification.audience is Audience.STAFF and not notification.urgent:
        key, hour_ends = policy.staff_counter(notification.recipient, now)
        return [(key, settings.staff_hourly_quota, hour_ends + timedelta(hours=1), Audience.STAFF)]
    return []


def _outcome(settings, chosen, place, notification, document, now, over):
    """(Outcome, the metric it counts as) for a notification that may not go now: over
    a quota (`over`: {Audience: whether its window was at its limit}), waiting for facts,
    quiet hours; (None, None) if it may."""
    if over.get(Audience.CUSTOMER):
        # Kept in the log, not sent: a flood of submissions naming one person.
        limit = settings.customer_daily_quota
        return Outcome(S.SUPPRESSED, f"over the daily quota of {limit} messages to this customer"), "suppressed"
    if over.get(Audience.STAFF):
        _, hour_ends = policy.staff_counter(notification.recipient, now)
        return Outcome(S.DEFERRED, "over the staff member's hourly limit", hour_ends), "deferred"
    opens = chosen.release_at(notification, now, place.zone)
    waits = document["waiting_for"]
    if waits:  # waits for the facts, or for the morning if that is later; the facts may come meanwhile
        waited = now + timedelta(seconds=settings.completion_wait)
        until, reason = (waited, f"waiting for {waits}") if opens is None or opens < waited else (opens, "quiet hours")
        # a short wait for facts is no deferral worth counting; the night is
        return Outcome(S.DEFERRED, reason, until, {"quiet_until": opens}), "deferred" if until == opens else None
    if opens is not None:
        return Outcome(S.DEFERRED, "quiet hours", opens), "deferred"
    return None, None


def _over_provider_limit(repository, settings, channel, address, now, counted=None):
    """Count one more message to `channel`'s provider this minute: an Outcome deferring
    the delivery to the next minute if that is over its limit, else None."""
    per_minute = settings.per_minute.get(channel)
    if not per_minute:
        return None
    scope = address_key(address) if channel == C.WECOM.value else "account"
    key, minute_ends = policy.provider_counter(channel, scope, now)
    if counted is not None:
        counted.append(key)
    if repository.count(key, minute_ends + timedelta(minutes=5)) > per_minute:
        return Outcome(S.DEFERRED, f"{channel} limit of {per_minute} a minute", minute_ends)
    return None


def facts_of(event_type, event):
    """What the event adds to the notifications waiting for it (kinds.COMPLETIONS), as
    (case_id, event_type, facts); None for an event nothing waits for."""
    if event_type not in kinds.COMPLETIONS:
        return None
    return event["case_id"], event_type, kinds.COMPLETIONS[event_type](event)


def complete(repository, channels, settings, event_type, event, clock, publish):
    """A later event's facts for the notifications of its case still waiting for them
    (kinds.COMPLETIONS): each is rendered again with them and released, at once or when
    its quiet hours end. A notification whose wait ran out already went without them.
    Each is taken by one conditional write that also records its new message and, when
    it goes now, the start of its attempt. (An event that tells someone itself does
    this in deliver, with `arrived`.)"""
    extra = kinds.COMPLETIONS[event_type](event)
    repository.remember_completion(event["case_id"], event_type, extra, clock())  # for one still to come
    for plan in resumptions(repository, settings, event["case_id"], event_type, extra, clock()):
        resume(repository, channels, settings, plan, repository.resume(now=plan.now, **plan.waiting), clock, publish)


@dataclasses.dataclass
class Resumption:
    """How one delivery waiting for an event's facts is taken (repository.resume's
    arguments, `waiting`), the counts taken for it, and the metric it counts as."""
    now: object
    waiting: dict
    counted: list
    counts_as: str | None = None


def resumptions(repository, settings, case_id, event_type, extra, now):
    """A Resumption for each delivery of the case waiting for `event_type`'s facts
    (`extra`): its message rendered again with them; released at once (its attempt
    begun) or deferred (quiet hours; the provider's limit this minute)."""
    plans = []
    for delivery in repository.waiting(case_id, event_type):
        context = {**delivery["context"], **extra}
        again = dataclasses.replace(_stored(delivery), context=context)
        contents = dict(delivery["contents"])
        for step in delivery["route"]:
            try:
                contents[step["channel"]] = dataclasses.asdict(_content(step["channel"], again, context, settings, now))
            except templates.InvalidMessage as exc:  # keeps what it had: still a true message
                log.warning("message not renderable with the new facts", extra={
                    "kind": delivery["kind"], "channel": step["channel"], "error": str(exc)[:200]})
        waiting = {"delivery": delivery, "event_type": event_type,
                   "changes": {"contents": contents, "waiting_for": None, "context": None}}
        channel = delivery["route"][delivery["route_index"]]
        arrived = {"status": S.QUEUED.value, "at": now, "reason": f"{event_type} arrived",
                   "channel": delivery.get("channel")}
        quiet_until = delivery.get("quiet_until")
        if quiet_until is not None and quiet_until > now:
            outcome = Outcome(S.DEFERRED, "quiet hours", quiet_until)
            plans.append(Resumption(now, {**waiting, "history": [_line(outcome, now, delivery)], "outcome": outcome},
                                    []))
            continue
        counted = []
        limited = _over_provider_limit(repository, settings, channel["channel"], channel["address"], now, counted)
        if limited is not None:
            plans.append(Resumption(now, {**waiting, "history": [arrived, _line(limited, now, delivery)],
                                          "outcome": limited}, [], "deferred"))
            continue
        plans.append(Resumption(now, {**waiting, "history": [arrived], "start": channel["channel"]}, counted))
    return plans


def resume(repository, channels, settings, plan, resumed, clock, publish):
    """After a Resumption's write: the delivery it released sent (`resumed`: the
    delivery as the write left it, None if another replica took it or consent was
    withdrawn meanwhile)."""
    if resumed is None:
        for key in plan.counted:
            repository.uncount(key)
        return
    if plan.counts_as:
        metrics.count(resumed["channel"], resumed["template"], plan.counts_as)
    if plan.waiting.get("start"):
        attempt(repository, channels, settings, resumed, clock, publish)


def _line(outcome, now, delivery):
    """The status history's line for an outcome, as finish() writes it."""
    return {"status": S(outcome.status).value, "at": now, "reason": outcome.reason, "channel": delivery.get("channel")}


def _stored(delivery):
    """The notification a delivery was made for, as far as rendering needs it."""
    return Notification(case_id=delivery["case_id"], case_number=delivery.get("case_number"),
                        store_id=delivery["store_id"], kind=delivery["kind"], template=delivery["template"],
                        audience=Audience(delivery["audience"]), recipient=delivery["recipient"],
                        locale=delivery.get("locale") or templates.DEFAULT_LOCALE, urgent=delivery.get("urgent", False))


def _defer(repository, delivery, now, until, reason, attempt_result=None):
    repository.finish(delivery, S.DEFERRED, now, reason=reason, next_attempt_at=until, attempt=attempt_result)
    metrics.count(delivery["channel"], delivery["template"], "deferred")
    return None


def send_due(repository, channels, settings, clock, publish, limit):
    """The send timer: deliveries whose time has come (quiet hours over, a retry due),
    in order. How many were attempted."""
    return _attempt_claimed(repository.claim_due, repository, channels, settings, clock, publish, limit)


def take_over_stalled(repository, channels, settings, clock, publish, limit):
    """Deliveries whose sender died mid-send: sent again with the same identity."""
    return _attempt_claimed(repository.claim_stalled, repository, channels, settings, clock, publish, limit)


def _attempt_claimed(claim, repository, channels, settings, clock, publish, limit):
    """Up to `limit` deliveries, each claimed (under a lease) then attempted; how many were."""
    for done in range(limit):
        delivery = claim(clock())
        if delivery is None:
            return done
        attempt(repository, channels, settings, delivery, clock, publish)
    return limit


def attempt(repository, channels, settings, delivery, clock, publish):
    """One attempt on the delivery's current channel (the caller holds its lease), then
    its outcome; a channel that cannot carry it hands over to the next at once."""
    if not delivery.get("route"):  # recorded by notify before routes: it cannot say where it went
        repository.finish(delivery, S.ABANDONED, clock(), reason="recorded before delivery routes; not resent")
        return
    if delivery.get("consent_withdrawn_at"):  # marked while it waited for its sender
        _suppress_withdrawn(repository, delivery, clock())
        return
    while delivery is not None:
        step = delivery["route"][delivery["route_index"]]
        channel, address = step["channel"], step["address"]
        now = clock()
        if not _begun(delivery, channel):
            limited = _over_provider_limit(repository, settings, channel, address, now)
            if limited is not None:
                _defer(repository, delivery, now, limited.next_attempt_at, limited.reason)
                return
            delivery = repository.start_attempt(delivery, channel, now)
            if delivery is None:
                return  # the lease was lost: whoever took the delivery over sends it
            if delivery.get("consent_withdrawn_at"):  # marked while this sender held it: not handed over
                _suppress_withdrawn(repository, delivery, now, {"outcome": S.SUPPRESSED.value})
                return
        idempotency_key, message_id = identity(delivery["case_id"], delivery["kind"], delivery["recipient"])
        outgoing = Outgoing(address, Content(**delivery["contents"][channel]), idempotency_key, message_id,
                            key=f"{delivery['case_id']}:{delivery['kind']}")
        try:
            with repository.hold(delivery):
                receipt = channels[channel].send(outgoing)
        except ChannelError as error:
            delivery = _failed(repository, settings, delivery, channel, error, clock(), publish)
            continue
        now = clock()
        metrics.PROVIDER_REQUESTS.labels(channel, "ok").inc()
        repository.finish(delivery, S.SENT, now, attempt={
            "outcome": S.SENT.value, "request_id": receipt.request_id,
            "provider_message_id": receipt.provider_message_id, "response": excerpt(receipt.response)},
            changes={"sent_at": now, "provider_message_id": receipt.provider_message_id})
        metrics.count(channel, delivery["template"], "sent")
        metrics.LATENCY.labels(channel).observe(max((now - delivery["created_at"]).total_seconds(), 0))
        if channel == C.WEBHOOK.value:
            repository.endpoint_succeeded(address)
        return


def _begun(delivery, channel):
    """Whether this sender began the attempt on `channel` in the write that gave it the
    delivery (accept with start, or complete): an attempt still open, by its lease."""
    attempts = delivery.get("attempt_log") or ()
    if not attempts or "outcome" in attempts[-1] or not delivery.get("lease_owner"):
        return False
    return attempts[-1].get("channel") == channel and attempts[-1].get("by") == delivery["lease_owner"]


def record_receipts(repository, channels, settings, channel, reports, clock, publish):
    """A provider's delivery reports (services/notify/receipts.py) for messages it took:
    delivered, or not (then the next channel takes over, else the notification is
    abandoned). Reports naming no sent delivery (unknown, repeated) are ignored. How
    many were applied."""
    applied = 0
    for report in reports:
        now = clock()
        if report.delivered:
            receipt = {"code": report.code, "provider_message_id": report.provider_message_id,
                       "reported_at": report.reported_at}
            template = repository.mark_delivered(channel, report.match, now, receipt)
            if template is not None:
                applied += 1
                metrics.count(channel, template, "delivered")
            continue
        delivery = repository.claim_undelivered(channel, report.match, now)
        if delivery is None:
            continue
        applied += 1
        error = ChannelError(Failure.PERMANENT, report.code or "undelivered", report.message or "",
                             request_id=report.provider_message_id)
        following = _failed(repository, settings, delivery, channel, error, now, publish)
        if following is not None:
            attempt(repository, channels, settings, following, clock, publish)
    return applied


def _failed(repository, settings, delivery, channel, error, now, publish):
    """The outcome of a failed attempt; the delivery to try next (on the next channel),
    or None when it waits or is given up."""
    result = {"outcome": error.failure.value, "code": error.code, "request_id": error.request_id,
              "response": error.response}
    reason = f"{channel}: {error.code}"
    log.warning("delivery attempt failed", extra={"case_id": delivery["case_id"], "kind": delivery["kind"],
                                                  "channel": channel, "error": scrub(str(error))[:200]})
    if error.failure is Failure.THROTTLED:
        metrics.PROVIDER_REQUESTS.labels(channel, "throttled").inc()
        return _defer(repository, delivery, now, now + THROTTLE_PAUSE, f"{reason} (throttled)", result)
    metrics.PROVIDER_REQUESTS.labels(channel, "error").inc()
    metrics.count(channel, delivery["template"], "failed")
    if error.failure is Failure.TRANSIENT and delivery["channel_attempts"] < ATTEMPTS_PER_CHANNEL:
        retry_in = timedelta(seconds=settings.retry_interval * 2 ** (delivery["channel_attempts"] - 1))
        repository.finish(delivery, S.FAILED, now, reason=reason, attempt=result, next_attempt_at=now + retry_in)
        return None
    following = delivery["route_index"] + 1
    if following >= len(delivery["route"]):
        abandon(repository, settings, delivery, now, reason, publish, result)
        return None
    moved = repository.finish(delivery, S.QUEUED, now, next_attempt_at=now, attempt=result,
                              reason=f"{reason}; next: {delivery['route'][following]['channel']}",
                              changes={"route_index": following, "channel_attempts": 0})
    return repository.claim(delivery["_id"], now) if moved else None


def abandon(repository, settings, delivery, now, reason, publish, result=None):
    """No channel left: give up, and say so. A customer or staff member: a
    notification_failed event (the store phones the customer instead). A webhook
    endpoint: count it towards disabling the endpoint."""
    events = []
    audience = Audience(delivery["audience"])
    if audience is Audience.SYSTEM:
        endpoint_id = delivery["route"][0]["address"] if delivery["route"] else delivery["recipient"]
        if repository.endpoint_failed(endpoint_id, now, WEBHOOK_FAILURES_TO_DISABLE):
            metrics.WEBHOOKS_DISABLED.inc()
            log.error("outbound webhook endpoint disabled after persistent failure",
                      extra={"endpoint_id": endpoint_id})
    else:
        event = ev.new_event(ev.NOTIFICATION_FAILED, {
            "case_id": delivery["case_id"],
            "case_number": delivery.get("case_number"), "store_id": delivery["store_id"],
            "kind": delivery["kind"], "audience": audience.value, "recipient": delivery["recipient"],
            "reason": reason, "channels_tried": [step["channel"] for step in delivery["route"]],
            "action": "phone_call" if audience is Audience.CUSTOMER else "tell_staff", "failed_at": now})
        events.append(event)
    released = repository.finish(delivery, S.ABANDONED, now, reason=reason, attempt=result, events=events)
    metrics.count(delivery.get("channel"), delivery["template"], "abandoned")
    log.error("delivery abandoned", extra={"case_id": delivery["case_id"], "kind": delivery["kind"],
                                           "reason": scrub(reason)[:200]})
    if released and events:
        repository.outbox.flush(delivery["_id"], events, publish)


# -- consent withdrawn (followup's customer_consent_withdrawn) -------------------------------

def consent_withdrawn(repository, event, now):
    """A customer withdrew consent: every message to them notify still holds (deferred
    by quiet hours, waiting for a retry or for facts, queued) is ended, suppressed with
    the reason "consent withdrawn" in its log; sent ones are history, staff told about
    their cases are not touched. One a sender holds at this moment is marked, and its
    sender ends it instead of sending it (attempt), unless the provider has it already.
    A repeated event finds nothing left to stop. How many were stopped or marked."""
    withdrawal = policy.Withdrawal.of(event)
    stopped = 0
    for delivery in repository.held_for_customer(withdrawal.member_id, sorted(withdrawal.customer_keys),
                                                 withdrawal.withdrawn_at):
        if not withdrawal.stops(delivery):
            continue
        claimed = repository.claim_held(delivery, now)
        if claimed is not None:
            stopped += _suppress_withdrawn(repository, claimed, now)
        elif not delivery.get("consent_withdrawn_at"):
            stopped += repository.mark_withdrawn(delivery, withdrawal.withdrawn_at)
    return stopped


def _suppress_withdrawn(repository, delivery, now, attempt_result=None):
    # suppressed, not abandoned: nobody should phone a customer who asked not to be contacted
    released = repository.finish(delivery, S.SUPPRESSED, now, reason=policy.CONSENT_WITHDRAWN,
                                 attempt=attempt_result, changes={"waiting_for": None, "context": None})
    if released:
        metrics.count(delivery.get("channel"), delivery["template"], "suppressed")
        log.info("delivery stopped: consent withdrawn", extra={"case_id": delivery["case_id"],
                                                              "kind": delivery["kind"]})
    return released
