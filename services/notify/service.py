"""Notify entrypoints: one message per (case, kind, recipient), whatever the redeliveries."""
import logging
from datetime import timedelta

from nameko.dependency_providers import Config
from nameko.timer import timer as plain_timer

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.access import scope_of
from closeloop_shared.auth import CurrentOrganisation
from closeloop_shared.bus import event_handler, timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.contract import Permission as P
from closeloop_shared.http import http, json_response, required_arg, requires
from closeloop_shared.logs import scrub
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import AuditsPersonalData, FollowsOrganisation, OpsEndpoints
from services.notify import messages, quota
from services.notify.mailer import Mailer
from services.notify.metrics import NOTIFICATIONS
from services.notify.repository import DeliveryRepository, identity
from services.notify.schemas import OPENAPI

log = logging.getLogger(__name__)
MAX_RETRIES_PER_TICK = 50
# Retries double from the configured interval; after this many attempts (about 4 h with
# the 30 s default) the delivery is abandoned and shows as such in /v1/deliveries.
MAX_ATTEMPTS = 10
# How often to look for deliveries whose sender died (their 10 s lease ran out).
TAKEOVER_SCAN_SECONDS = 2


class NotifyService(OpsEndpoints, FollowsOrganisation, AuditsPersonalData):
    name = ev.NOTIFY
    openapi_spec = OPENAPI

    deliveries = Repository(DeliveryRepository)
    org = CurrentOrganisation()
    mailer = Mailer()
    config = Config()

    @event_handler(ev.INTAKE, ev.CASE_SUBMITTED)
    def on_case_submitted(self, payload):
        self._deliver(messages.acknowledgement(ev.load(ev.CASE_SUBMITTED, payload)))

    @event_handler(ev.ROUTING, ev.CASE_ROUTED)
    def on_case_routed(self, payload):
        self._deliver(messages.assignment(ev.load(ev.CASE_ROUTED, payload)))

    @event_handler(ev.ROUTING, ev.CASE_ESCALATED)
    def on_case_escalated(self, payload):
        self._deliver(messages.escalation(ev.load(ev.CASE_ESCALATED, payload)))

    @event_handler(ev.FOLLOWUP, ev.FOLLOWUP_DUE)
    def on_followup_due(self, payload):
        self._deliver(messages.revisit_due(ev.load(ev.FOLLOWUP_DUE, payload)))

    @event_handler(ev.ROUTING, ev.CASE_REASSIGNED)
    def on_case_reassigned(self, payload):
        self._deliver(messages.reassignment(ev.load(ev.CASE_REASSIGNED, payload)))

    @timer(keys.NOTIFY_RETRY_INTERVAL_SECONDS)
    def retry_failed(self):
        for _ in range(MAX_RETRIES_PER_TICK):
            delivery = self.deliveries.claim_retry(utcnow())
            if delivery is None:
                break
            self._send(delivery)

    @plain_timer(interval=TAKEOVER_SCAN_SECONDS)
    def take_over_stalled(self):
        """Deliveries whose sender died mid-send: their lease ran out (seconds after the
        death), so they are sent again, with the same Message-ID, marked possible_repeat."""
        for _ in range(MAX_RETRIES_PER_TICK):
            delivery = self.deliveries.claim_stalled(utcnow())
            if delivery is None:
                break
            self._send(delivery)

    @http("GET", "/v1/deliveries", access=requires(P.DELIVERY_READ))
    def list_deliveries(self, request):
        case_id = required_arg(request, "case_id")
        scope = scope_of(request.principal, self.org)
        found = [d for d in self.deliveries.for_case(case_id) if scope.allows(d.get("store_id"))]
        self.personal_data_reads.record(request.principal, "delivery", [str(d["_id"]) for d in found])
        return json_response(200, {"deliveries": [messages.delivery_view(d, request.principal) for d in found]})

    def _deliver(self, message):
        now = utcnow()
        delivery = self.deliveries.claim_new(message, now)
        if delivery is None:
            return  # a redelivered event: already sent, or being sent under a lease
        if message.recipient is None:
            # Recorded, so ops see who could not be told; SMS is not wired up yet.
            self.deliveries.finish(delivery, "undeliverable", now, error="no e-mail address")
            NOTIFICATIONS.labels(message.kind.split(":")[0], "undeliverable").inc()
            return
        if quota.capped(message.kind):
            limit = setting(self.config, keys.NOTIFY_CUSTOMER_DAILY_QUOTA)
            if self.deliveries.count_for_recipient(*quota.day_counter(message.recipient, now)) > limit:
                # Kept in the log, not sent: a flood of submissions naming one address.
                self.deliveries.finish(delivery, "suppressed", now,
                                       error=f"over the daily quota of {limit} messages to this recipient")
                NOTIFICATIONS.labels(message.kind.split(":")[0], "suppressed").inc()
                return
        self._send(delivery)

    def _send(self, delivery):
        """One attempt, under the delivery's lease (renewed while the provider works).
        Dying between the provider taking the message and finish() recording it is the
        only way to send twice; the takeover marks it (possible_repeat)."""
        kind = delivery["kind"].split(":")[0]
        key = f"{delivery['case_id']}:{delivery['kind']}"
        idempotency_key, message_id = identity(delivery["case_id"], delivery["kind"], delivery["recipient"])
        try:
            with self.deliveries.hold(delivery):
                self.mailer.send(delivery["recipient"], delivery["subject"], delivery["body"], key,
                                 message_id, idempotency_key)
        except Exception as exc:  # SMTP down or refusing: keep it for the retry timer
            now, attempts = utcnow(), delivery["attempts"]
            if attempts >= MAX_ATTEMPTS:
                self.deliveries.finish(delivery, "abandoned", now, error=scrub(str(exc))[:500])
                NOTIFICATIONS.labels(kind, "abandoned").inc()
                log.error("delivery abandoned", extra={"case_id": delivery["case_id"], "kind": kind})
                return
            interval = setting(self.config, keys.NOTIFY_RETRY_INTERVAL_SECONDS)
            retry_in = timedelta(seconds=interval * 2 ** (attempts - 1))
            self.deliveries.finish(delivery, "failed", now, error=scrub(str(exc))[:500],
                                   next_attempt_at=now + retry_in)
            NOTIFICATIONS.labels(kind, "failed").inc()
            log.warning("delivery failed", extra={"case_id": delivery["case_id"], "kind": kind,
                                                  "error": scrub(str(exc))[:200]})
            return
        self.deliveries.finish(delivery, "sent", utcnow())
        NOTIFICATIONS.labels(kind, "sent").inc()
