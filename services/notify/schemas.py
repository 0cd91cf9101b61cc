"""notify's HTTP contract: the delivery log's reads, and the SMS gateway's delivery
receipts (the one body it takes)."""
from marshmallow import EXCLUDE, Schema, fields

from closeloop_shared import openapi


class SmsReportIn(Schema):
    """One delivery receipt as Aliyun's SmsReport HTTP push sends it (a JSON array of
    these). Fields the provider adds later are ignored."""

    class Meta:
        unknown = EXCLUDE

    out_id = fields.String(required=True)        # our idempotency key, sent as OutId
    success = fields.Boolean(required=True)
    err_code = fields.String(load_default=None, allow_none=True)  # DELIVERED, or why not
    err_msg = fields.String(load_default=None, allow_none=True)
    biz_id = fields.String(load_default=None, allow_none=True)
    report_time = fields.String(load_default=None, allow_none=True)
    phone_number = fields.String(load_default=None, allow_none=True)


SMS_REPORTS_IN = SmsReportIn(many=True)

RECEIPTS = "/v1/receipts/sms"
WECHAT_RECEIPTS = "/v1/receipts/wechat"
WECHAT_SIGNED = [dict(openapi.query_param(name, f"WeChat's {name} (signature = sha1 of the sorted server token, "
                                                "timestamp and nonce)"), required=True)
                 for name in ("signature", "timestamp", "nonce")]
OPENAPI = openapi.build("Closeloop notify", {
    "/v1/deliveries": {"get": {
        "summary": "The delivery log of a case: each notification's status history, channel and "
                   "attempts with the provider's answers and request ids; addresses only for roles "
                   "that may see personal data",
        "parameters": [dict(openapi.query_param("case_id", "case id"), required=True)],
        "responses": openapi.responses({200: "deliveries"}, 422, 503)}},
    "/v1/deliveries/by-customer": {"get": {
        "summary": "Every notification to one customer in the caller's stores, found by any of their "
                   "handles (phone, e-mail or WeChat openid)",
        "parameters": [dict(openapi.query_param("contact", "the customer's phone, e-mail or openid"),
                            required=True)],
        "responses": openapi.responses({200: "deliveries"}, 422, 503)}},
    RECEIPTS: {"post": {
        "summary": "Delivery receipts pushed by the SMS gateway (Aliyun SmsReport shape): a delivered "
                   "SMS becomes `delivered`; an undelivered one moves to the next channel or is abandoned",
        "parameters": [dict(openapi.query_param("token", "the receipt token configured at the gateway"),
                            required=True)],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "array", "items": SmsReportIn}}}},
        "responses": openapi.responses({200: "{code: 0, msg} as the gateway expects"}, 400, 404, 413, 415,
                                       422)}},
    WECHAT_RECEIPTS: {
        "get": {"summary": "WeChat's check of the server URL: answers `echostr` when the signature is valid",
                "parameters": [*WECHAT_SIGNED, openapi.query_param("echostr", "the text to echo")],
                "responses": openapi.responses({200: "echostr, as text/plain"}, 404)},
        "post": {"summary": "The official account's event push (XML): TEMPLATESENDJOBFINISH reports make a "
                            "WeChat message delivered, or move it on (blocked by the user, failed)",
                 "parameters": WECHAT_SIGNED,
                 "requestBody": {"required": True, "content": {"text/xml": {"schema": {"type": "string"}}}},
                 "responses": openapi.responses({200: "success, as text/plain"}, 404, 413)}},
    "/v1/audit/personal-data-reads": openapi.AUDIT_OPERATION,
}, public=((RECEIPTS, "post"), (WECHAT_RECEIPTS, "get"), (WECHAT_RECEIPTS, "post")))
