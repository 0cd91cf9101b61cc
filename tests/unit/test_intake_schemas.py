"""services/intake/schemas.py: what other systems may send to intake."""
from datetime import datetime, timedelta, timezone

import pytest
from marshmallow import ValidationError

from closeloop_shared.clock import CHINA, utcnow
from tests.fixtures import INVALID_PHONES, feedback_body as feedback
from services.intake.schemas import FeedbackIn, normalise_phone

SCHEMA = FeedbackIn()


def errors(body):
    with pytest.raises(ValidationError) as caught:
        SCHEMA.load(body)
    return caught.value.messages


def test_a_complete_submission_loads_with_defaults():
    loaded = SCHEMA.load(feedback())
    assert loaded == {
        "store_id": "SH-XH-001",
        "channel": "hotline",
        "customer": {"name": "刘女士", "phone": "+8613812345678", "email": "liu@example.com",
                     "member_id": None},
        "content": "做完面部护理后脸上红肿刺痛,美容师手法太重",
        "occurred_at": datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc),
        "category": None,
        "external_ref": None,
        "service_context": None,
        "referral": None,
        "locale": "zh-CN",
    }


def test_optional_parts_load():
    loaded = SCHEMA.load(feedback(
        category="technician_skill", locale="en",
        external_ref={"source": "meituan", "id": "MT-99812"},
        service_context={"service_item": "深层清洁面部护理", "technician": "王小雨",
                         "appointment_id": "A-20261123-17"},
        customer={"name": "Liu", "phone": "13812345678", "member_id": "VIP-0042"}))
    assert loaded["category"] == "technician_skill"
    assert loaded["locale"] == "en"
    assert loaded["external_ref"] == {"source": "meituan", "id": "MT-99812"}
    assert loaded["service_context"]["technician"] == "王小雨"
    assert loaded["customer"] == {"name": "Liu", "phone": "+8613812345678", "email": None,
                                  "member_id": "VIP-0042"}


# -- phone numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "13812345678", "+86 138 1234 5678", "+86-138-1234-5678", "+8613812345678",
    "138 1234 5678", "008613812345678",
])
def test_mainland_mobiles_are_normalised_to_e164(raw):
    assert normalise_phone(raw) == "+8613812345678"
    assert SCHEMA.load(feedback(customer={"name": "刘女士", "phone": raw}))["customer"]["phone"] \
        == "+8613812345678"


@pytest.mark.parametrize("raw, e164", [
    ("021-64381234", "+862164381234"),       # a Shanghai landline, no +86
    ("+852 9123 4567", "+85291234567"),      # a Hong Kong mobile
])
def test_other_valid_numbers_are_normalised_too(raw, e164):
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize("raw, message", INVALID_PHONES)
def test_invalid_phones_are_refused(raw, message):
    assert errors(feedback(customer={"name": "刘女士", "phone": raw})) == {
        "customer": {"phone": [message]}}


def test_a_phone_must_be_a_string():
    assert "phone" in errors(feedback(customer={"name": "刘女士", "phone": 13812345678}))["customer"]


# -- refusals -------------------------------------------------------------------------

def test_unknown_channel_is_refused():
    assert list(errors(feedback(channel="fax"))) == ["channel"]


@pytest.mark.parametrize("channel", [
    "in_store", "hotline", "web", "wechat", "survey", "email", "comment_box", "media"])
def test_every_known_channel_loads(channel):
    assert SCHEMA.load(feedback(channel=channel))["channel"] == channel


REFERRAL = {"authority": "上海市消费者权益保护委员会", "reference_number": "12315-2026-0001234",
            "body": "消费者反映办卡后被多收费用,请核实并于五个工作日内书面答复"}


def test_a_consumer_association_referral_carries_its_reference_number():
    loaded = SCHEMA.load(feedback(channel="consumer_association", referral=REFERRAL))
    assert loaded["referral"]["reference_number"] == "12315-2026-0001234"
    assert errors(feedback(channel="consumer_association")) == {
        "referral.reference_number": ["a consumer-association referral needs its official reference number"]}


def test_only_referral_channels_take_a_referral():
    assert SCHEMA.load(feedback(channel="media", referral={"authority": "都市快报"}))["referral"]
    assert list(errors(feedback(channel="hotline", referral=REFERRAL))) == ["referral"]


def test_unknown_fields_are_refused_at_every_level():
    assert errors(feedback(priority="high")) == {"priority": ["Unknown field."]}
    assert errors(feedback(customer={"name": "刘女士", "phone": "13812345678", "wechat": "liu88"})) \
        == {"customer": {"wechat": ["Unknown field."]}}
    assert errors(feedback(external_ref={"source": "meituan", "id": "1", "url": "x"})) \
        == {"external_ref": {"url": ["Unknown field."]}}


@pytest.mark.parametrize("content", ["", "   ", "\n\t "])
def test_blank_content_is_refused(content):
    assert "content" in errors(feedback(content=content))


def test_content_has_a_size_limit():
    assert SCHEMA.load(feedback(content="脏" * 5000))["content"] == "脏" * 5000
    assert "content" in errors(feedback(content="脏" * 5001))


@pytest.mark.parametrize("missing", ["store_id", "channel", "customer", "content", "occurred_at"])
def test_required_fields(missing):
    body = feedback()
    del body[missing]
    assert errors(body) == {missing: ["Missing data for required field."]}


@pytest.mark.parametrize("field, value", [
    ("category", "weather"), ("locale", "fr"), ("store_id", ""),
])
def test_closed_vocabularies_and_lengths(field, value):
    assert list(errors(feedback(**{field: value}))) == [field]


def test_a_bad_email_is_refused():
    assert errors(feedback(customer={"name": "刘女士", "phone": "13812345678", "email": "liu@"})) \
        == {"customer": {"email": ["Not a valid email address."]}}


def test_external_ref_needs_source_and_id():
    assert errors(feedback(external_ref={"source": "meituan"})) == {
        "external_ref": {"id": ["Missing data for required field."]}}


# -- occurred_at ----------------------------------------------------------------------

def test_a_time_without_zone_is_china_time():
    loaded = SCHEMA.load(feedback(occurred_at="2026-11-23T15:00:00"))["occurred_at"]
    assert loaded.tzinfo is not None
    assert loaded.utcoffset() == timedelta(hours=8)
    assert loaded == datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    assert loaded.tzinfo == CHINA


def test_a_time_with_zone_keeps_it():
    loaded = SCHEMA.load(feedback(occurred_at="2026-11-23T07:00:00Z"))["occurred_at"]
    assert loaded == datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)


def test_a_time_in_the_future_is_refused():
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert errors(feedback(occurred_at=future)) == {"occurred_at": ["occurred_at is in the future"]}


def test_a_naive_future_china_time_is_refused():
    future = (utcnow() + timedelta(hours=1)).astimezone(CHINA).replace(tzinfo=None).isoformat()
    assert "occurred_at" in errors(feedback(occurred_at=future))


def test_small_clock_skew_is_tolerated():
    soon = (utcnow() + timedelta(minutes=5)).isoformat()
    assert SCHEMA.load(feedback(occurred_at=soon))["occurred_at"] > utcnow()


def test_not_a_datetime_is_refused():
    assert "occurred_at" in errors(feedback(occurred_at="昨天下午"))


def test_occurred_at_before_2000_is_refused():
    from marshmallow import ValidationError

    from services.intake.schemas import FeedbackIn
    body = {"store_id": "SH-XH-001", "channel": "hotline", "content": "x", "occurred_at": "0001-01-01T00:00:00",
            "customer": {"name": "刘", "phone": "13812345678"}}
    with pytest.raises(ValidationError) as error:
        FeedbackIn().load(body)
    assert "occurred_at" in error.value.messages
