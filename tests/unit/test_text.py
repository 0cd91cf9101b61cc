"""closeloop_shared/text.py: names that go into e-mail headers carry no control characters."""
import doctest
import unicodedata
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import given
from hypothesis import strategies as st

import closeloop_shared.text
from closeloop_shared.text import header_safe

LINE_BREAKS = "\r\n\t\v\f\x85\u2028\u2029"
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.mark.parametrize("text, safe", [
    ("刘女士", "刘女士"),
    ("Liu Fang", "Liu Fang"),
    ("刘女士\r\nBcc: attacker@example.com", "刘女士 Bcc: attacker@example.com"),
    ("刘女士\nSubject: 退款", "刘女士 Subject: 退款"),
    ("刘\r女士", "刘 女士"),
    ("王\u2028先生\u2029", "王 先生"),
    ("陈\x85小姐", "陈 小姐"),
    ("li\tu", "li u"),
    ("a\x00b\x1bc\x7fd\x9be", "abcde"),                 # NUL, ESC, DEL, CSI
    ("\u202eredro\u202c", "redro"),                     # right-to-left override
    ("\u2067admin\u2069 刘", "admin 刘"),               # isolates
    ("\u200f刘\u200e女士\u061c", "刘女士"),             # marks
    ("bad \ud800 surrogate", "bad surrogate"),
    ("  刘 女士  ", "刘 女士"),
    ("刘\u3000女士", "刘\u3000女士"),                  # an ideographic space is text
    ("O'Brien-Smith (VIP)", "O'Brien-Smith (VIP)"),
    ("👩‍⚕️ 李医生", "👩‍⚕️ 李医生"),               # ZWJ sequences stay whole
    ("", ""),
    (None, ""),
])
def test_header_safe(text, safe):
    assert header_safe(text) == safe


def test_docstring_example():
    assert doctest.testmod(closeloop_shared.text).failed == 0


@given(st.text())
def test_nothing_unsafe_survives(text):
    safe = header_safe(text)
    assert not any(c in LINE_BREAKS or c in BIDI or unicodedata.category(c) in ("Cc", "Cs") for c in safe)
    assert safe == safe.strip() and "  " not in safe
    assert header_safe(safe) == safe


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs"),
                                      blacklist_characters=BIDI), min_size=1))
def test_ordinary_names_are_untouched(name):
    assert header_safe(name) == name


@given(st.text(), st.sampled_from(["\r\n", "\n", "\r", "\u2028", "\x85"]))
def test_a_header_built_from_it_stays_one_header(name, newline):
    message = EmailMessage(policy=SMTP)
    message["To"] = f'"{header_safe(name + newline + "Bcc: x@example.com")}" <liu@example.com>'
    message["Subject"] = header_safe(f"您好 {name}{newline}Bcc: x@example.com")
    headers = message.as_bytes().split(b"\r\n\r\n")[0].decode()
    assert not any(line.lower().startswith("bcc:") for line in headers.splitlines())
