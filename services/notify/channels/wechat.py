"""WeChat official-account messages to a customer's openid, in the shape of the
official API (https://api.weixin.qq.com):

- access token: GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..
  -> {"access_token": "..", "expires_in": 7200}; kept per process and fetched again
  shortly before it expires;
- template message: POST /cgi-bin/message/template/send?access_token=..
  {"touser", "template_id", "url", "client_msg_id", "data": {"thing1": {"value": ..}}}
  -> {"errcode": 0, "errmsg": "ok", "msgid": 200228332};
- subscription message (mode "subscribe"): POST /cgi-bin/message/subscribe/bizsend
  with {"touser", "template_id", "page", "data"} (the customer's consent is WeChat's).

The errcodes that matter: 40001/40014/42001 (the token is invalid or expired: fetch a
new one and retry once), 43101 (the user refused messages: never retried, the next
channel takes over), 45009/45047 (rate or quota limit: defer), -1 (system busy: retry).
client_msg_id carries our idempotency key: WeChat drops a repeat within its window.
The app secret and the token are never logged or stored."""
import json
import threading
import time

import requests

from services.notify.channels import ChannelError, Failure, Receipt, http_failure

TOKEN_EXPIRED = frozenset({40001, 40014, 42001})
USER_REFUSED = frozenset({43101})
RATE_LIMITED = frozenset({45009, 45047})
BUSY = frozenset({-1})
# fetch a new token this long before WeChat says the old one expires
TOKEN_MARGIN_SECONDS = 300


class AccessToken:
    """One official account's access token, shared by the workers of a process."""

    def __init__(self, fetch, clock=time.monotonic):
        self._fetch, self._clock, self._lock = fetch, clock, threading.Lock()
        self._token, self._expires_at = None, 0.0

    def get(self, refresh=False, stale=None):
        """The current token; a new one when `refresh` and the current one is still
        `stale` (another worker may have refreshed it meanwhile)."""
        with self._lock:
            expired = self._clock() >= self._expires_at
            if self._token is None or expired or (refresh and self._token == stale):
                token, expires_in = self._fetch()
                self._token = token
                self._expires_at = self._clock() + max(int(expires_in) - TOKEN_MARGIN_SECONDS, 60)
            return self._token


class WeChatChannel:
    def __init__(self, api_base, app_id, app_secret, mode="template", timeout=10.0, session=None):
        self.api_base, self.app_id, self._secret = api_base.rstrip("/"), app_id, app_secret
        self.mode, self.timeout = mode, float(timeout)
        self.session = session or requests.Session()
        self.token = AccessToken(self._fetch_token)

    def _call(self, method, path, **kwargs):
        try:
            response = self.session.request(method, f"{self.api_base}{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ChannelError(Failure.TRANSIENT, type(exc).__name__, "WeChat API unreachable") from None
        try:
            return response.json()
        except ValueError:
            raise ChannelError(http_failure(response.status_code), f"http_{response.status_code}",
                               "no JSON answer", response=response.text) from None

    def _fetch_token(self):
        answer = self._call("GET", "/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": self.app_id, "secret": self._secret})
        if not answer.get("access_token"):
            code = answer.get("errcode", "no_token")
            # a wrong appid/secret (40013, 40125) or an IP not whitelisted (40164): an
            # operator must act; the message waits for them
            raise ChannelError(Failure.TRANSIENT, code, "access token refused",
                               response=json.dumps({"errcode": code, "errmsg": answer.get("errmsg")}))
        return answer["access_token"], answer.get("expires_in", 7200)

    def body(self, outgoing):
        content = outgoing.content
        data = {name: {"value": value} for name, value in content.params.items()}
        if self.mode == "subscribe":
            return {"touser": outgoing.address, "template_id": content.template,
                    "page": content.link, "data": data}
        return {"touser": outgoing.address, "template_id": content.template, "url": content.link,
                "client_msg_id": outgoing.idempotency_key, "data": data}

    def send(self, outgoing):
        if not outgoing.content.template:
            raise ChannelError(Failure.PERMANENT, "no_template_id", "no WeChat template for this kind")
        path = "/cgi-bin/message/subscribe/bizsend" if self.mode == "subscribe" \
            else "/cgi-bin/message/template/send"
        payload = json.dumps(self.body(outgoing), ensure_ascii=False).encode()
        token = self.token.get()
        for attempt in range(2):
            answer = self._call("POST", path, params={"access_token": token}, data=payload,
                                headers={"Content-Type": "application/json; charset=utf-8"})
            code = answer.get("errcode", 0)
            if code in TOKEN_EXPIRED and attempt == 0:
                token = self.token.get(refresh=True, stale=token)
                continue
            break
        shown = json.dumps({k: answer.get(k) for k in ("errcode", "errmsg", "msgid")}, ensure_ascii=False)
        if code == 0:
            msgid = answer.get("msgid")
            return Receipt(request_id=str(msgid) if msgid is not None else None,
                           provider_message_id=str(msgid) if msgid is not None else None, response=shown)
        if code in USER_REFUSED:
            failure = Failure.PERMANENT
        elif code in RATE_LIMITED:
            failure = Failure.THROTTLED
        elif code in BUSY or code in TOKEN_EXPIRED:
            failure = Failure.TRANSIENT
        else:  # 40003 bad openid, 40037 bad template id, 47003 bad data field...
            failure = Failure.PERMANENT
        raise ChannelError(failure, code, answer.get("errmsg", ""), response=shown)
