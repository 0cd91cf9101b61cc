"""closeloop_shared/logs.py: no raw phone number in the logs."""
import io
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared.logs import MaskPhones, mask_phones


@pytest.mark.parametrize("text, masked", [
    ("13812345678", "138****5678"),
    ("+8613812345678", "+86138****5678"),
    ("8613812345678", "86138****5678"),
    ("顾客电话13812345678,请回访", "顾客电话138****5678,请回访"),
    ("phone=19987654321;", "phone=199****4321;"),
    ("two: 13812345678 and 15011112222", "two: 138****5678 and 150****2222"),
])
def test_mainland_mobiles_are_masked(text, masked):
    assert mask_phones(text) == masked


@pytest.mark.parametrize("text", [
    "case CL-20261124-000001 routed",      # case numbers
    "refund 13800.00 yuan",                # amounts
    "amount=3980.00, seconds_to_respond=5400.5",
    "12812345678",                          # 12x is no mobile prefix
    "138123456789",                         # 12 digits: not a phone
    "1381234567",                           # 10 digits
    "order 2026112413812345678",            # inside a longer number
])
def test_other_numbers_are_left_alone(text):
    assert mask_phones(text) == text


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_any_mobile_keeps_only_prefix_and_last_four(phone):
    masked = mask_phones(f"tel:{phone}.")
    assert masked == f"tel:{phone[:3]}****{phone[-4:]}."
    assert phone not in masked


@pytest.mark.parametrize("text", [
    "customer +86 138 1234 5678 called",
    "call back 138-1234-5678 today",
    "tel +86-13812345678",
    "号码 138 1234 5678",
])
def test_spaced_or_dashed_mobiles_are_masked(text):
    assert "1234" not in mask_phones(text)


# -- the logging filter -----------------------------------------------------------------

def record(msg, args=(), **extra):
    rec = logging.LogRecord("closeloop.test", logging.INFO, __file__, 10, msg, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_filter_masks_the_message_and_keeps_the_record():
    rec = record("customer 13812345678 called")
    assert MaskPhones().filter(rec) is True
    assert rec.getMessage() == "customer 138****5678 called"


def test_filter_masks_string_args():
    rec = record("customer %s called about %s, refund %s", ("+8613812345678", "CL-20261124-000001", 300))
    MaskPhones().filter(rec)
    assert rec.getMessage() == "customer +86138****5678 called about CL-20261124-000001, refund 300"


def test_filter_masks_extra_string_attributes():
    rec = record("case accepted", phone="13812345678", case_number="CL-20261124-000001",
                 count=13812345678)
    MaskPhones().filter(rec)
    assert rec.phone == "138****5678"
    assert rec.case_number == "CL-20261124-000001"
    assert rec.count == 13812345678  # not a string: left as is


def test_filter_leaves_the_logger_name_alone():
    rec = logging.LogRecord("tenant.13812345678", logging.INFO, __file__, 1, "x", (), None)
    MaskPhones().filter(rec)
    assert rec.name == "tenant.13812345678"


def test_filter_through_a_real_logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskPhones())
    handler.setFormatter(logging.Formatter("%(message)s phone=%(phone)s"))
    logger = logging.getLogger("closeloop.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("dead-lettered %s", "body with 13812345678", extra={"phone": "15011112222"})
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "dead-lettered body with 138****5678 phone=150****2222\n"


def test_filter_masks_mapping_args():
    rec = record("customer %(phone)s", ({"phone": "13812345678"},))
    MaskPhones().filter(rec)
    assert rec.getMessage() == "customer 138****5678"


@pytest.mark.parametrize("text, masked", [
    ("landline 021-64381234", "landline 021-6438****"),
    ("HK +852 9123 4567", "HK +852 9123****"),
])
def test_landlines_and_international_numbers_are_masked(text, masked):
    assert mask_phones(text) == masked


def test_exception_text_is_masked_and_kept():
    try:
        raise ValueError("bad phone 13812345678")
    except ValueError:
        import sys
        rec = logging.LogRecord("closeloop.test", logging.ERROR, __file__, 10, "failed: %s",
                                (ValueError("13812345678"),), sys.exc_info())
    MaskPhones().filter(rec)
    assert rec.getMessage() == "failed: 138****5678"
    assert "ValueError: bad phone 138****5678" in rec.exc_text and "13812345678" not in rec.exc_text
