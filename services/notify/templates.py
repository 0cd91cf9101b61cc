"""Templates per kind, channel and locale, rendered by jinja2 with every variable
checked before anything is sent. Pure: no nameko, no pymongo.

Files: templates/<locale>/<template>.<channel>.<ext> (zh-CN first; a locale without the
file falls back to zh-CN); a template without a file for a channel cannot go by it.
- email.txt: first line the subject, the rest the plain body; the HTML part is the same
  text in templates/email.html.
- sms.txt: first line the text as registered with the SMS provider, its variables as
  ${name}; then one `name = value` line per variable. The provider's template code comes
  from config (NOTIFY_SMS_TEMPLATES); lengths follow Aliyun's rules.
- wechat.txt: one `field = value` line per data field of the WeChat template (thing1,
  character_string2, time3 ...), checked against WeChat's field types.
- wecom.md: markdown for the staff group robot (a group: phones masked).

Variables are the event's own fields (deadlines included) plus `person` (whom it is
for) and `store_name`; filters: local (store-local time), short (MM-DD HH:MM),
duration(start) (a span in words), label (category, severity, reason), mask (phone)."""
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import (Environment, FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound,
                    pass_context, select_autoescape)

from closeloop_shared.access import mask_phone
from closeloop_shared.contract import NotifyChannel
from closeloop_shared.org import DEFAULT_TIMEZONE
from services.notify.channels import Content

ROOT = Path(__file__).parent / "templates"
DEFAULT_LOCALE = "zh-CN"
FILES = {NotifyChannel.EMAIL: "email.txt", NotifyChannel.SMS: "sms.txt",
         NotifyChannel.WECHAT: "wechat.txt", NotifyChannel.WECOM: "wecom.md"}

# Aliyun: a variable at most 35 characters; one SMS is 70 characters with the sign
# (67 a part when longer), and a long one at most 500.
SMS_VARIABLE_MAX = 35
SMS_SINGLE = 70
SMS_PART = 67
SMS_MAX = 500
# WeChat template/subscription data field types and their length limits (characters).
WECHAT_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "number": 32, "letter": 32,
                 "symbol": 5, "name": 10, "phone_number": 17, "car_number": 8, "amount": 16,
                 "time": 24, "date": 24, "first": 200, "keyword": 200, "remark": 200}

LABELS = {
    "zh-CN": {
        "service_quality": "服务质量", "hygiene": "环境卫生", "product_efficacy": "产品效果",
        "staff_attitude": "员工态度", "price": "价格收费", "technician_skill": "美容师技术",
        "equipment": "仪器设备", "booking": "预约", "other": "其他",
        "low": "一般", "medium": "较重", "high": "严重", "critical": "紧急(消协/媒体)",
        "first_response": "未在时限内首次回应", "resolution": "未在时限内解决",
        "report": "未按时提交书面报告", "critical_referral": "消协/媒体转来的投诉,立即上报",
        "update": "未按时向顾客更新进展", "unacknowledged": "上一级未在时限内确认",
        "clock:first_response": "首次回应", "clock:update": "进展回复", "clock:resolution": "解决",
        "clock:report": "书面报告",
    },
    "en": {
        "service_quality": "service quality", "hygiene": "hygiene",
        "product_efficacy": "product efficacy", "staff_attitude": "staff attitude",
        "price": "price", "technician_skill": "technician skill", "equipment": "equipment",
        "booking": "booking", "other": "other",
        "low": "low", "medium": "medium", "high": "high", "critical": "critical (referral)",
        "first_response": "no first response within the deadline",
        "resolution": "not resolved within the deadline",
        "report": "written report overdue",
        "critical_referral": "consumer-association or media referral, escalated at once",
        "update": "no progress update to the customer in time",
        "unacknowledged": "not acknowledged in time on the rung below",
        "clock:first_response": "first response", "clock:update": "progress update",
        "clock:resolution": "resolution", "clock:report": "written report",
    },
}
UNITS = {"zh-CN": (("天", "小时", "分钟"), ""), "en": (("day", "hour", "minute"), " ")}


class InvalidMessage(ValueError):
    """A template that cannot be rendered with this event, or whose result breaks the
    channel's rules: the channel is not used for this notification."""


def _zone(context):
    return ZoneInfo(context.get("timezone") or DEFAULT_TIMEZONE)


@pass_context
def local(context, moment):
    return moment.astimezone(_zone(context)).strftime("%Y-%m-%d %H:%M") if moment else ""


@pass_context
def short(context, moment):
    return moment.astimezone(_zone(context)).strftime("%m-%d %H:%M") if moment else ""


@pass_context
def duration(context, end, start):
    """The span from `start` to `end` in words: 1天2小时, 24小时, 30分钟 / 1 day 2 hours."""
    if not end or not start:
        return ""
    minutes = max(int((end - start) / timedelta(minutes=1)), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    (names, space) = UNITS.get(context.get("locale"), UNITS[DEFAULT_LOCALE])
    parts = []
    for value, name in zip((days, hours, minutes), names):
        if value:
            plural = "s" if space and value != 1 else ""
            parts.append(f"{value}{space}{name}{plural}")
    return space.join(parts) or f"0{space}{names[2]}{'s' if space else ''}"


@pass_context
def label(context, value):
    return LABELS.get(context.get("locale"), LABELS[DEFAULT_LOCALE]).get(value, value)


ENV = Environment(loader=FileSystemLoader(ROOT), undefined=StrictUndefined,
                  autoescape=select_autoescape(["html"]), keep_trailing_newline=False)
ENV.filters.update(local=local, short=short, duration=duration, label=label, mask=mask_phone)


def _path(template, channel, locale):
    name = f"{template}.{FILES[NotifyChannel(channel)]}"
    for candidate in (locale, DEFAULT_LOCALE):
        if (ROOT / candidate / name).exists():
            return f"{candidate}/{name}"
    return None


def available(template, channel, locale=DEFAULT_LOCALE):
    return NotifyChannel(channel) in FILES and _path(template, channel, locale) is not None


def render(template, channel, locale, context, sms_sign=""):
    """The Content of `template` for `channel`; InvalidMessage if a variable is missing
    or the result breaks the channel's limits."""
    channel = NotifyChannel(channel)
    locale = locale if locale in LABELS else DEFAULT_LOCALE
    path = _path(template, channel, locale) if channel in FILES else None
    if path is None:
        raise InvalidMessage(f"no {channel.value} template for {template}")
    variables = {**context, "locale": locale}
    try:
        text = ENV.get_template(path).render(**variables).strip()
        if channel is NotifyChannel.EMAIL:
            subject, _, body = text.partition("\n")
            body = body.strip()
            html = ENV.get_template("email.html").render(subject=subject.strip(),
                                                         paragraphs=body.split("\n\n"))
            return Content(subject=subject.strip(), text=body, html=html)
    except (TemplateError, TemplateNotFound, KeyError, AttributeError, TypeError) as exc:
        raise InvalidMessage(f"{path}: {exc}") from None
    if channel is NotifyChannel.SMS:
        return _sms(path, text, sms_sign)
    if channel is NotifyChannel.WECHAT:
        return Content(params=_wechat_fields(path, text))
    return Content(text=text)


def _pairs(path, lines):
    pairs = {}
    for line in lines:
        name, equals, value = line.partition("=")
        if not equals or not name.strip():
            raise InvalidMessage(f"{path}: not a `name = value` line: {line!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _sms(path, text, sign):
    lines = [line for line in text.split("\n") if line.strip()]
    body, params = lines[0], _pairs(path, lines[1:])
    wanted = set(re.findall(r"\$\{(\w+)\}", body))
    if wanted != set(params):
        raise InvalidMessage(f"{path}: variables {sorted(wanted)} but values for {sorted(params)}")
    for name, value in params.items():
        if not value or len(value) > SMS_VARIABLE_MAX:
            raise InvalidMessage(f"{path}: ${{{name}}} must have 1-{SMS_VARIABLE_MAX} characters")
    filled = re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], body)
    preview = f"【{sign}】{filled}" if sign else filled
    if len(preview) > SMS_MAX:
        raise InvalidMessage(f"{path}: {len(preview)} characters, more than {SMS_MAX}")
    return Content(text=preview, params=params)


def sms_parts(text):
    """How many messages the provider bills for `text`."""
    return 1 if len(text) <= SMS_SINGLE else -(-len(text) // SMS_PART)


def _wechat_fields(path, text):
    fields = _pairs(path, [line for line in text.split("\n") if line.strip()])
    for name, value in fields.items():
        kind = re.sub(r"\d+$", "", name)
        limit = WECHAT_LIMITS.get(kind)
        if limit is None:
            raise InvalidMessage(f"{path}: {name} is not a WeChat field type")
        if kind == "thing" and len(value) > limit:  # free text: WeChat's practice is to cut it
            value = value[:limit - 1] + "…"
        if not value or len(value) > limit:
            raise InvalidMessage(f"{path}: {name} must have 1-{limit} characters")
        fields[name] = value
    return fields


def webhook_body(notification, now):
    """What another system receives: the notification's facts, no personal data."""
    return {"type": f"notification.{notification.template}", "kind": notification.kind,
            "audience": notification.audience.value, "case_id": notification.case_id,
            "case_number": notification.case_number, "store_id": notification.store_id,
            "locale": notification.locale, "created_at": now.isoformat()}
