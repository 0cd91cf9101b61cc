"""SMS through an HTTP gateway. The provider interface is `send(outgoing) -> Receipt`;
the concrete adapter follows Aliyun Dysms `SendSms` (API version 2017-05-25, RPC style):

    GET <endpoint>?AccessKeyId=..&Action=SendSms&Format=JSON&OutId=..&PhoneNumbers=..
        &RegionId=..&SignName=..&SignatureMethod=HMAC-SHA1&SignatureNonce=..
        &SignatureVersion=1.0&TemplateCode=..&TemplateParam={"name":..}&Timestamp=..
        &Version=2017-05-25&Signature=..
    Signature = base64(HMAC-SHA1(secret + "&", "GET&%2F&" + pct(sorted canonical query)))
    -> {"Code": "OK", "Message": "OK", "RequestId": "...", "BizId": "..."}

Template parameters are a JSON object with named keys (the registry's own names, see
services/notify/templates.py). A send is not idempotent at Aliyun: OutId carries our
idempotency key so a repeat is at least recognisable in its records, and we deduplicate
on our side (one delivery per logical notification). The access key secret signs, and
is never sent, logged or stored."""
import base64
import hashlib
import hmac
import json
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import requests

from closeloop_shared.contacts import e164
from services.notify.channels import ChannelError, Failure, Receipt, http_failure

API_VERSION = "2017-05-25"
# Aliyun's codes that no retry can fix (the message, the number or the account is wrong)
# and the flow-control ones (too many to this number, or per second: try later).
PERMANENT_CODES = frozenset({
    "isv.MOBILE_NUMBER_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.INVALID_PARAMETERS",
    "isv.SMS_TEMPLATE_ILLEGAL", "isv.SMS_SIGNATURE_ILLEGAL", "isv.PARAM_LENGTH_LIMIT",
    "isv.PARAM_NOT_SUPPORT_URL", "isv.INVALID_JSON_PARAM", "isv.BLACK_KEY_CONTROL_LIMIT",
    "isv.DENY_IP_RANGE", "isv.MOBILE_COUNT_OVER_LIMIT", "isv.SMS_CONTENT_ILLEGAL",
    "isv.SMS_SIGN_ILLEGAL", "isv.TEMPLATE_PARAMS_ILLEGAL",
})
THROTTLE_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL",
                            "Throttling.User", "Throttling"})


def percent(value):
    """Aliyun's POP percent-encoding: RFC 3986 unreserved characters kept, space as %20."""
    return quote(str(value), safe="~")


def signature(params, secret, method="GET"):
    canonical = "&".join(f"{percent(k)}={percent(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{percent('/')}&{percent(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def national_mobile(phone):
    """An E.164 mainland mobile as Aliyun takes it (11 digits); others with their
    country code (00 prefix dropped), as its international route expects. ValueError
    for an address that is no valid number. (No other country code begins with 86.)"""
    number = e164(phone)
    return number[len("+86"):] if number.startswith("+86") else number[len("+"):]


class AliyunSmsChannel:
    def __init__(self, endpoint, access_key_id, access_key_secret, sign_name,
                 region="cn-hangzhou", timeout=10.0, session=None):
        self.endpoint, self.access_key_id = endpoint, access_key_id
        self._secret, self.sign_name, self.region = access_key_secret, sign_name, region
        self.timeout, self.session = float(timeout), session or requests.Session()

    def request_params(self, outgoing, phone_numbers, now=None):
        """The signed query of a SendSms request; `phone_numbers` as Aliyun takes it (national_mobile)."""
        content = outgoing.content
        params = {
            "AccessKeyId": self.access_key_id, "Action": "SendSms", "Format": "JSON",
            "OutId": outgoing.idempotency_key, "PhoneNumbers": phone_numbers,
            "RegionId": self.region, "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1", "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0", "TemplateCode": content.template,
            "TemplateParam": json.dumps(content.params, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
        }
        params["Signature"] = signature(params, self._secret)
        return params

    def send(self, outgoing):
        if not outgoing.content.template:
            raise ChannelError(Failure.PERMANENT, "no_template_code", "no SMS template code for this kind")
        # the number alone: a ValueError from signing or encoding the request is our own
        # fault, not the address's, and must not fail the delivery as invalid_number
        try:
            phone_numbers = national_mobile(outgoing.address)
        except ValueError as exc:  # no valid number: Aliyun would refuse it (isv.MOBILE_NUMBER_ILLEGAL)
            raise ChannelError(Failure.PERMANENT, "invalid_number", str(exc)) from None
        params = self.request_params(outgoing, phone_numbers)
        try:
            response = self.session.get(self.endpoint, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ChannelError(Failure.TRANSIENT, type(exc).__name__, "gateway unreachable") from None
        try:
            answer = response.json()
        except ValueError:
            raise ChannelError(http_failure(response.status_code), f"http_{response.status_code}",
                               "no JSON answer", response=response.text) from None
        code, request_id = answer.get("Code"), answer.get("RequestId")
        if response.status_code == 200 and code == "OK":
            return Receipt(request_id=request_id, provider_message_id=answer.get("BizId"),
                           response=json.dumps(answer, ensure_ascii=False))
        if code in THROTTLE_CODES:
            failure = Failure.THROTTLED
        elif code in PERMANENT_CODES:
            failure = Failure.PERMANENT
        elif response.status_code != 200:  # a 5xx, or SignatureDoesNotMatch with its 400
            failure = http_failure(response.status_code)
        else:  # isp.SYSTEM_ERROR, isv.AMOUNT_NOT_ENOUGH, a code we do not know: try later
            failure = Failure.TRANSIENT
        raise ChannelError(failure, code or f"http_{response.status_code}", answer.get("Message", ""),
                           request_id=request_id, response=json.dumps(answer, ensure_ascii=False))
