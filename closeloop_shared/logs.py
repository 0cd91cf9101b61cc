"""Structured logs never carry a raw phone number: this filter masks any that slipped
into a message or its extra fields (13812345678 -> 138****5678)."""
import logging
import re
from collections.abc import Mapping

# Mainland mobiles as people write them: 13812345678, +86 138 1234 5678, 138-1234-5678.
PHONE = re.compile(r"(?<!\d)(\+?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")


def mask_phones(text):
    return PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)


def _masked(value):
    return mask_phones(value) if isinstance(value, str) else value


class MaskPhones(logging.Filter):
    def filter(self, record):
        if isinstance(record.msg, str):
            record.msg = mask_phones(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {key: _masked(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_masked(arg) for arg in record.args)
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "name", "pathname", "filename"):
                setattr(record, key, mask_phones(value))
        return True
