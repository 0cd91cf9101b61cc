"""Structured logs never carry a raw phone number: this filter masks any that slipped
into a message, its arguments, its extra fields or an exception's text
(13812345678 -> 138****5678)."""
import logging
import re
import traceback

# Mainland mobiles as people write them: 13812345678, +86 138 1234 5678, 138-1234-5678.
MOBILE = re.compile(r"(?<!\d)(\+?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
# Other numbers intake accepts: international (+852 9123 4567) and landlines with an area
# code (021-6123 4567). Case numbers (CL-20261124-000001) and amounts do not look like these.
OTHER = re.compile(r"(?<![\w\d])(\+\d{2,3}|0\d{2,3})([\s-]?\d){7,12}(?!\d)")


def mask_phones(text):
    text = MOBILE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)
    return OTHER.sub(lambda m: m.group(0)[:-4].rstrip() + "****" if len(m.group(0)) > 8 else m.group(0), text)


class MaskPhones(logging.Filter):
    def filter(self, record):
        # Format once, masked, so no argument (an exception, a dict) escapes the mask.
        record.msg, record.args = mask_phones(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = mask_phones("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "name", "pathname", "filename", "exc_text"):
                setattr(record, key, mask_phones(value))
        return True
