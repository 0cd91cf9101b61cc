"""services/notify/messages.py: which message each event causes, and its text."""
from datetime import datetime, timedelta, timezone

import pytest

from closeloop_shared import events as ev
from closeloop_shared.access import Principal
from closeloop_shared.contract import Role
from closeloop_shared.org import Staff
from services.notify import messages
from services.notify.messages import Message

T = datetime(2026, 11, 23, 17, 30, tzinfo=timezone.utc)   # 2026-11-24 01:30 in China
NUMBER = "CL-20261124-000042"
CUSTOMER = {"name": "刘女士", "phone": "+8613812345678", "email": "liu@example.com",
            "member_id": None}
MANAGER = {"staff_id": "sh-xh-mg", "name": "张丽", "role": "store_manager",
           "email": "zhang.li@yueyan.example"}
REGIONAL = {"staff_id": "rm-east", "name": "陈立华", "role": "regional_manager",
            "email": "rm.east@yueyan.example"}


def loaded(event_type, data):
    """The event as notify sees it: through the bus contract."""
    if "case_number" in ev.SCHEMAS[event_type].fields:
        data.setdefault("case_number", NUMBER)
    return ev.load(event_type, ev.dump(event_type, data))


def submitted(**overrides):
    data = {"case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001",
            "store_name": "上海徐汇店", "channel": "hotline", "customer": dict(CUSTOMER),
            "content": "脸上过敏红肿", "occurred_at": T - timedelta(hours=2), "submitted_at": T}
    data.update(overrides)
    return loaded(ev.CASE_SUBMITTED, data)


def routed(report_due=None, **overrides):
    data = {"case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001",
            "category": "product_efficacy", "severity": "high", "assignee": dict(MANAGER),
            "rung": 2, "routed_at": T,
            "deadlines": {"first_response_due": T + timedelta(hours=24),
                          "resolution_due": T + timedelta(hours=48), "report_due": report_due}}
    data.update(overrides)
    return loaded(ev.CASE_ROUTED, data)


def escalated(**overrides):
    data = {"case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001",
            "severity": "critical", "reason": "critical_referral", "rung": 3,
            "previous_assignee": dict(MANAGER), "assignee": dict(REGIONAL), "escalated_at": T}
    data.update(overrides)
    return loaded(ev.CASE_ESCALATED, data)


def due(**overrides):
    data = {"revisit_id": "r7", "round": 1, "case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001",
            "owner": {"staff_id": "sh-xh-rv", "name": "赵敏", "role": "store_staff",
                      "email": "zhao.min@yueyan.example"},
            "customer": dict(CUSTOMER), "due_at": T}
    data.update(overrides)
    return loaded(ev.FOLLOWUP_DUE, data)


def test_local_time_is_china_time_to_the_minute():
    assert messages.local_time(T) == "2026-11-24 01:30"
    assert messages.local_time(datetime(2026, 11, 24, 9, 30, 59, tzinfo=timezone.utc)) \
        == "2026-11-24 17:30"
    assert messages.local_time(None) is None


# -- acknowledgement --------------------------------------------------------------------

def test_acknowledgement_in_chinese_by_default():
    message = messages.acknowledgement(submitted())
    assert isinstance(message, Message)
    assert (message.case_id, message.kind, message.recipient) == (
        "c42", "acknowledgement", "liu@example.com")
    assert message.subject == f"【上海徐汇店】您的反馈已受理(编号 {NUMBER})"
    assert message.body.startswith("尊敬的刘女士:")
    assert NUMBER in message.body
    assert "24小时内" in message.body
    assert "\n" not in message.subject


def test_acknowledgement_in_english():
    message = messages.acknowledgement(submitted(locale="en"))
    assert message.subject == f"[上海徐汇店] We have received your feedback (case {NUMBER})"
    assert message.body.startswith("Dear 刘女士,")
    assert "尊敬" not in message.body


def test_acknowledgement_without_email_has_no_recipient():
    message = messages.acknowledgement(submitted(customer=dict(CUSTOMER, email=None)))
    assert message.recipient is None
    assert NUMBER in message.subject


def test_an_unknown_locale_falls_back_to_chinese():
    data = dict(submitted(), locale="fr")  # the contract would refuse it; be safe anyway
    assert messages.acknowledgement(data).subject.startswith("【上海徐汇店】")


# -- assignment -----------------------------------------------------------------------

def test_assignment_in_chinese():
    message = messages.assignment(routed())
    assert (message.case_id, message.kind, message.recipient) == (
        "c42", "assigned", "zhang.li@yueyan.example")
    assert message.subject == f"【待处理】严重顾客反馈 {NUMBER}(产品效果)"
    assert message.body.startswith("张丽,您好:")
    assert "类别:产品效果;严重程度:严重" in message.body
    # Deadlines as store staff read them: China time.
    assert "首次回应截止:2026-11-25 01:30" in message.body
    assert "解决截止:2026-11-26 01:30" in message.body
    assert "书面报告截止" not in message.body


def test_assignment_of_a_referral_shows_the_report_deadline():
    message = messages.assignment(routed(report_due=T + timedelta(hours=8), severity="critical",
                                         category="hygiene"))
    assert "书面报告截止:2026-11-24 09:30" in message.body
    assert "紧急(消协/媒体)" in message.subject
    assert "环境卫生" in message.subject


def test_assignment_in_english():
    message = messages.assignment(routed(locale="en", report_due=T + timedelta(hours=8)))
    assert message.subject == f"[Action needed] high feedback {NUMBER} (product efficacy)"
    assert "First response due: 2026-11-25 01:30" in message.body
    assert "Resolution due: 2026-11-26 01:30" in message.body
    assert "Written report due: 2026-11-24 09:30" in message.body
    assert "截止" not in message.body


def test_assignment_without_email_has_no_recipient():
    assert messages.assignment(routed(assignee=dict(MANAGER, email=None))).recipient is None


@pytest.mark.parametrize("category", ev.CATEGORIES)
@pytest.mark.parametrize("locale", ev.LOCALES)
def test_every_category_has_a_label(category, locale):
    message = messages.assignment(routed(category=category, locale=locale))
    assert messages.LABELS[locale][category] in message.subject
    assert category not in message.subject or messages.LABELS[locale][category] == category


# -- escalation -----------------------------------------------------------------------

def test_escalation_in_chinese():
    message = messages.escalation(escalated())
    assert (message.case_id, message.kind, message.recipient) == (
        "c42", "escalated:3", "rm.east@yueyan.example")
    assert message.subject == f"【升级】顾客反馈 {NUMBER} 已上报至您"
    assert message.body.startswith("陈立华,您好:")
    assert "原因:消协/媒体转来的投诉,立即上报" in message.body
    assert "原负责人:张丽" in message.body
    assert "严重程度:紧急(消协/媒体)" in message.body


@pytest.mark.parametrize("reason, zh", [
    ("first_response", "24小时内未首次回应"),
    ("resolution", "48小时内未解决"),
    ("report", "8小时内未提交书面报告"),
])
def test_escalation_reasons_are_explained(reason, zh):
    assert f"原因:{zh}" in messages.escalation(escalated(reason=reason, severity="low")).body


def test_an_unknown_reason_is_shown_as_is():
    assert "原因:manual_override" in messages.escalation(escalated(reason="manual_override")).body


def test_escalation_without_previous_owner():
    message = messages.escalation(escalated(previous_assignee=None))
    assert "原负责人" not in message.body


def test_escalation_in_english():
    message = messages.escalation(escalated(locale="en", reason="resolution", rung=4,
                                            assignee={"staff_id": "gm-001", "name": "周慧敏",
                                                      "role": "general_manager", "email": None}))
    assert message.kind == "escalated:4"
    assert message.recipient is None
    assert message.subject == f"[Escalated] Feedback {NUMBER} is now yours"
    assert "Reason: not resolved within the deadline" in message.body
    assert "Previous owner: 张丽" in message.body


def test_each_rung_is_its_own_message():
    kinds = {messages.escalation(escalated(rung=r)).kind for r in (1, 2, 3, 4)}
    assert kinds == {"escalated:1", "escalated:2", "escalated:3", "escalated:4"}


# -- revisit due ----------------------------------------------------------------------

def test_revisit_due_in_chinese():
    message = messages.revisit_due(due())
    assert (message.case_id, message.kind, message.recipient) == (
        "c42", "revisit_due:r7", "zhao.min@yueyan.example")
    assert message.subject == f"【满意度回访】请回访顾客 刘女士(编号 {NUMBER})"
    assert "电话 +8613812345678" in message.body
    assert "赵敏,您好" in message.body


def test_revisit_due_in_english_without_phone():
    message = messages.revisit_due(due(locale="en", customer=dict(CUSTOMER, phone=None)))
    assert message.subject == f"[Satisfaction revisit] Call 刘女士 about case {NUMBER}"
    assert "(-)" in message.body
    assert message.kind == "revisit_due:r7"


def test_revisit_due_without_owner_email():
    data = due()
    data["owner"] = dict(data["owner"], email=None)
    assert messages.revisit_due(data).recipient is None


# -- the store of each message (whose staff may see its delivery) -----------------------

def test_every_message_names_its_store():
    built = [messages.acknowledgement(submitted()), messages.assignment(routed()),
             messages.escalation(escalated()), messages.revisit_due(due()),
             messages.reassignment(reassigned())]
    assert [m.store_id for m in built] == ["SH-XH-001"] * 5
    other = messages.assignment(routed(store_id="BJ-CY-101"))
    assert other.store_id == "BJ-CY-101"


# -- reassignment ---------------------------------------------------------------------

def reassigned(**overrides):
    data = {"case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001", "severity": "high",
            "reason": "staff_deactivated", "previous_assignee": dict(MANAGER),
            "assignee": dict(REGIONAL), "reassigned_at": T}
    data.update(overrides)
    return loaded(ev.CASE_REASSIGNED, data)


def test_reassignment_in_chinese():
    message = messages.reassignment(reassigned())
    assert (message.case_id, message.kind, message.recipient) == (
        "c42", "reassigned:sh-xh-mg", "rm.east@yueyan.example")
    assert message.subject == f"【转交】顾客反馈 {NUMBER} 已转交给您"
    assert message.body.startswith("陈立华,您好:")
    assert "严重程度:严重" in message.body
    assert "原负责人 张丽 已不再负责" in message.body
    assert "\n" not in message.subject


def test_reassignment_in_english():
    message = messages.reassignment(reassigned(locale="en", severity="critical"))
    assert message.subject == f"[Handed over] Feedback {NUMBER} is now yours"
    assert message.body.startswith("Hello 陈立华,")
    assert "severity: critical (referral)" in message.body
    assert "张丽 no longer handles it" in message.body
    assert "转交" not in message.body


def test_reassignment_without_previous_owner():
    message = messages.reassignment(reassigned(previous_assignee=None))
    assert message.kind == "reassigned:-"
    assert "原负责人" not in message.body


def test_reassignment_without_email_has_no_recipient():
    assert messages.reassignment(reassigned(assignee=dict(REGIONAL, email=None))).recipient is None


def test_each_handover_is_its_own_message():
    """Handed from A, then from B: two notifications; the same handover redelivered: one."""
    first = messages.reassignment(reassigned())
    again = messages.reassignment(reassigned())
    later = messages.reassignment(reassigned(previous_assignee=dict(REGIONAL),
                                             assignee=dict(MANAGER, staff_id="cs-001")))
    assert first.kind == again.kind != later.kind


# -- what the delivery log shows --------------------------------------------------------

def principal_with(role):
    return Principal.for_staff(Staff("p1", "某人", role, store_id="SH-XH-001"), "yueyan")


DELIVERY = {"_id": "d1", "case_id": "c42", "kind": "acknowledgement", "recipient": "liu@example.com",
            "subject": "【上海徐汇店】您的反馈已受理", "body": "尊敬的刘女士:...", "status": "sent",
            "store_id": "SH-XH-001"}


@pytest.mark.parametrize("role, sees", [
    (Role.STORE_STAFF, True), (Role.SUPERVISOR, True), (Role.STORE_MANAGER, True),
    (Role.CUSTOMER_SERVICE, True),
    (Role.REGIONAL_MANAGER, False), (Role.GENERAL_MANAGER, False), (Role.ADMIN, False),
])
def test_delivery_view_never_shows_the_body_and_the_recipient_only_to_those_who_call(role, sees):
    shown = messages.delivery_view(dict(DELIVERY), principal_with(role))
    assert "body" not in shown and "_id" not in shown
    assert shown["recipient"] == ("liu@example.com" if sees else None)
    assert (shown["case_id"], shown["kind"], shown["status"]) == ("c42", "acknowledgement", "sent")
    assert DELIVERY["recipient"] == "liu@example.com"  # the stored delivery is untouched


def test_delivery_view_for_an_integration_hides_the_recipient():
    pos = Principal.for_integration({"client_id": "pos", "name": "POS", "brand_id": "yueyan",
                                     "permissions": ["feedback:read"]})
    assert messages.delivery_view(dict(DELIVERY), pos)["recipient"] is None
