"""What other systems send to intake, by HTTP (POST /v1/feedback) or on the bus
(exchange closeloop.inbound, routing key feedback.submitted): the same JSON."""
from datetime import datetime, timedelta

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from closeloop_shared import openapi
from closeloop_shared.openapi import StrictSchema
from closeloop_shared.clock import CHINA, utcnow
from closeloop_shared.contacts import e164
from closeloop_shared.contract import CUSTOMER_NOTIFY_CHANNELS, REFERRAL_CHANNELS, Channel, CustomerTier
from closeloop_shared.events import CATEGORIES, CHANNELS, LOCALES

# Clocks of other systems drift; a report "from the future" beyond this is a bug.
MAX_CLOCK_SKEW = timedelta(minutes=10)
# Nothing this chain does predates it; older dates are typos (and overflow storage).
EARLIEST = datetime(2000, 1, 1, tzinfo=CHINA)


def normalise_phone(raw):
    """E.164 for any number a customer might give (mainland numbers without +86 too);
    refused with e164's reason ("not a phone number", "not a valid phone number")."""
    try:
        return e164(raw)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class Phone(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return normalise_phone(super()._deserialize(value, attr, data, **kwargs))


class CustomerIn(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 50))
    phone = Phone(required=True)
    email = fields.Email(load_default=None, allow_none=True)
    member_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    # How the customer wants to hear from us (notify): their WeChat openid under the
    # brand's official account, and the channel they prefer (else the brand's order).
    # Absent unless given, so cases without them read as before.
    wechat_openid = fields.String(allow_none=True, validate=validate.Length(1, 64))
    preferred_channel = fields.String(allow_none=True, validate=validate.OneOf(CUSTOMER_NOTIFY_CHANNELS))
    # key / regular / potential / special, when the POS or CRM knows it: SLA policies may
    # be chosen by it (services/routing/policy.py)
    tier = fields.String(allow_none=True, validate=validate.OneOf([t.value for t in CustomerTier]))


class ExternalRefIn(StrictSchema):
    source = fields.String(required=True, validate=validate.Length(1, 64))
    id = fields.String(required=True, validate=validate.Length(1, 128))


class ServiceContextIn(StrictSchema):
    service_item = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    technician = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    appointment_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class ReferralIn(StrictSchema):
    authority = fields.String(required=True, validate=validate.Length(1, 100))
    reference_number = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))
    body = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 20000))
    referred_at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=CHINA)


class FeedbackIn(StrictSchema):
    store_id = fields.String(required=True, validate=validate.Length(1, 64))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    customer = fields.Nested(CustomerIn, required=True)
    content = fields.String(required=True, validate=validate.Length(1, 5000))
    # A time without zone is China time: that is what store staff type.
    occurred_at = fields.AwareDateTime(required=True, default_timezone=CHINA)
    category = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CATEGORIES))
    external_ref = fields.Nested(ExternalRefIn, load_default=None, allow_none=True)
    service_context = fields.Nested(ServiceContextIn, load_default=None, allow_none=True)
    # Required for consumer-association referrals (their official reference number is
    # what the 12315 platform and the association quote back); refused on other channels.
    referral = fields.Nested(ReferralIn, load_default=None, allow_none=True)
    locale = fields.String(load_default="zh-CN", validate=validate.OneOf(LOCALES))

    @validates("occurred_at")
    def not_in_future(self, value, **kwargs):
        if value > utcnow() + MAX_CLOCK_SKEW:
            raise ValidationError("occurred_at is in the future")
        if value < EARLIEST:
            raise ValidationError("occurred_at is before 2000-01-01")

    @validates_schema
    def referral_fits_channel(self, data, **kwargs):
        referral, channel = data.get("referral"), data.get("channel")
        if channel not in REFERRAL_CHANNELS:
            if referral is not None:
                raise ValidationError("only consumer-association and media feedback is a referral",
                                      "referral")
        elif channel == Channel.CONSUMER_ASSOCIATION.value and not (referral or {}).get("reference_number"):
            raise ValidationError("a consumer-association referral needs its official reference number",
                                  "referral.reference_number")

    @validates("content")
    def not_blank(self, value, **kwargs):
        if not value.strip():
            raise ValidationError("content is blank")


OPENAPI = openapi.build("Closeloop intake", {
    "/v1/feedback": {"post": {
        "summary": "Submit feedback from any channel; the same JSON is accepted on the bus",
        "requestBody": openapi.json_body(FeedbackIn),
        "responses": openapi.responses(
            {201: "case created: case_id, case_number",
             200: "an external_ref this client already sent: the existing case"},
            400, 413, 415, 422, 429, 503)}},
    "/v1/feedback/{case_id}": {"get": {
        "summary": "The receipt of an accepted case",
        "parameters": [openapi.path_param("case_id")],
        "responses": openapi.responses({200: "the receipt"}, 404, 503)}},
})
