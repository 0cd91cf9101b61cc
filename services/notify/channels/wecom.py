"""WeCom (企业微信) group robots: staff alerts to a store's or a region's group, in the
shape of the official webhook (https://qyapi.weixin.qq.com):

    POST /cgi-bin/webhook/send?key=<robot key>
    {"msgtype": "markdown", "markdown": {"content": "..."}}
    -> {"errcode": 0, "errmsg": "ok"}

A robot takes about 20 messages a minute (errcode 45009 beyond that): notify counts its
own sends per robot and minute before calling (services/notify/policy.py), and a 45009
still defers. Markdown content is at most 4096 bytes. Never for customers. The robot
key is a credential: it is the address, never logged."""
import json

import requests

from services.notify.channels import ChannelError, Failure, Receipt, http_failure

MAX_MARKDOWN_BYTES = 4096
PER_MINUTE = 20
RATE_LIMITED = frozenset({45009})
BUSY = frozenset({-1})


def fit(markdown):
    """The markdown cut to WeCom's byte limit on a character boundary."""
    data = markdown.encode("utf-8")
    if len(data) <= MAX_MARKDOWN_BYTES:
        return markdown
    return data[:MAX_MARKDOWN_BYTES - 3].decode("utf-8", "ignore") + "…"


class WeComRobotChannel:
    def __init__(self, api_base, timeout=10.0, session=None):
        self.api_base, self.timeout = api_base.rstrip("/"), float(timeout)
        self.session = session or requests.Session()

    def send(self, outgoing):
        body = {"msgtype": "markdown", "markdown": {"content": fit(outgoing.content.text)}}
        try:
            response = self.session.post(
                f"{self.api_base}/cgi-bin/webhook/send", params={"key": outgoing.address},
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ChannelError(Failure.TRANSIENT, type(exc).__name__, "WeCom unreachable") from None
        try:
            answer = response.json()
        except ValueError:
            raise ChannelError(http_failure(response.status_code), f"http_{response.status_code}",
                               "no JSON answer", response=response.text) from None
        code = answer.get("errcode", 0)
        shown = json.dumps({"errcode": code, "errmsg": answer.get("errmsg")}, ensure_ascii=False)
        if response.status_code == 200 and code == 0:
            return Receipt(response=shown)
        if code in RATE_LIMITED:
            failure = Failure.THROTTLED
        elif code in BUSY or response.status_code >= 500:
            failure = Failure.TRANSIENT
        else:  # 93000 invalid robot key, 40058 bad content...
            failure = Failure.PERMANENT
        raise ChannelError(failure, code, answer.get("errmsg", ""), response=shown)
