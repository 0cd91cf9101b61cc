"""Notify entrypoints: one logical notification per (case, kind, recipient), whatever the
redeliveries, by the first channel that reaches the person (services/notify/flows.py)."""
import hmac
import logging

from nameko.dependency_providers import Config
from nameko.events import EventDispatcher
from nameko.extensions import DependencyProvider
from nameko.timer import timer as plain_timer
from werkzeug.wrappers import Response

from closeloop_shared import config as keys
from closeloop_shared import events as ev
from closeloop_shared.access import scope_of
from closeloop_shared.auth import CurrentOrganisation
from closeloop_shared.bus import event_handler, timer
from closeloop_shared.clock import utcnow
from closeloop_shared.config import setting
from closeloop_shared.contract import NotifyChannel
from closeloop_shared.contract import Permission as P
from closeloop_shared.http import (
    PUBLIC, HttpError, http, json_response, load_or_422, read_json, required_arg, requires)
from closeloop_shared.mongo import Repository
from closeloop_shared.ops import AuditsPersonalData, FollowsOrganisation, OpsEndpoints
from services.notify import flows, receipts, views
from services.notify.configuration import build_channels, load_settings
from services.notify.kinds import contact_key
from services.notify.repository import DeliveryRepository
from services.notify.schemas import OPENAPI, RECEIPTS, SMS_REPORTS_IN, WECHAT_RECEIPTS

log = logging.getLogger(__name__)
MAX_SENDS_PER_TICK = 50
# How often to look for deliveries whose sender died (their 10 s lease ran out).
TAKEOVER_SCAN_SECONDS = 2


class Channels(DependencyProvider):
    """The configured channel adapters, built once per container (a WeChat access token
    is then shared by all workers), and notify's settings."""

    def setup(self):
        self.channels = build_channels(self.container.config)
        self.settings = load_settings(self.container.config)

    def get_dependency(self, worker_ctx):
        return self


class NotifyService(OpsEndpoints, FollowsOrganisation, AuditsPersonalData):
    name = ev.NOTIFY
    openapi_spec = OPENAPI

    deliveries = Repository(DeliveryRepository)
    org = CurrentOrganisation()
    providers = Channels()
    dispatch = EventDispatcher()
    config = Config()

    @event_handler(ev.INTAKE, ev.CASE_SUBMITTED)
    def on_case_submitted(self, payload):
        self._deliver(ev.CASE_SUBMITTED, payload)

    @event_handler(ev.ROUTING, ev.CASE_ROUTED)
    def on_case_routed(self, payload):
        self._deliver(ev.CASE_ROUTED, payload)

    @event_handler(ev.ROUTING, ev.CASE_ESCALATED)
    def on_case_escalated(self, payload):
        self._deliver(ev.CASE_ESCALATED, payload)

    @event_handler(ev.FOLLOWUP, ev.FOLLOWUP_DUE)
    def on_followup_due(self, payload):
        self._deliver(ev.FOLLOWUP_DUE, payload)

    @event_handler(ev.ROUTING, ev.CASE_REASSIGNED)
    def on_case_reassigned(self, payload):
        self._deliver(ev.CASE_REASSIGNED, payload)

    @event_handler(ev.ROUTING, ev.CASE_DEADLINE_APPROACHED)
    def on_case_deadline_approached(self, payload):
        self._deliver(ev.CASE_DEADLINE_APPROACHED, payload)

    @event_handler(ev.FOLLOWUP, ev.APPOINTMENT_CONFIRMED)
    def on_appointment_confirmed(self, payload):
        self._deliver(ev.APPOINTMENT_CONFIRMED, payload)

    @event_handler(ev.FOLLOWUP, ev.APPOINTMENT_CHANGE_REQUESTED)
    def on_appointment_change_requested(self, payload):
        self._deliver(ev.APPOINTMENT_CHANGE_REQUESTED, payload)

    @event_handler(ev.FOLLOWUP, ev.APPOINTMENT_REMINDER_DUE)
    def on_appointment_reminder_due(self, payload):
        self._deliver(ev.APPOINTMENT_REMINDER_DUE, payload)

    @event_handler(ev.REPORTING, ev.WEEKLY_DIGEST_READY)
    def on_weekly_digest_ready(self, payload):
        self._deliver(ev.WEEKLY_DIGEST_READY, payload)

    @event_handler(ev.FOLLOWUP, ev.CUSTOMER_CONSENT_WITHDRAWN)
    def on_customer_consent_withdrawn(self, payload):
        """What notify still holds for the customer is never sent (flows.consent_withdrawn).
        How many deliveries it stopped (for a waiter on the worker's result: a repeat stops none)."""
        stopped = flows.consent_withdrawn(self.deliveries, ev.load(ev.CUSTOMER_CONSENT_WITHDRAWN, payload), utcnow())
        log.info("consent withdrawn", extra={"deliveries_stopped": stopped})
        return stopped

    @timer(keys.NOTIFY_RETRY_INTERVAL_SECONDS)
    def send_due(self):
        """Deliveries whose time has come (quiet hours over, retries due), in order; and
        notification_failed events a crash left in the outbox."""
        flows.send_due(self.deliveries, self.providers.channels, self.providers.settings, utcnow,
                       self.dispatch, MAX_SENDS_PER_TICK)
        self.deliveries.outbox.relay(self.dispatch, utcnow())

    @plain_timer(interval=TAKEOVER_SCAN_SECONDS)
    def take_over_stalled(self):
        """Deliveries whose sender died mid-send: their lease ran out (seconds after the
        death), so they are sent again, with the same identity, marked possible_repeat."""
        flows.take_over_stalled(self.deliveries, self.providers.channels, self.providers.settings, utcnow,
                                self.dispatch, MAX_SENDS_PER_TICK)

    @http("GET", "/v1/deliveries", access=requires(P.DELIVERY_READ))
    def list_deliveries(self, request):
        return self._visible(request, self.deliveries.for_case(required_arg(request, "case_id")))

    @http("GET", "/v1/deliveries/by-customer", access=requires(P.DELIVERY_READ))
    def list_customer_deliveries(self, request):
        """Everything sent to one customer (by their phone, e-mail or WeChat openid), in
        the caller's stores."""
        return self._visible(request, self.deliveries.for_customer(contact_key(required_arg(request, "contact"))))

    @http("POST", RECEIPTS, access=PUBLIC)
    def receive_sms_receipts(self, request):
        """The SMS gateway's delivery receipts (Aliyun SmsReport push). The gateway holds
        no credential of ours but the token in the URL it was given; a wrong or missing
        token, or receipts not configured, is a plain 404."""
        expected = setting(self.config, keys.NOTIFY_SMS_RECEIPT_TOKEN)
        given = request.args.get("token") or ""
        if not expected or not hmac.compare_digest(given.encode(), str(expected).encode()):
            raise HttpError(404, "not_found", "no such resource")
        reports = load_or_422(SMS_REPORTS_IN, read_json(request, setting(self.config, keys.MAX_BODY_BYTES), list))
        applied = flows.record_receipts(self.deliveries, self.providers.channels, self.providers.settings,
                                        NotifyChannel.SMS.value, [receipts.from_aliyun(r) for r in reports],
                                        utcnow, self.dispatch)
        log.info("sms receipts", extra={"received": len(reports), "applied": applied})
        return json_response(200, {"code": 0, "msg": "成功"})

    @http("GET", WECHAT_RECEIPTS, access=PUBLIC)
    def verify_wechat_server(self, request):
        """WeChat's check of the server URL: echo `echostr` if the signature is ours."""
        if not self._signed_by_wechat(request):
            raise HttpError(404, "not_found", "no such resource")
        return Response(request.args.get("echostr", ""), mimetype="text/plain")

    @http("POST", WECHAT_RECEIPTS, access=PUBLIC)
    def receive_wechat_events(self, request):
        """The official account's event push: template-message send reports make the
        message delivered, or move it to the next channel (blocked by the user, failed);
        other events are acknowledged and ignored."""
        if not self._signed_by_wechat(request):
            raise HttpError(404, "not_found", "no such resource")
        limit = setting(self.config, keys.MAX_BODY_BYTES)
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            raise HttpError(413, "payload_too_large", f"body exceeds {limit} bytes")
        try:
            report = receipts.from_wechat(body)
        except receipts.NotAReport:
            return Response("success", mimetype="text/plain")  # WeChat retries anything else
        flows.record_receipts(self.deliveries, self.providers.channels, self.providers.settings,
                              NotifyChannel.WECHAT.value, [report], utcnow, self.dispatch)
        return Response("success", mimetype="text/plain")

    def _signed_by_wechat(self, request):
        return receipts.wechat_signature_valid(
            setting(self.config, keys.NOTIFY_WECHAT_SERVER_TOKEN), request.args.get("signature"),
            request.args.get("timestamp"), request.args.get("nonce"))

    def _visible(self, request, deliveries):
        scope = scope_of(request.principal, self.org)
        found = [d for d in deliveries if scope.allows(d.get("store_id"))]
        self.personal_data_reads.record(request.principal, "delivery", [str(d["_id"]) for d in found])
        return json_response(200, {"deliveries": [views.delivery_view(d, request.principal) for d in found]})

    def _deliver(self, event_type, payload):
        flows.handle_event(self.deliveries, self.providers.channels, self.providers.settings, self.org,
                           event_type, ev.load(event_type, payload), utcnow, self.dispatch)
