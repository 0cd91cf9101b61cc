"""Structured logs never carry a raw phone number: this filter masks any that slipped
into a message or its extra fields (13812345678 -> 138****5678)."""
import logging
import re

PHONE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_phones(text):
    return PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)


class MaskPhones(logging.Filter):
    def filter(self, record):
        if isinstance(record.msg, str):
            record.msg = mask_phones(record.msg)
        if record.args:
            record.args = tuple(mask_phones(a) if isinstance(a, str) else a
                                for a in (record.args if isinstance(record.args, tuple) else (record.args,)))
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "name", "pathname", "filename"):
                setattr(record, key, mask_phones(value))
        return True
