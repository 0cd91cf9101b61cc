"""closeloop_shared/http.py: the one error shape, with nested field errors flattened."""
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from marshmallow import Schema, fields
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from closeloop_shared.http import (
    HttpError,
    error_response,
    flatten_errors,
    int_arg,
    json_response,
    load_or_422,
    read_json,
)
from services.intake.schemas import FeedbackIn


def test_flat_messages_stay_flat():
    assert flatten_errors({"channel": ["Must be one of: ..."]}) == {"channel": ["Must be one of: ..."]}


def test_nested_messages_get_dotted_paths():
    assert flatten_errors({
        "customer": {"phone": ["not a valid phone number"], "wechat": ["Unknown field."]},
        "external_ref": {"id": ["Missing data for required field."]},
        "content": ["content is blank"],
    }) == {
        "customer.phone": ["not a valid phone number"],
        "customer.wechat": ["Unknown field."],
        "external_ref.id": ["Missing data for required field."],
        "content": ["content is blank"],
    }


def test_deep_nesting_and_list_indexes():
    assert flatten_errors({"a": {"b": {"c": ["x"]}}, "items": {0: {"name": ["y"]}, 2: ["z"]}}) == {
        "a.b.c": ["x"], "items.0.name": ["y"], "items.2": ["z"]}


def test_a_bare_string_message_becomes_a_list():
    assert flatten_errors({"_schema": "expected an object"}) == {"_schema": ["expected an object"]}


def test_empty_messages():
    assert flatten_errors({}) == {}


def test_flatten_real_marshmallow_errors():
    body = {"store_id": "SH-XH-001", "channel": "fax",
            "customer": {"name": "刘女士", "phone": "12345", "wechat": "x"},
            "content": "  ", "occurred_at": "2026-11-23T15:00:00", "bogus": 1}
    with pytest.raises(HttpError) as caught:
        load_or_422(FeedbackIn(), body)
    error = caught.value
    assert (error.status, error.code) == (422, "validation_failed")
    assert set(error.fields) == {"channel", "customer.phone", "customer.wechat", "content", "bogus"}
    assert error.fields["customer.phone"] == ["not a valid phone number"]


def test_load_or_422_returns_the_loaded_data():
    class Small(Schema):
        n = fields.Integer(required=True)
    assert load_or_422(Small(), {"n": "3"}) == {"n": 3}


# -- responses and requests ---------------------------------------------------------------

def test_error_response_shape():
    response = error_response(HttpError(422, "validation_failed", "bad", {"customer.phone": ["x"]}))
    assert response.status_code == 422
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data(as_text=True)) == {
        "error": {"code": "validation_failed", "message": "bad", "fields": {"customer.phone": ["x"]}}}


def test_error_response_without_fields_has_no_fields_key():
    response = error_response(HttpError(404, "case_not_found", "no case c1"))
    assert json.loads(response.get_data()) == {"error": {"code": "case_not_found",
                                                         "message": "no case c1"}}


def test_json_response_serialises_times_money_and_chinese():
    response = json_response(200, {"at": datetime(2026, 11, 24, 1, 30, tzinfo=timezone.utc),
                                   "amount": Decimal("300.00"), "store": "上海徐汇店"})
    text = response.get_data(as_text=True)
    assert "上海徐汇店" in text  # not \u-escaped
    assert json.loads(text) == {"at": "2026-11-24T01:30:00+00:00", "amount": "300.00",
                                "store": "上海徐汇店"}


def test_json_response_refuses_unknown_types():
    with pytest.raises(TypeError):
        json_response(200, {"x": object()})


def _request(data, content_type="application/json"):
    return Request(EnvironBuilder(method="POST", data=data, content_type=content_type).get_environ())


def test_read_json():
    assert read_json(_request('{"a": "刘"}'.encode()), 1000) == {"a": "刘"}


@pytest.mark.parametrize("data, content_type, status, code", [
    (b'{"a": 1}', "text/plain", 415, "unsupported_media_type"),
    (b'{"a": ', "application/json", 400, "malformed_json"),
    (b'\xff\xfe', "application/json", 400, "malformed_json"),
    (b'[1, 2]', "application/json", 422, "validation_failed"),
    (b'{"a": "' + b"x" * 100 + b'"}', "application/json", 413, "payload_too_large"),
])
def test_read_json_refusals(data, content_type, status, code):
    with pytest.raises(HttpError) as caught:
        read_json(_request(data, content_type), 50)
    assert (caught.value.status, caught.value.code) == (status, code)


@pytest.mark.parametrize("query, expected", [("", 50), ("?limit=1", 1), ("?limit=200", 200)])
def test_int_arg(query, expected):
    request = Request(EnvironBuilder(path="/v1/cases" + query).get_environ())
    assert int_arg(request, "limit", 50, 1, 200) == expected


@pytest.mark.parametrize("raw", ["0", "201", "ten", "1.5", "-3"])
def test_int_arg_refusals_name_the_parameter(raw):
    request = Request(EnvironBuilder(path="/v1/cases", query_string={"limit": raw}).get_environ())
    with pytest.raises(HttpError) as caught:
        int_arg(request, "limit", 50, 1, 200)
    assert (caught.value.status, caught.value.code) == (422, "validation_failed")
    assert list(caught.value.fields) == ["limit"]
