"""Logs never carry raw personal data (PIPL: the customers of beauty salons and
postpartum-recovery centres are sensitive people to name).

`MaskPersonalData` is the one logging filter (deploy/nameko.yml puts it on the console
handler). Before a record is formatted it masks

- phone numbers in the message, its arguments, string extra fields, a `dict` message,
  the exception text and the stack text: mainland mobiles however written (13812345678,
  138 1234 5678, 138-1234-5678, 138.1234.5678, with +86 / 86 / 0086 / (+86), in
  full-width digits １３８１２３４５６７８ or with a full-width ＋) keep their first three and
  last four digits (138****5678); landlines with an area code (021-6438 1234) and
  international numbers (+852 9123 4567, 0044 20 7946 0958) keep at most their first
  seven digits and never their last four (021-6438****);
- e-mail addresses, which keep at most their first character and the domain
  (liu.fang@example.com -> l***@example.com);
- every value under a personal-data key in extra fields (or a `dict` message or mapping
  arguments), at any depth inside dicts and lists: `name`, `customer`, `customer_name`,
  `contact`, `phone`, `email`, `recipient`, `address`, ... (see `PERSONAL_KEYS`). A phone
  or an e-mail address there is masked as above, anything else keeps only its first
  character ("刘女士" -> "刘**"). Numbers under other keys are left alone.

What must stay readable stays intact: case numbers (CL-20261124-000001), ISO dates and
times, UUIDs and hex ids, amounts (300.00), counts. The filter never mutates the
caller's dicts (it masks copies), never raises (a record it cannot mask loses its text
rather than leaking it) and masks a record once even when several handlers share it.

`scrub(text)` is the same masking of phones and e-mail addresses as a pure function for
any text that leaves the process by another road than the logs.
"""
import dataclasses
import logging
import numbers
import re
import traceback
from collections.abc import Mapping

# -- phones and e-mail addresses in free text --------------------------------------------

_DIGIT = "[0-9\uff10-\uff19]"                      # ASCII or full-width digit
_NOT_AFTER_DIGIT = "(?<![0-9\uff10-\uff19])"
_NOT_BEFORE_DIGIT = "(?![0-9\uff10-\uff19])"
_SPACE = "[ \t\u00a0\u3000]"                        # incl. no-break and ideographic space
# Between digit groups: spaces, or a dash or dot with optional spaces around it.
_SEP = f"(?:{_SPACE}*[-.\uff0d\uff0e\u2010\u2011\u2013]{_SPACE}*|{_SPACE}+)"
_PLUS = "[+\uff0b]"
_OPEN, _CLOSE = "[(\uff08]", "[)\uff09]"

# Mainland mobile 1[3-9]x xxxx xxxx, optionally after +86 / 86 / 0086 / (+86).
_MOBILE = (
    f"{_NOT_AFTER_DIGIT}"
    f"(?P<mobile_prefix>(?:{_OPEN}{_SPACE}*)?(?:{_PLUS}{_SPACE}*|00)?[8\uff18][6\uff16]"
    f"(?:{_SPACE}*{_CLOSE})?{_SEP}?)?"
    f"(?P<mobile_head>[1\uff11][3-9\uff13-\uff19]{_DIGIT}){_SEP}?{_DIGIT}{{4}}{_SEP}?"
    f"(?P<mobile_tail>{_DIGIT}{{4}}){_NOT_BEFORE_DIGIT}"
)
# Mainland landline: area code 0xx / 0xxx (maybe bracketed), then 7 or 8 digits.
_LANDLINE = (
    f"{_NOT_AFTER_DIGIT}{_OPEN}?[0\uff10]{_DIGIT}{{2,3}}{_CLOSE}?{_SEP}?"
    f"{_DIGIT}{{3,4}}{_SEP}?{_DIGIT}{{4}}{_NOT_BEFORE_DIGIT}"
)
# International: + or 00, a country code, then at least 7 more digits grouped by spaces,
# dashes or brackets (no dots: "+1234567.89" is an amount, not a phone). The match takes
# every digit group that follows, so a number written right after it (+852 9123 4567
# 13812345678) is masked with it rather than half shown.
_GROUP_SEP = "[ \t\u00a0\u3000\\-\uff0d\u2010\u2011\u2013()\uff08\uff09]"
_INTERNATIONAL = (
    f"(?:{_PLUS}|{_NOT_AFTER_DIGIT}00){_SPACE}*{_OPEN}?{_SPACE}*[1-9\uff11-\uff19]"
    f"(?:{_GROUP_SEP}{{0,3}}{_DIGIT}){{7,}}"
)
# E-mail: a local part and a dotted domain; a full-width ＠ counts too. The local part
# starts after any of = / { | } (which delimit log text: "email=liu@example.com" keeps
# "email="), unless one of them is the last character before the @.
_LOCAL_CHAR = r"[\w.!#$%&'*+?^~`\-]"
_LOCAL_DELIMITER = r"[=/{|}]"
_EMAIL = (
    rf"(?P<email_local>(?<!{_LOCAL_CHAR}){_LOCAL_CHAR}+"
    rf"|(?<!{_LOCAL_CHAR})(?<!{_LOCAL_DELIMITER})(?:{_LOCAL_CHAR}|{_LOCAL_DELIMITER})*{_LOCAL_DELIMITER})"
    r"[@\uff20](?P<email_domain>[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_][\w\-]*)"
)
# Tokens that look a little like phones but must stay readable, matched first and kept.
_KEEP = "|".join([
    r"(?<![0-9A-Za-z])[A-Z]{2,5}-[0-9]{8}-[0-9]{4,8}(?![0-9])",              # CL-20261124-000001
    r"(?<![0-9])[0-9]{4}-[0-9]{2}-[0-9]{2}"                                   # ISO date, maybe time
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
    r"(?![0-9])",
    r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}",                  # UUID
    r"(?<![0-9A-Za-z])(?:0[xX])?(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{16,}(?![0-9A-Za-z])",  # hex id
])

_PATTERN = re.compile(
    f"(?P<email>{_EMAIL})|(?P<keep>{_KEEP})|(?P<mobile>{_MOBILE})"
    f"|(?P<international>{_INTERNATIONAL})|(?P<landline>{_LANDLINE})"
)
_DIGIT_CHAR = re.compile(_DIGIT)
_KEPT_DIGITS = 7


def _mask_number(number):
    """All but the first digits masked: as many as leave four masked, at most seven
    (+852 9123 4567 -> +852 9123****, 021-64381234 -> 021-6438****,
    +44 20 7946 0958 -> +44 20 794****). With the cap, an international match that ran on
    into the numbers after it still shows no whole phone: every phone has eight digits."""
    digits = [m.start() for m in _DIGIT_CHAR.finditer(number)]
    if number.startswith("00"):  # the international prefix is not part of the number
        digits = digits[2:]
    first_masked = digits[min(len(digits) - 4, _KEPT_DIGITS)]
    return number[:first_masked].rstrip() + "****"


def _mask_match(match):
    kind = match.lastgroup
    if kind == "email":
        return f"{match.group('email_local')[0]}***@{match.group('email_domain')}"
    if kind == "mobile":
        return f"{match.group('mobile_prefix') or ''}{match.group('mobile_head')}****{match.group('mobile_tail')}"
    if kind in ("international", "landline"):
        return _mask_number(match.group(0))
    return match.group(0)  # keep


def scrub(text):
    """`text` with every phone number and e-mail address in it masked.

    The pure function behind the log filter, for any text that may quote a customer's
    contact details and leaves the process by another road than the logs: notify passes
    a mail provider's error text (an SMTP reply echoing the recipient, an exception
    message) through it before storing it on a delivery or showing it in
    `GET /v1/deliveries`.

    Mobiles keep their first three and last four digits (138****5678), landlines and
    international numbers at most their first seven (021-6438****, +852 9123****), e-mail
    addresses only their first character and the domain (l***@example.com). Case
    numbers, ISO times, UUIDs, hex ids and amounts are left as they are. Masking twice
    changes nothing more. A non-string is masked as its str().
    """
    if not isinstance(text, str):
        text = str(text)
    return _PATTERN.sub(_mask_match, text)


# -- personal data in structured fields --------------------------------------------------

# Keys (compared lower-case without "_", "-", "." or spaces) whose values are personal
# data wherever they appear in extra fields; keys ending in one of PERSONAL_SUFFIXES are
# too (customer_phone, recipient_email).
PERSONAL_KEYS = frozenset({
    "name", "fullname", "realname", "firstname", "lastname", "surname", "givenname",
    "nickname", "displayname",
    "customer", "customername", "client", "clientname", "member", "membername",
    "contact", "contactname", "contacts", "recipient", "recipients", "recipientname",
    "to", "cc", "bcc",
    "phone", "phones", "phonenumber", "phoneno", "mobile", "mobilephone", "cellphone",
    "tel", "telephone",
    "email", "emails", "emailaddress", "mail", "mailaddress",
    "address", "homeaddress", "postaladdress", "deliveryaddress", "shippingaddress",
    "wechat", "wechatid", "weixin", "qq", "idcard", "idnumber", "idcardnumber",
    "passport", "birthday", "birthdate", "dateofbirth", "dob",
})
PERSONAL_SUFFIXES = ("phone", "mobile", "telephone", "email", "emailaddress")
_KEY_NOISE = re.compile(r"[\s_.\-]")
_MAX_DEPTH = 32


def is_personal_key(key):
    if not isinstance(key, str):
        return False
    compact = _KEY_NOISE.sub("", key).lower()
    return compact in PERSONAL_KEYS or compact.endswith(PERSONAL_SUFFIXES)


def mask_personal(value):
    """A personal value as it may be logged: a phone or an e-mail address masked like
    `scrub` does, anything else (a name, an address, an id) reduced to its first
    character ("刘女士" -> "刘**")."""
    text = str(value).strip()
    if not text:
        return text
    whole = _PATTERN.fullmatch(text)
    if whole and whole.lastgroup in ("email", "mobile", "international", "landline"):
        return _mask_match(whole)
    return text[0] + "**"


def _mask_value(value, personal=False, depth=0):
    """`value` as it may be logged, the caller's containers left untouched."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return mask_personal(value) if personal else scrub(value)
    if isinstance(value, numbers.Number):
        return mask_personal(value) if personal else value
    if depth >= _MAX_DEPTH:
        return "[nested too deeply to log]"
    if isinstance(value, Mapping):
        return {(scrub(k) if isinstance(k, str) else k): _mask_value(v, personal or is_personal_key(k), depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        masked = [_mask_value(item, personal, depth + 1) for item in value]
        return tuple(masked) if isinstance(value, tuple) else masked  # a set logs as a list
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _mask_value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)},
                           personal, depth + 1)
    if isinstance(value, (bytes, bytearray)):
        text = value.decode("utf-8", "replace")
        return mask_personal(text) if personal else (value if scrub(text) == text else scrub(text))
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}: {value}"
    else:
        text = str(value)
    if personal:
        return mask_personal(text)
    masked = scrub(text)
    return value if masked == text else masked  # datetimes, UUIDs, ObjectIds stay objects


def _record_attributes():
    probe = logging.LogRecord("probe", logging.INFO, __file__, 1, "", (), None)
    return frozenset(vars(probe)) | {"message", "asctime", "taskName"}


_STANDARD = _record_attributes()
# Standard attributes that are free text (the rest are code identifiers and numbers).
_STANDARD_TEXT = ("message", "threadName", "processName", "taskName")
_DONE = "_personal_data_masked"  # underscore: python-json-logger does not output it


class MaskPersonalData(logging.Filter):
    """The log filter: phones and e-mail addresses masked everywhere in a record,
    personal-data keys masked in its structured fields. Always lets the record through."""

    def filter(self, record):
        if getattr(record, _DONE, False):
            return True
        try:
            self._mask(record)
        except Exception as exc:  # never raise from logging, never leak instead
            record.msg, record.args = f"[log record withheld: masking failed ({type(exc).__name__})]", ()
            record.exc_info = record.exc_text = record.stack_info = None
            for key in set(vars(record)) - _STANDARD:
                if not key.startswith("_"):
                    setattr(record, key, "[withheld]")
        setattr(record, _DONE, True)
        return True

    @staticmethod
    def _mask(record):
        if isinstance(record.msg, dict) and not record.args:
            record.msg = _mask_value(record.msg)  # python-json-logger logs a dict's fields
        else:
            args = record.args
            if isinstance(args, Mapping):
                record.args = args = _mask_value(args)
            try:
                message = record.getMessage()
            except Exception:  # wrong arguments: say what there was, masked
                message = f"{record.msg} (arguments: {args!r})"
            # Formatted once, masked, so no argument (an exception, an object) escapes.
            record.msg, record.args = scrub(message), ()
        if record.exc_info:
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        elif isinstance(record.exc_text, str):
            record.exc_text = scrub(record.exc_text)
        if isinstance(record.stack_info, str):
            record.stack_info = scrub(record.stack_info)
        for key in _STANDARD_TEXT:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, scrub(value))
        for key in set(vars(record)) - _STANDARD:
            if not key.startswith("_"):
                setattr(record, key, _mask_value(getattr(record, key), is_personal_key(key)))
