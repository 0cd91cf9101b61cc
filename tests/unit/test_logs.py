"""closeloop_shared/logs.py: no raw personal data (phones, e-mail addresses, customer
names) in the logs, while case numbers, times, amounts and ids stay readable."""
import functools
import importlib
import io
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from closeloop_shared.logs import MaskPersonalData, scrub


@pytest.mark.parametrize("text, masked", [
    ("13812345678", "138****5678"),
    ("+8613812345678", "+86138****5678"),
    ("8613812345678", "86138****5678"),
    ("顾客电话13812345678,请回访", "顾客电话138****5678,请回访"),
    ("phone=19987654321;", "phone=199****4321;"),
    ("two: 13812345678 and 15011112222", "two: 138****5678 and 150****2222"),
])
def test_mainland_mobiles_are_masked(text, masked):
    assert scrub(text) == masked


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
    assert scrub(text) == text


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_any_mobile_keeps_only_prefix_and_last_four(phone):
    masked = scrub(f"tel:{phone}.")
    assert masked == f"tel:{phone[:3]}****{phone[-4:]}."
    assert phone not in masked


@pytest.mark.parametrize("text", [
    "customer +86 138 1234 5678 called",
    "call back 138-1234-5678 today",
    "tel +86-13812345678",
    "号码 138 1234 5678",
])
def test_spaced_or_dashed_mobiles_are_masked(text):
    assert "1234" not in scrub(text)


# -- the logging filter -----------------------------------------------------------------

def record(msg, args=(), **extra):
    rec = logging.LogRecord("closeloop.test", logging.INFO, __file__, 10, msg, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_filter_masks_the_message_and_keeps_the_record():
    rec = record("customer 13812345678 called")
    assert MaskPersonalData().filter(rec) is True
    assert rec.getMessage() == "customer 138****5678 called"


def test_filter_masks_string_args():
    rec = record("customer %s called about %s, refund %s", ("+8613812345678", "CL-20261124-000001", 300))
    MaskPersonalData().filter(rec)
    assert rec.getMessage() == "customer +86138****5678 called about CL-20261124-000001, refund 300"


def test_filter_masks_extra_string_attributes():
    rec = record("case accepted", phone="13812345678", case_number="CL-20261124-000001",
                 count=13812345678)
    MaskPersonalData().filter(rec)
    assert rec.phone == "138****5678"
    assert rec.case_number == "CL-20261124-000001"
    assert rec.count == 13812345678  # not a string: left as is


def test_filter_leaves_the_logger_name_alone():
    rec = logging.LogRecord("tenant.13812345678", logging.INFO, __file__, 1, "x", (), None)
    MaskPersonalData().filter(rec)
    assert rec.name == "tenant.13812345678"


def test_filter_through_a_real_logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskPersonalData())
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
    MaskPersonalData().filter(rec)
    assert rec.getMessage() == "customer 138****5678"


@pytest.mark.parametrize("text, masked", [
    ("landline 021-64381234", "landline 021-6438****"),
    ("HK +852 9123 4567", "HK +852 9123****"),
])
def test_landlines_and_international_numbers_are_masked(text, masked):
    assert scrub(text) == masked


def test_exception_text_is_masked_and_kept():
    try:
        raise ValueError("bad phone 13812345678")
    except ValueError:
        import sys
        rec = logging.LogRecord("closeloop.test", logging.ERROR, __file__, 10, "failed: %s",
                                (ValueError("13812345678"),), sys.exc_info())
    MaskPersonalData().filter(rec)
    assert rec.getMessage() == "failed: 138****5678"
    assert "ValueError: bad phone 138****5678" in rec.exc_text and "13812345678" not in rec.exc_text


# -- every way a phone is written ------------------------------------------------------

@pytest.mark.parametrize("text, masked", [
    ("138.1234.5678", "138****5678"),
    ("138 1234 5678", "138****5678"),
    ("138-1234-5678", "138****5678"),
    ("138 - 1234 - 5678", "138****5678"),
    ("+86 138 1234 5678", "+86 138****5678"),
    ("0086 13812345678", "0086 138****5678"),
    ("(+86) 138-1234-5678", "(+86) 138****5678"),
    ("１３８１２３４５６７８", "１３８****５６７８"),
    ("＋８６ １３８ １２３４ ５６７８", "＋８６ １３８****５６７８"),
    ("＋86 13812345678", "＋86 138****5678"),
    ("（021）6438 1234", "（021）6438****"),
    ("(0755) 8888 6666", "(0755) 888****"),
    ("0571 812 3456", "0571 812****"),
    ("电话010-88886666转", "电话010-8888****转"),
    ("+1 (415) 555-2671", "+1 (415) 555-****"),
    ("+44 20 7946 0958", "+44 20 794****"),
    ("0044 20 7946 0958", "0044 20 794****"),
    ("+86 21 6438 1234", "+86 21 643****"),
    ("+852 9123 4567 13812345678", "+852 9123****"),  # run on: masked together
    ("+1 415 555 2671 021 6438 1234", "+1 415 555****"),
    ("+852 9123 4567 1234", "+852 9123****"),
    ("001 1 00 0000 (001 1 00 0000)", "001 1 00 000****)"),
    ("+1 100 0010", "+1 100****"),
])
def test_every_phone_format_is_masked(text, masked):
    assert scrub(text) == masked


@pytest.mark.parametrize("text, masked", [
    ("liu.fang@example.com", "l***@example.com"),
    ("mail to <liu@example.com.cn> now", "mail to <l***@example.com.cn> now"),
    ("email=liu@example.com;", "email=l***@example.com;"),
    ("13812345678@qq.com", "1***@qq.com"),
    ("liu＠163.com", "l***@163.com"),
    ("刘芳@例子.中国", "刘***@例子.中国"),
    ("550 5.1.1 <liu@example.com>: Recipient address rejected",
     "550 5.1.1 <l***@example.com>: Recipient address rejected"),
])
def test_email_addresses_keep_only_the_first_character_and_the_domain(text, masked):
    assert scrub(text) == masked


@pytest.mark.parametrize("text", [
    "CL-20261124-000001",
    "2026-11-24T01:30:00.123456+08:00",
    "2026-11-24 13:45:00",
    "3f2a9c1e-0138-4123-8567-0123456789ab",    # a UUID with phone-like groups
    "6745a1b2c3d4e5f601381234",                # an ObjectId
    "a13812345678b13812345678cafe",            # a hex id around mobile-like digits
    "refund 300.00, balance +1234567.89",
    "192.168.1.10",
    "logger@module",                           # no domain: not an address
])
def test_things_that_must_stay_readable(text):
    assert scrub(text) == text


def test_scrub_twice_changes_nothing_more():
    text = "刘女士 13812345678, +852 9123 4567, 021-64381234, liu@example.com"
    assert scrub(scrub(text)) == scrub(text)


def test_scrub_takes_any_object_as_its_text():
    assert scrub(ValueError("550 <liu@example.com> 13812345678")) == "550 <l***@example.com> 138****5678"


# -- personal data in structured fields ------------------------------------------------

def test_personal_keys_in_extras_are_masked_at_any_depth():
    customer = {"name": "刘女士", "phone": "13812345678", "email": "liu@example.com", "member_id": "M0001"}
    rec = record("case accepted", customer=customer, case_number="CL-20261124-000001",
                 recipient="liu@example.com", amount="300.00",
                 payload={"contacts": [{"name": "王先生", "mobile": 13912345678}], "store_id": "SH-XH-001"})
    MaskPersonalData().filter(rec)
    assert rec.customer == {"name": "刘**", "phone": "138****5678", "email": "l***@example.com",
                            "member_id": "M**"}
    assert rec.recipient == "l***@example.com"
    assert rec.payload == {"contacts": [{"name": "王**", "mobile": "139****5678"}], "store_id": "SH-XH-001"}
    assert (rec.case_number, rec.amount) == ("CL-20261124-000001", "300.00")
    assert customer["name"] == "刘女士"  # the caller's dict is not touched


@pytest.mark.parametrize("key", ["customer_name", "CustomerName", "contact", "contact-phone", "address",
                                 "recipient_email", "customer", "wechat_id", "to"])
def test_personal_key_spellings(key):
    rec = record("x", **{key: "刘女士 上海市徐汇区"})
    MaskPersonalData().filter(rec)
    assert getattr(rec, key) == "刘**"


@pytest.mark.parametrize("key", ["store_name", "customer_id", "case_id", "channel", "technician_id"])
def test_other_keys_are_only_scrubbed(key):
    rec = record("x", **{key: "上海徐汇店"})
    MaskPersonalData().filter(rec)
    assert getattr(rec, key) == "上海徐汇店"


def test_mapping_arguments_and_dict_messages_are_masked_by_key():
    rec = record("customer %(name)s, case %(case)s", ({"name": "刘女士", "case": "CL-20261124-000001"},))
    MaskPersonalData().filter(rec)
    assert rec.getMessage() == "customer 刘**, case CL-20261124-000001"
    rec = record({"event": "case_submitted", "customer": {"name": "刘女士", "phone": "13812345678"}})
    MaskPersonalData().filter(rec)
    assert rec.msg == {"event": "case_submitted", "customer": {"name": "刘**", "phone": "138****5678"}}


def test_objects_in_extras_are_masked_by_their_text_and_otherwise_kept():
    from datetime import datetime, timezone
    at = datetime(2026, 11, 24, 1, 30, tzinfo=timezone.utc)
    error = ConnectionError("SMTP 550 <liu@example.com>")
    rec = record("x", at=at, error=error, raw=b"tel 13812345678")
    MaskPersonalData().filter(rec)
    assert rec.at is at
    assert rec.error == "ConnectionError: SMTP 550 <l***@example.com>"
    assert rec.raw == "tel 138****5678"


def test_wrong_arguments_neither_raise_nor_leak():
    rec = record("customer %s and %s", ("13812345678",))
    assert MaskPersonalData().filter(rec) is True
    assert "13812345678" not in rec.getMessage() and "138****5678" in rec.getMessage()


def test_a_record_is_masked_once_even_through_two_filters():
    rec = record("x", customer={"phone": "13812345678"})
    MaskPersonalData().filter(rec)
    MaskPersonalData().filter(rec)
    assert rec.customer == {"phone": "138****5678"}


def test_self_referencing_extras_do_not_hang():
    loop = []
    loop.append(loop)
    rec = record("x", loop=loop)
    assert MaskPersonalData().filter(rec) is True


# -- property tests through the deployed logging config ---------------------------------

NAMEKO_YML = Path(__file__).resolve().parents[2] / "deploy" / "nameko.yml"


def _build(spec):
    """A logging object from a dictConfig "()" spec, as logging.config builds it."""
    spec = dict(spec)
    module, _, name = spec.pop("()").rpartition(".")
    return getattr(importlib.import_module(module), name)(**spec)


class _NamekoYaml(yaml.SafeLoader):
    """Reads nameko.yml's !env_var / !raw_env_var values as their text (the LOGGING
    section has none), without touching yaml.SafeLoader as nameko's own parser does."""


_NamekoYaml.add_multi_constructor("!", lambda loader, tag, node: loader.construct_scalar(node))


@functools.cache
def _logging_config():
    return yaml.load(NAMEKO_YML.read_text(encoding="utf-8"), Loader=_NamekoYaml)["LOGGING"]


def _deployed_handler(stream):
    """The console handler of deploy/nameko.yml (its filters and JSON formatter), on a
    stream. Built directly rather than by dictConfig, which would close every handler
    of the test run."""
    config = _logging_config()
    console = config["handlers"]["console"]
    handler = logging.StreamHandler(stream)
    for name in console["filters"]:
        handler.addFilter(_build(config["filters"][name]))
    handler.setFormatter(_build(config["formatters"][console["formatter"]]))
    return handler


def test_the_deployed_config_uses_this_filter():
    handler = _deployed_handler(io.StringIO())
    assert [type(f) for f in handler.filters] == [MaskPersonalData]


def log_line(msg, *args, exc=None, **extra):
    """What one log call writes through the deployed handler: (raw line, parsed JSON)."""
    stream = io.StringIO()
    logger = logging.getLogger("closeloop.test.pii")
    logger.propagate, logger.level = False, logging.DEBUG
    handler = _deployed_handler(stream)
    logger.addHandler(handler)
    try:
        if exc is not None:
            try:
                raise exc
            except type(exc):
                logger.exception(msg, *args, extra=extra)
        else:
            logger.info(msg, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    return line, json.loads(line)


FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
CONTEXT = st.text(alphabet="顾客电话请回访您好号码:：,，。;!？()（）<> tel", max_size=6)


def _digits(text):
    """The digits of `text` without the separators a phone is written with."""
    text = text.translate({ord(f): ord(a) for a, f in zip("0123456789+", "０１２３４５６７８９＋")})
    return re.sub(r"[\s\-.()（）－．]", "", text)


@st.composite
def mainland_mobiles(draw):
    number = draw(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    sep = draw(st.sampled_from(["", " ", "-", ".", "\u3000", " - "]))
    text = sep.join([number[:3], number[3:7], number[7:]]) if draw(st.booleans()) else number
    prefix = draw(st.sampled_from(["", "+86", "+86 ", "+86-", "86", "0086 ", "(+86) ", "(+86)"]))
    text = prefix + text
    if draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    return text, number


@st.composite
def landlines(draw):
    area = draw(st.sampled_from(["010", "020", "021", "022", "023", "024", "025", "027", "028", "029",
                                 "0755", "0571", "0512", "0871", "0898"]))
    local = draw(st.from_regex(r"[2-8][0-9]{6,7}", fullmatch=True))
    sep = draw(st.sampled_from(["", "-", " "]))
    text = f"{area}{sep}{local}" if draw(st.booleans()) else f"({area}) {local[:-4]} {local[-4:]}"
    if draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    return text, area[1:] + local


@st.composite
def international_numbers(draw):
    country = draw(st.sampled_from(["1", "44", "852", "853", "886", "81", "82", "33", "49", "61", "65"]))
    area = draw(st.from_regex(r"[1-9][0-9]{0,2}", fullmatch=True))
    subscriber = draw(st.from_regex(r"[0-9]{6,8}", fullmatch=True))
    start = draw(st.sampled_from(["+", "00", "+ ", "＋"]))
    text = draw(st.sampled_from([
        f"{start}{country} {area} {subscriber[:-4]} {subscriber[-4:]}",
        f"{start}{country} ({area}) {subscriber}",
        f"{start}{country}-{area}-{subscriber}",
        f"{start}{country}{area}{subscriber}",
    ]))
    return text, country + area + subscriber


PHONES = st.one_of(mainland_mobiles(), landlines(), international_numbers())


def assert_not_raw(phone, national, line, logged):
    text = json.dumps(logged, ensure_ascii=False)
    assert phone not in line and phone not in text
    assert _digits(national) not in _digits(text)


@given(PHONES, CONTEXT, CONTEXT)
def test_no_phone_survives_in_the_message_or_its_arguments(phone_and_digits, before, after):
    phone, national = phone_and_digits
    line, logged = log_line(f"{before}{phone}{after} (%s)", f"{before}{phone}{after}")
    assert_not_raw(phone, national, line, logged)


@given(PHONES, CONTEXT)
def test_no_phone_survives_in_extras_or_exceptions(phone_and_digits, before):
    phone, national = phone_and_digits
    line, logged = log_line("delivery failed", exc=RuntimeError(f"provider said: {before}{phone}"),
                            note=f"{before}{phone}", details={"raw": [f"{before}{phone}"]},
                            customer={"contact": phone})
    assert_not_raw(phone, national, line, logged)
    assert "RuntimeError: provider said" in logged["exc_info"]


@given(PHONES, CONTEXT)
def test_scrub_leaves_no_phone(phone_and_digits, before):
    phone, national = phone_and_digits
    text = scrub(f"{before}{phone}。")
    assert phone not in text and _digits(national) not in _digits(text)


REALISTIC_EMAILS = st.tuples(
    st.from_regex(r"[a-z][a-z0-9._+-]{0,20}", fullmatch=True),
    st.from_regex(r"([a-z0-9-]{1,12}\.){1,3}(com|cn|net|org|hk|edu\.cn)", fullmatch=True),
)


@given(REALISTIC_EMAILS, st.text(alphabet=":：,，。;()（）<> ", max_size=4))
def test_email_addresses_keep_at_most_first_character_and_domain(local_and_domain, before):
    local, domain = local_and_domain
    address = f"{local}@{domain}"
    line, logged = log_line(f"{before}{address} bounced", recipient=address, note=f"to {address}")
    masked = f"{local[0]}***@{domain}"
    assert address not in json.dumps(logged, ensure_ascii=False)
    assert logged["message"] == f"{before}{masked} bounced"
    assert (logged["recipient"], logged["note"]) == (masked, f"to {masked}")


@given(st.emails(), CONTEXT)
def test_no_generated_email_address_survives(address, before):
    local = address.rpartition("@")[0]
    assume(local[1:] != "***")  # "a***@x.org" cannot be told from its own mask
    line, logged = log_line("%s bounced", f"{before}{address}", note=address, customer={"email": address})
    assert address not in line and address not in json.dumps(logged, ensure_ascii=False)
    assert address not in scrub(f"{before}{address}")


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高欧阳司马"
CHINESE_NAMES = st.builds(
    lambda surname, given: surname + given,
    st.sampled_from(SURNAMES),
    st.one_of(st.sampled_from(["女士", "先生", "小姐", "阿姨"]),
              st.text(alphabet="芳娜敏静丽强磊洋艳勇军杰娟涛明超秀霞平刚桂英", min_size=1, max_size=3)))


@given(CHINESE_NAMES, st.sampled_from(["name", "customer_name", "contact", "recipient", "customer"]),
       st.integers(min_value=0, max_value=3))
def test_names_under_personal_keys_never_appear(name, key, depth):
    value = {key: name}
    for _ in range(depth):
        value = {"payload": [value]}
    line, logged = log_line("case accepted", details=value, case_number="CL-20261124-000001")
    text = json.dumps(logged, ensure_ascii=False)
    assert name not in text and f'"{name[0]}**"' in text
    assert logged["case_number"] == "CL-20261124-000001"


CASE_NUMBERS = st.from_regex(r"CL-20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9])-[0-9]{6}", fullmatch=True)
TIMESTAMPS = st.builds(
    lambda at, zone: at.replace(tzinfo=zone).isoformat(),
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from([None, timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]))
AMOUNTS = st.decimals(min_value=0, max_value=10**8, places=2).map(str)
HEX_IDS = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex),
                    st.binary(min_size=12, max_size=12).map(bytes.hex))
INTACT = st.one_of(CASE_NUMBERS, TIMESTAMPS, AMOUNTS, HEX_IDS)


@given(INTACT)
def test_case_numbers_times_amounts_and_ids_stay_intact(value):
    assert scrub(value) == value
    assert scrub(f"id={value}, 金额 {value}。") == f"id={value}, 金额 {value}。"


@given(CASE_NUMBERS, TIMESTAMPS, AMOUNTS, HEX_IDS, PHONES)
def test_intact_values_beside_a_phone(case_number, at, amount, hex_id, phone_and_digits):
    phone, national = phone_and_digits
    line, logged = log_line("case %s at %s: refund %s for %s, id %s",
                            case_number, at, amount, phone, hex_id,
                            case_number=case_number, at=at, amount=amount, case_id=hex_id)
    assert logged["message"].startswith(f"case {case_number} at {at}: refund {amount} for ")
    assert logged["message"].endswith(f", id {hex_id}")
    assert (logged["case_number"], logged["at"], logged["amount"], logged["case_id"]) == (
        case_number, at, amount, hex_id)
    assert_not_raw(phone, national, line, logged)
