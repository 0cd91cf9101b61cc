"""Which messages an event causes, and their text. Pure: no nameko, no pymongo.

Templates live in templates/<locale>/<kind>.txt; the first line is the subject.
zh-CN is the default; English when the case says so."""
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from closeloop_shared.access import sees_personal_data
from closeloop_shared.clock import CHINA

TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                  keep_trailing_newline=True, autoescape=False)

LABELS = {
    "zh-CN": {
        "service_quality": "服务质量", "hygiene": "环境卫生", "product_efficacy": "产品效果",
        "staff_attitude": "员工态度", "price": "价格收费", "technician_skill": "美容师技术",
        "equipment": "仪器设备", "booking": "预约", "other": "其他",
        "low": "一般", "medium": "较重", "high": "严重", "critical": "紧急(消协/媒体)",
        "first_response": "24小时内未首次回应", "resolution": "48小时内未解决",
        "report": "8小时内未提交书面报告", "critical_referral": "消协/媒体转来的投诉,立即上报",
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
    },
}


@dataclass(frozen=True)
class Message:
    case_id: str
    kind: str       # with the recipient, what makes a delivery unique
    recipient: str | None  # e-mail address; None when we have no way to reach them
    subject: str
    body: str
    store_id: str | None = None  # whose staff may see the delivery in the log


def local_time(moment):
    """Deadlines as store staff read them: China time, to the minute."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if moment else None


def render(template, locale, **context):
    locale = locale if locale in LABELS else "zh-CN"
    text = ENV.get_template(f"{locale}/{template}.txt").render(**context)
    subject, _, body = text.partition("\n")
    return subject.strip(), body.lstrip("\n")


def acknowledgement(submitted):
    customer = submitted["customer"]
    subject, body = render("acknowledgement", submitted["locale"], store_name=submitted["store_name"],
                           customer_name=customer["name"], case_number=submitted["case_number"])
    return Message(submitted["case_id"], "acknowledgement", customer.get("email"), subject, body,
                   submitted["store_id"])


def assignment(routed):
    labels = LABELS.get(routed["locale"], LABELS["zh-CN"])
    assignee = routed["assignee"]
    subject, body = render(
        "case_assigned", routed["locale"], assignee_name=assignee["name"],
        case_number=routed["case_number"], store_id=routed["store_id"],
        category_label=labels[routed["category"]], severity_label=labels[routed["severity"]],
        deadlines={k: local_time(v) for k, v in routed["deadlines"].items()})
    return Message(routed["case_id"], "assigned", assignee.get("email"), subject, body,
                   routed["store_id"])


def _to_new_owner(template, event, kind, **context):
    """A message telling the case's new owner (escalated or handed over) it is theirs."""
    labels = LABELS.get(event["locale"], LABELS["zh-CN"])
    previous = event.get("previous_assignee")
    subject, body = render(
        template, event["locale"], assignee_name=event["assignee"]["name"],
        case_number=event["case_number"], store_id=event["store_id"],
        severity_label=labels[event["severity"]],
        previous_name=previous["name"] if previous else None, **context)
    return Message(event["case_id"], kind, event["assignee"].get("email"), subject, body,
                   event["store_id"])


def escalation(escalated):
    labels = LABELS.get(escalated["locale"], LABELS["zh-CN"])
    # One message per rung: a case climbing twice tells each new owner once.
    return _to_new_owner("case_escalated", escalated, f"escalated:{escalated['rung']}",
                         reason_label=labels.get(escalated["reason"], escalated["reason"]))


def reassignment(reassigned):
    previous = reassigned.get("previous_assignee")
    # One message per handover: the kind names whom the case came from.
    return _to_new_owner("case_reassigned", reassigned,
                         f"reassigned:{previous['staff_id'] if previous else '-'}")


def revisit_due(due):
    customer = due["customer"]
    subject, body = render(
        "followup_due", due["locale"], owner_name=due["owner"]["name"],
        case_number=due["case_number"], customer_name=customer["name"],
        customer_phone=customer.get("phone") or "-")
    return Message(due["case_id"], f"revisit_due:{due['revisit_id']}", due["owner"].get("email"),
                   subject, body, due["store_id"])


def delivery_view(delivery, principal):
    """What GET /v1/deliveries shows of a delivery: never the body; the recipient only
    to roles that may see personal data."""
    shown = {k: v for k, v in delivery.items() if k not in ("_id", "body")}
    if not sees_personal_data(principal):
        shown["recipient"] = None
    return shown
