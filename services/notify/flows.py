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


def handle_event(repository, channels, settings, organisation, event_type, event, clock, publish):
    """Everything an event tells people (kinds.notifications), each delivered; what
    waits for its facts (kinds.COMPLETIONS) is completed with the first notification's
    writes, or on its own if the event tells nobody itself."""
    arrived = facts_of(event_type, event)
    for notification in kinds.notifications(event_type, event):
        deliver(repository, channels, settings, organisation, notification, clock, publish, arrived=arrived)
        arrived = None
    if arrived is not None:
        complete(repository, channels, settings, event_type, event, clock, publish)


def deliver(repository, channels, settings, organisation, notification, clock, publish, arrived=None):
    """Everything one notification causes: it and the webhook copies, each sent at once
    when it may go (else left for the send timer). `arrived` (case_id, event_type,
    facts): the event completes notifications waiting for its facts
    (kinds.COMPLETIONS): remembered with the first one's quotas (for one still to
    come), and the first waiting one is released in the same write as the first one's
    insert; the others as complete() does. A released one is sent after the new one,
    its attempt begun then (start_attempt: refused if it was taken over or its
    customer withdrew consent meanwhile)."""
    for each in (notification, *webhook_copies(notification, settings, repository)):
        delivery, released = _accept(repository, channels, settings, organisation, each, clock(), publish,
                                     arrived=arrived)
        arrived = None
        if delivery is not None:  # inserted with its attempt begun: sent now, before any other send
            attempt(repository, channels, settings, delivery, clock, publish, begun=True)
        for resumption, resumed in released:
            send_released(repository, channels, settings, resumption, resumed, clock, publish)


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


def _accept(repository, channels, settings, organisation, notification: Notification, now, publish, arrived=None):
    """Record the notification (once, whatever the redeliveries) with its route and its
    message for each channel on it. The delivery, leased, if it should be sent now; None
    if it exists already, waits (quiet hours, quota), reaches nobody, or its customer
    withdrew consent.

    What happens to it (quotas, quiet hours, waiting for facts) is decided before the
    insert, so that the insert records it: one write. The counts a quota takes are given
    back if the delivery exists already, if its customer withdrew consent, or if anything
    fails before it is recorded (the redelivered event counts again). A delivery to send
    now is inserted with its first channel's attempt begun, for the caller to send at
    once (attempt with begun): a withdrawal of consent marked after that insert is one
    marked after the attempt began, which the provider may have (as after start_attempt).

    A customer message whose customer withdrew consent at or after its cause (a
    withdrawal notify heard on its own queue, before or while it handles this event) is
    ended suppressed as soon as it is recorded: nothing sent, its quota counts given
    back, nobody told to phone instead (_withdrawn_after_insert). The recorded
    withdrawals are read once, AFTER the insert: consent_withdrawn records a withdrawal
    before it scans the held deliveries, so either its scan finds this one (inserted
    before the scan) or this read finds the withdrawal (recorded before the read);
    whichever ends it, and both may, it ends once. Read before the insert, a withdrawal
    recorded and scanned in between would miss it and it would be sent.
    `arrived` (case_id, event_type, facts): an event's facts to remember for a
    notification still to come (complete), written in the same round trip as the quotas,
    and what waits for them released (resumptions), the first in the same round trip as
    the insert. (the delivery or None, [(a resumption, the delivery it released or
    None)] for the caller to send: send_released())."""
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
    caused = _caused_at(notification, now)
    waits = notification.waits_for if settings.completion_wait > 0 else None
    limits = _limits(settings, notification, now) if route else []
    over, came_first = repository.take([(key, limit, expires_at) for key, limit, expires_at, _ in limits], now,
                                       waits=(notification.case_id, waits) if waits and route else None,
                                       arrived=arrived)
    counted = [key for (key, *_), refused in zip(limits, over) if not refused]
    over = {what: refused for (*_, what), refused in zip(limits, over)}
    try:
        delivery, outcome, counted_as, released, later = _record(
            repository, settings, notification, now, arrived, place, chosen, route, context, waits, over,
            came_first, counted, caused)
    except Exception:  # not recorded: the redelivered event counts again
        _give_back(repository, counted)
        raise
    ended = _withdrawn_after_insert(repository, notification, delivery, caused, now, counted)
    released += [(resumption, repository.resume(**resumption)) for resumption in later]
    if delivery is None:  # a redelivered event: sent, being sent, or waiting; counted once already
        _give_back(repository, counted)
        return None, released
    if ended:
        return None, released
    if not delivery["route"]:
        abandon(repository, settings, delivery, now, outcome.reason, publish)
        return None, released
    if outcome is not None:
        if counted_as:
            metrics.count(delivery["channel"], notification.template, counted_as)
        return None, released
    return delivery, released


def _record(repository, settings, notification, now, arrived, place, chosen, route, context, waits, over,
            came_first, counted, caused):
    """_accept's part between the quotas' counts (`counted`, extended by the provider's
    per-minute count) and the insert, included: (the delivery inserted or None, its
    Outcome (one reaching nobody: abandoned, by the caller), the metric it counts as,
    [(resumption, released delivery or None)] written with the insert, the resumptions
    still to write). `caused`: when its cause happened (_caused_at)."""
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
        # who the customer is to followup, and when what caused the message happened, so their
        # withdrawal of consent finds it and knows whether it covers it (None: staff)
        "member_id": _member_id(notification),
        "caused_at": caused if notification.audience is Audience.CUSTOMER else None,
        "locale": notification.locale, "urgent": notification.urgent, "route": route,
        "contents": contents, "unusable": unusable, "channel": route[0]["channel"] if route else None,
        # kept only while it may be rendered again (COMPLETIONS); never the complaint itself
        "waiting_for": waits, "context": {k: v for k, v in context.items() if k != "content"} if waits else None,
    }
    # what the event completes, found once its facts are remembered (take) for any still to come
    resumptions = _resumptions(repository, settings, *arrived, now) if arrived is not None else []
    if not route:
        _give_back(repository, counted)  # nothing will be sent: it takes no quota
        reason = "no reachable channel" if not unusable else \
            "no channel could carry it: " + "; ".join(f"{u['channel']}: {u['reason']}" for u in unusable)
        return repository.create(document, now), Outcome(S.ABANDONED, reason[:500]), None, [], resumptions
    outcome, counted_as = _outcome(settings, chosen, place, notification, document, now, over)
    begins = None
    if outcome is None:  # sent now: the provider's per-minute limit is counted as the attempt begins
        first = route[0]
        outcome = _over_provider_limit(repository, settings, first["channel"], first["address"], now, counted)
        begins, counted_as = (first["channel"], None) if outcome is None else (None, "deferred")
    if resumptions:  # one round trip for this insert and the first release
        delivery, resumed = repository.create_and_resume(document, now, resumptions[0], outcome=outcome,
                                                         start=begins)
        return delivery, outcome, counted_as, [(resumptions[0], resumed)], resumptions[1:]
    return repository.create(document, now, outcome=outcome, start=begins), outcome, counted_as, [], []


def _member_id(notification):
    """Who a customer is to followup (their withdrawal of consent names them by it); None for staff."""
    if notification.audience is not Audience.CUSTOMER:
        return None
    return notification.context.get("person", {}).get("member_id")


def _caused_at(notification, now):
    """When what caused a customer message happened, as its event says (Notification.caused_at:
    the complaint submitted, the appointment confirmed, the reminder due), not when notify
    got to the event. A kind whose event says no such time falls back to now, the
    delivery's created_at (as policy.caused_at does for deliveries recorded before it was kept)."""
    return notification.caused_at or now


def _withdrawn_after_insert(repository, notification, delivery, caused, now, counted):
    """The one read of a customer message's recorded withdrawals of consent, made after
    its insert (`delivery`: what the insert recorded, None if it existed already) and
    before anything is handed to a provider (_accept says why this order). Whether it
    was found covered and ended here: suppressed (_end_withdrawn), its quota counts
    (`counted`) given back. A redelivered event's delivery, which its first handling may
    not have got to check (it died, or this read failed, after the insert), is marked
    instead, as consent_withdrawn marks one a sender holds: whoever sends it next ends it
    (attempt). Staff and webhook copies: no read."""
    if notification.audience is not Audience.CUSTOMER:
        return False
    withdrawn_at = policy.withdrawn_since(
        repository.withdrawals_of(_member_id(notification), list(notification.customer_keys)), caused)
    if withdrawn_at is None:
        return False
    if delivery is None:
        repository.mark_withdrawn_made(notification.case_id, notification.kind, notification.recipient,
                                       withdrawn_at)
        return False
    if S(delivery["status"]) not in policy.NOT_SENT:  # recorded ended already (over the customer's quota)
        return False
    _give_back(repository, counted)
    _end_withdrawn(repository, delivery, withdrawn_at, now)
    return True


def _end_withdrawn(repository, delivery, withdrawn_at, now):
    """End a delivery just inserted whose customer withdrew consent, in the state the
    insert left it in. Leased to this sender (to send now, its first attempt begun; or
    reaching nobody): ended under that lease, the begun attempt taken back (the insert
    began it only so that a takeover would know the provider may have it; nothing was
    handed over). Recorded waiting (quiet hours, facts, a provider's limit): claimed as
    consent_withdrawn claims a held one, so that when its scan ends it too, only one of
    them does (and counts it); held by someone else meanwhile (a sender, its time come):
    marked, as that scan marks one, so that its holder ends it instead of sending it."""
    if delivery.get("lease_owner"):
        _suppress_withdrawn(repository, delivery, now, not_begun=True)
        return
    claimed = repository.claim_held(delivery, now)
    if claimed is not None:
        _suppress_withdrawn(repository, claimed, now)
    else:
        repository.mark_withdrawn(delivery, withdrawn_at)


def _give_back(repository, counted):
    """Take back the counts made for a delivery that will not be recorded as counted
    (it existed already, reaches nobody, or its recording failed); once."""
    for key in counted:
        repository.uncount(key)
    counted.clear()


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
    Each is taken by one conditional write that also records its new message; one that
    goes now is then attempted (start_attempt, as for any delivery claimed). (An event
    that tells someone itself does this in deliver, with `arrived`.)"""
    extra = kinds.COMPLETIONS[event_type](event)
    repository.remember_completion(event["case_id"], event_type, extra, clock())  # for one still to come
    for resumption in _resumptions(repository, settings, event["case_id"], event_type, extra, clock()):
        send_released(repository, channels, settings, resumption, repository.resume(**resumption), clock, publish)


def _resumptions(repository, settings, case_id, event_type, extra, now):
    """repository.resume's arguments for each delivery of the case waiting for
    `event_type`'s facts (`extra`): its message rendered again with them; released
    (queued, leased to the caller, to attempt: send_released) or still deferred by its
    quiet hours."""
    resumptions = []
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
        resumption = {"delivery": delivery, "event_type": event_type, "now": now,
                      "changes": {"contents": contents, "waiting_for": None, "context": None}}
        quiet_until = delivery.get("quiet_until")
        if quiet_until is not None and quiet_until > now:
            outcome = Outcome(S.DEFERRED, "quiet hours", quiet_until)
            resumptions.append({**resumption, "history": [_line(outcome, now, delivery)], "outcome": outcome})
            continue
        released_line = {"status": S.QUEUED.value, "at": now, "reason": f"{event_type} arrived",
                         "channel": delivery.get("channel")}
        resumptions.append({**resumption, "history": [released_line], "release": True})
    return resumptions


def send_released(repository, channels, settings, resumption, resumed, clock, publish):
    """After a resumption's write: the delivery it released attempted (`resumed`: the
    delivery as the write left it, None if another replica took it or consent was
    withdrawn meanwhile). Its attempt begins now, by start_attempt, like any claimed
    delivery's: however long this sender took to get here (another delivery's send
    before it), a takeover or a withdrawal of consent meanwhile stops it."""
    if resumed is not None and resumption.get("release"):
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


def attempt(repository, channels, settings, delivery, clock, publish, begun=False):
    """One attempt on the delivery's current channel (the caller holds its lease), then
    its outcome; a channel that cannot carry it hands over to the next at once.
    `begun`: the write that just inserted the delivery began its first attempt (accept),
    and nothing was sent since: it is sent without start_attempt. Anything else, held
    for however long, begins its attempt by start_attempt, which a lost lease or a
    withdrawal of consent refuses."""
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
        if not begun:
            counted = []
            limited = _over_provider_limit(repository, settings, channel, address, now, counted)
            if limited is not None:
                _defer(repository, delivery, now, limited.next_attempt_at, limited.reason)
                return
            started = repository.start_attempt(delivery, channel, now)
            if started is None or started.get("consent_withdrawn_at"):
                _give_back(repository, counted)  # no message to the provider
            if started is None:
                return  # the lease was lost: whoever took the delivery over sends it
            if started.get("consent_withdrawn_at"):  # marked while this sender held it: refused, not begun
                _suppress_withdrawn(repository, started, now)
                return
            delivery = started
        begun = False  # the next channel's attempt (after a failure) is begun by start_attempt
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
    by quiet hours, waiting for a retry or for facts, queued) and caused before they
    withdrew is ended, suppressed with the reason "consent withdrawn" in its log; sent
    ones are history, staff told about their cases are not touched. One a sender holds
    at this moment is marked, and its sender ends it instead of sending it (attempt),
    unless the provider has it already. The withdrawal is recorded BEFORE the scan: a
    message caused before it whose event notify handles later or at the same time (its
    own queue) reads the recorded withdrawals after its insert (_accept), so either this
    scan finds it or its read finds the withdrawal. A repeated event records nothing new
    and finds nothing left to stop. How many were stopped or marked."""
    withdrawal = policy.Withdrawal.of(event)
    keys = sorted(withdrawal.customer_keys)
    repository.record_withdrawal(withdrawal.member_id, keys, withdrawal.withdrawn_at)
    stopped = 0
    for delivery in repository.held_for_customer(withdrawal.member_id, keys):
        if not withdrawal.stops(delivery):
            continue
        claimed = repository.claim_held(delivery, now)
        if claimed is not None:
            stopped += _suppress_withdrawn(repository, claimed, now)
        elif not delivery.get("consent_withdrawn_at"):
            stopped += repository.mark_withdrawn(delivery, withdrawal.withdrawn_at)
    return stopped


def _suppress_withdrawn(repository, delivery, now, not_begun=False):
    """End a delivery this sender holds, suppressed for consent withdrawn; `not_begun`:
    its attempt, begun by the insert, never reached a provider and is taken back."""
    # suppressed, not abandoned: nobody should phone a customer who asked not to be contacted
    changes = {"waiting_for": None, "context": None}
    if not_begun:
        changes.update(attempts=0, channel_attempts=0, attempt_log=[])
    released = repository.finish(delivery, S.SUPPRESSED, now, reason=policy.CONSENT_WITHDRAWN, changes=changes)
    if released:
        _count_withdrawn(delivery)
    return released


def _count_withdrawn(delivery):
    """A delivery ended because its customer withdrew consent, in the metrics and the log."""
    metrics.count(delivery.get("channel"), delivery["template"], "suppressed")
    log.info("delivery stopped: consent withdrawn", extra={"case_id": delivery["case_id"], "kind": delivery["kind"]})
