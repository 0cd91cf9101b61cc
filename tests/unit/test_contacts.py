"""The one phone normaliser and the digests of a customer's handles: a number is one
handle whichever usual way it is typed."""
import pytest
from hypothesis import given, strategies as st

from closeloop_shared import contacts
from tests.fixtures import INVALID_PHONES

MOBILE = "+8613812345678"
MOBILE_TYPED = ["13812345678", "138 1234 5678", "138-1234-5678", "+86 138 1234 5678",
                "+86-138-1234-5678", "008613812345678", "0086 138 1234 5678", " +8613812345678 ",
                "(+86) 138 1234 5678", "１３８１２３４５６７８"]  # the last: full-width digits


@pytest.mark.parametrize("raw", MOBILE_TYPED)
def test_a_mainland_mobile_typed_any_usual_way_is_one_e164_number(raw):
    assert contacts.e164(raw) == MOBILE


@pytest.mark.parametrize("raw, number", [
    ("021-6438 1234", "+862164381234"),          # a Shanghai landline, no +86
    ("+86 21 6123 4567", "+862161234567"),
    ("+86 (0)21 6438 1234", "+862164381234"),    # the trunk 0 some write after +86
    ("+852 9123 4567", "+85291234567"),          # a Hong Kong mobile
])
def test_landlines_and_other_countries_numbers_are_normalised_too(raw, number):
    assert contacts.e164(raw) == number


def test_the_region_is_the_one_a_number_without_country_code_is_read_in():
    assert contacts.DEFAULT_REGION == "CN"
    assert contacts.e164("9123 4567", region="HK") == "+85291234567"
    with pytest.raises(ValueError):
        contacts.e164("9123 4567")  # not a mainland number


@pytest.mark.parametrize("raw, message", [*INVALID_PHONES, ("   ", "not a phone number"), (None, "not a phone number")])
def test_what_is_not_a_valid_number_is_a_value_error_that_does_not_repeat_it(raw, message):
    with pytest.raises(ValueError) as refused:
        contacts.e164(raw)
    assert str(refused.value) == message


# Mobile prefixes the three carriers have long had: every number under them is valid.
MOBILE_PREFIXES = ["130", "133", "135", "138", "139", "150", "158", "166", "176", "186", "189", "199"]


@given(number=st.builds(str.__add__, st.sampled_from(MOBILE_PREFIXES), st.from_regex(r"[0-9]{8}", fullmatch=True)),
       layout=st.sampled_from(["{n}", "{a} {b} {c}", "{a}-{b}-{c}", "+86{n}", "+86 {a} {b} {c}",
                               "0086{n}", "+86-{a}-{b}-{c}", " {n} "]))
def test_the_digest_of_a_mobile_is_the_same_in_each_usual_layout(number, layout):
    typed = layout.format(n=number, a=number[:3], b=number[3:7], c=number[7:])
    assert contacts.handle_digests({"phone": typed}) == contacts.handle_digests({"phone": number})
    assert contacts.digest(contacts.typed_handle(typed)) == contacts.handle_digests({"phone": number})[0]


def test_a_contact_typed_with_spaces_and_one_in_e164_are_one_customer():
    typed = {"phone": "138 1234 5678", "email": " Liu@Example.COM ", "wechat_openid": "o-liu"}
    stored = {"phone": MOBILE, "email": "liu@example.com", "wechat_openid": "o-liu"}
    assert contacts.handles(typed) == contacts.handles(stored) == [MOBILE, "liu@example.com", "o-liu"]
    assert contacts.handle_digests(typed) == contacts.handle_digests(stored)


@given(local=st.from_regex(r"[a-z][a-z0-9.]{0,15}", fullmatch=True),
       flips=st.lists(st.booleans(), min_size=16, max_size=16))
def test_an_email_is_the_same_handle_in_any_case(local, flips):
    email = f"{local}@example.com"
    shouted = "".join(ch.upper() if flip else ch for ch, flip in zip(email, flips + [False] * len(email)))
    assert contacts.handle_digests({"email": shouted}) == contacts.handle_digests({"email": email})
    assert contacts.typed_handle(shouted) == email


@pytest.mark.parametrize("raw", ["12345", "not a number", " 1381234567 "])
def test_a_phone_that_is_not_a_valid_number_is_digested_as_given_stripped(raw):
    assert contacts.handles({"phone": raw}) == [raw.strip()]
    assert contacts.handle_digests({"phone": raw}) == [contacts.digest(raw.strip())]


def test_a_contact_without_handles_has_no_digests():
    assert contacts.handle_digests({"phone": None, "email": "", "wechat_openid": None}) == []
    assert contacts.handle_digests({"phone": "  ", "name": "刘"}) == []


def test_a_digest_holds_no_contact_data():
    (key,) = contacts.handle_digests({"phone": "138 1234 5678"})
    assert len(key) == 24 and "1381234" not in key and "+86" not in key
