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
    "/v1/audit/personal-data-reads": openapi.AUDIT_OPERATION,
}, public=((RECEIPTS, "post"),))
