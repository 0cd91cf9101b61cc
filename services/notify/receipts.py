"""Providers' delivery reports, read into one shape. Pure: no nameko, no pymongo.

- SMS (Aliyun SmsReport HTTP push): a JSON array of {out_id, success, err_code, err_msg,
  biz_id, report_time, ...}; out_id is our idempotency key (sent as OutId).
- WeChat official account (the server URL's event push): XML with Event
  TEMPLATESENDJOBFINISH, MsgID (the msgid the send returned) and Status ("success",
  "failed:user block", "failed: system failed"). Pushes are signed:
  signature = sha1 of the sorted (token, timestamp, nonce) joined."""
import hashlib
import hmac
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass


@dataclass(frozen=True)
class Report:
    match: dict               # which delivery: {"idempotency_key": ...} or {"provider_message_id": ...}
    delivered: bool
    code: str | None = None
    message: str | None = None
    provider_message_id: str | None = None
    reported_at: str | None = None


class NotAReport(ValueError):
    """A body that is not a delivery report we read (another event, or not XML)."""


def from_aliyun(report):
    return Report({"idempotency_key": report["out_id"]}, bool(report["success"]), report.get("err_code"),
                  report.get("err_msg"), report.get("biz_id"), report.get("report_time"))


def wechat_signature_valid(token, signature, timestamp, nonce):
    if not (token and signature and timestamp and nonce):
        return False
    expected = hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode()).hexdigest()
    return hmac.compare_digest(expected, signature)


def from_wechat(body):
    """The Report in a WeChat event push; NotAReport for any other event or body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # no entity expansion from the internet
        raise NotAReport("document type declarations are not accepted")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise NotAReport(f"not XML: {exc}") from None
    fields = {child.tag: (child.text or "").strip() for child in root}
    if fields.get("Event") != "TEMPLATESENDJOBFINISH" or not fields.get("MsgID"):
        raise NotAReport(f"not a template send report: {fields.get('Event') or fields.get('MsgType')}")
    status = fields.get("Status", "")
    return Report({"provider_message_id": fields["MsgID"]}, status == "success",
                  "success" if status == "success" else status.replace(" ", "") or "failed",
                  status, fields["MsgID"], fields.get("CreateTime"))
