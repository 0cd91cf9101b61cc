"""closeloop_shared/http.py: the one error shape, with nested field errors flattened."""
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, fields
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from closeloop_shared.http import (
    MAX_JSON_DEPTH,
    HttpError,
    error_response,
    flatten_errors,
    int_arg,
    json_response,
    json_too_deep,
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


# -- nesting depth -----------------------------------------------------------------------

def _nested(depth, leaf="1"):
    """{"a": [[...[leaf]...]]}: an object holding arrays, `depth` levels in all."""
    return '{"a": ' + "[" * (depth - 1) + leaf + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("data", [
    "[" * 10_000 + "]" * 10_000,                                  # the classic
    '{"a": ' * 8_000 + "1" + "}" * 8_000,
    '{"customer": ' + "[" * 5_000 + '{"name": "刘"}' + "]" * 5_000 + "}",
    "[" * 30_000,                                                # never closed
    '{"a": "x", "b": ' + "[{" * 3_000,                           # mixed, truncated
    _nested(MAX_JSON_DEPTH + 1),
])
def test_deeply_nested_json_is_a_400_not_a_500(data):
    with pytest.raises(HttpError) as caught:
        read_json(_request(data.encode()), 65_536)
    assert (caught.value.status, caught.value.code) == (400, "malformed_json")
    assert "nested deeper than 32" in caught.value.message


def test_nesting_up_to_the_limit_is_accepted():
    assert read_json(_request(_nested(MAX_JSON_DEPTH).encode()), 65_536)["a"]


@pytest.mark.parametrize("leaf", [
    '"' + "[" * 1_000 + '"',                   # brackets inside a string do not count
    json.dumps('\\"' + "{[" * 500 + '"\\'),  # nor between escaped quotes and backslashes
])
def test_brackets_in_strings_do_not_count(leaf):
    body = read_json(_request(_nested(3, leaf).encode()), 65_536)
    assert json.loads(_nested(3, leaf)) == body


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant):
    with pytest.raises(HttpError) as caught:
        read_json(_request(f'{{"amount": {constant}}}'.encode()), 1000)
    assert (caught.value.status, caught.value.code) == (400, "malformed_json")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab刘\n'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(alphabet='[]{}"\\k', max_size=3), inner, max_size=3),
    max_leaves=40)


def _depth(value):
    if isinstance(value, (list, dict)):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((_depth(child) for child in children), default=0)
    return 0


@given(JSON_VALUES, st.integers(min_value=0, max_value=8))
def test_json_too_deep_agrees_with_the_real_depth(value, limit):
    assert json_too_deep(json.dumps(value, ensure_ascii=False), limit) == (_depth(value) > limit)


@given(st.text())
def test_json_too_deep_takes_any_text(text):
    json_too_deep(text, 2)


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
