"""Notify entrypoints: one message per (case, kind, recipient), whatever the redeliveries."""
import logging
from datetime import timedelta

from nameko.dependency_providers import Config

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.bus import event_handler, timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.http import http, json_response, required_arg
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import OpsEndpoints
from services.notify import messages
from services.notify.mailer import Mailer
from services.notify.metrics import NOTIFICATIONS
from services.notify.repository import DeliveryRepository

log = logging.getLogger(__name__)
MAX_RETRIES_PER_TICK = 50
# Retries double from the configured interval; after this many attempts (about 4 h with
# the 30 s default) the delivery is abandoned and shows as such in /v1/deliveries.
MAX_ATTEMPTS = 10


class NotifyService(OpsEndpoints):
    name = ev.NOTIFY

    deliveries = Repository(DeliveryRepository)
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

    @timer(keys.NOTIFY_RETRY_INTERVAL_SECONDS)
    def retry_failed(self):
        for _ in range(MAX_RETRIES_PER_TICK):
            delivery = self.deliveries.claim_retry(utcnow())
            if delivery is None:
                break
            self._send(delivery)

    @http("GET", "/v1/deliveries")
    def list_deliveries(self, request):
        case_id = required_arg(request, "case_id")
        found = self.deliveries.for_case(case_id)
        return json_response(200, {"deliveries": [
            {k: v for k, v in d.items() if k not in ("_id", "body")} for d in found]})

    def _deliver(self, message):
        now = utcnow()
        delivery = self.deliveries.claim_new(message, now)
        if delivery is None:
            return  # a redelivered event: already sent or being sent
        if message.recipient is None:
            # Recorded, so ops see who could not be told; SMS is not wired up yet.
            self.deliveries.finish(delivery["_id"], "undeliverable", now, error="no e-mail address")
            NOTIFICATIONS.labels(message.kind.split(":")[0], "undeliverable").inc()
            return
        self._send(delivery)

    def _send(self, delivery):
        kind = delivery["kind"].split(":")[0]
        key = f"{delivery['case_id']}:{delivery['kind']}"
        try:
            self.mailer.send(delivery["recipient"], delivery["subject"], delivery["body"], key)
        except Exception as exc:  # SMTP down or refusing: keep it for the retry timer
            now, attempts = utcnow(), delivery["attempts"]
            if attempts >= MAX_ATTEMPTS:
                self.deliveries.finish(delivery["_id"], "abandoned", now, error=str(exc)[:500])
                NOTIFICATIONS.labels(kind, "abandoned").inc()
                log.error("delivery abandoned", extra={"case_id": delivery["case_id"], "kind": kind})
                return
            interval = setting(self.config, keys.NOTIFY_RETRY_INTERVAL_SECONDS)
            retry_in = timedelta(seconds=interval * 2 ** (attempts - 1))
            self.deliveries.finish(delivery["_id"], "failed", now, error=str(exc)[:500],
                                   next_attempt_at=now + retry_in)
            NOTIFICATIONS.labels(kind, "failed").inc()
            log.warning("delivery failed", extra={"case_id": delivery["case_id"], "kind": kind,
                                                  "error": str(exc)[:200]})
            return
        self.deliveries.finish(delivery["_id"], "sent", utcnow())
        NOTIFICATIONS.labels(kind, "sent").inc()
