"""Outbound webhooks to other systems, signed as in Standard Webhooks
(https://www.standardwebhooks.com):

    webhook-id: <the notification's idempotency key, the same on every retry>
    webhook-timestamp: <Unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")> [v1,<...>]

Secrets are "whsec_" + base64 of the key. Two secrets may be active at once (rotation):
each signs, and a receiver accepts any of them. Short outages are ridden out here with
tenacity (a few tries, exponential backoff); longer ones go back to notify's retry timer,
which disables an endpoint after persistent failure. Secrets are never logged."""
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import requests
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from services.notify.channels import ChannelError, Failure, Receipt, http_failure

SECRET_PREFIX = "whsec_"


def secret_key(secret):
    return base64.b64decode(secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret)


def sign(secrets, message_id, timestamp, body):
    """The webhook-signature header: one v1 signature per active secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets)


def verify(secrets, headers, body, tolerance=300, now=None):
    """A receiver's check (used by tests and offered to integrators): any v1 signature
    made by any of `secrets`, and a timestamp within `tolerance` seconds."""
    message_id, timestamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not message_id or not timestamp or abs((now or time.time()) - int(timestamp)) > tolerance:
        return False
    expected = set(sign(secrets, message_id, timestamp, body).split())
    return any(hmac.compare_digest(given, wanted)
               for given in headers.get("webhook-signature", "").split() for wanted in expected)


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    url: str
    secrets: tuple          # one or two "whsec_..." secrets
    kinds: tuple = ("*",)   # which notification kinds it receives

    def wants(self, kind):
        return "*" in self.kinds or kind in self.kinds


def _retryable(exc):
    return isinstance(exc, ChannelError) and exc.failure is Failure.TRANSIENT


class WebhookChannel:
    def __init__(self, endpoints, timeout=10.0, tries=3, backoff=0.5, session=None, clock=time.time):
        self.endpoints = {e.endpoint_id: e for e in endpoints}
        self.timeout, self.session, self.clock = float(timeout), session or requests.Session(), clock
        self.send = retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(tries),
                          wait=wait_exponential(multiplier=backoff, max=backoff * 8), reraise=True)(self._post)

    def _post(self, outgoing):
        endpoint = self.endpoints.get(outgoing.address)
        if endpoint is None:
            raise ChannelError(Failure.PERMANENT, "unknown_endpoint", "the webhook endpoint is not configured")
        body = json.dumps(outgoing.content.params, ensure_ascii=False, sort_keys=True).encode()
        timestamp = str(int(self.clock()))
        headers = {"webhook-id": outgoing.idempotency_key, "webhook-timestamp": timestamp,
                   "webhook-signature": sign(endpoint.secrets, outgoing.idempotency_key, timestamp, body),
                   "Content-Type": "application/json"}
        try:
            response = self.session.post(endpoint.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ChannelError(Failure.TRANSIENT, type(exc).__name__, "receiver unreachable") from None
        if 200 <= response.status_code < 300:
            return Receipt(request_id=outgoing.idempotency_key, response=f"{response.status_code}")
        raise ChannelError(http_failure(response.status_code), f"http_{response.status_code}",
                           "receiver refused", response=response.text)
