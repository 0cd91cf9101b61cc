"""services/notify/templates.py and kinds.py: which notification each event causes, and
its text per channel and locale, with the true deadlines and each channel's rules."""
import itertools
from datetime import datetime, timedelta, timezone

import pytest

from closeloop_shared import events as ev
from services.notify import kinds, templates
from services.notify.kinds import Audience
from services.notify.templates import InvalidMessage

T = datetime(2026, 11, 23, 17, 30, tzinfo=timezone.utc)   # 2026-11-24 01:30 in China
NUMBER = "CL-20261124-000042"
CUSTOMER = {"name": "刘女士", "phone": "+8613812345678", "email": "liu@example.com", "member_id": None}
MANAGER = {"staff_id": "sh-xh-mg", "name": "张丽", "role": "store_manager", "email": "zhang.li@yueyan.example"}
REGIONAL = {"staff_id": "rm-east", "name": "陈立华", "role": "regional_manager", "email": "rm.east@yueyan.example"}


def loaded(event_type, data):
    """The event as notify sees it: through the bus contract."""
    return ev.load(event_type, ev.dump(event_type, data))


def submitted(**overrides):
    return loaded(ev.CASE_SUBMITTED, {
        "case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001", "store_name": "上海徐汇店",
        "channel": "hotline", "customer": dict(CUSTOMER), "content": "脸上过敏红肿",
        "occurred_at": T - timedelta(hours=2), "submitted_at": T, **overrides})


def routed(first=timedelta(hours=24), resolution=timedelta(hours=48), report=None, **overrides):
    return loaded(ev.CASE_ROUTED, {
        "case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001", "category": "product_efficacy",
        "severity": "high", "assignee": dict(MANAGER), "rung": 2, "routed_at": T,
        "deadlines": {"first_response_due": T + first, "resolution_due": T + resolution,
                      "report_due": T + report if report else None}, **overrides})


def escalated(**overrides):
    return loaded(ev.CASE_ESCALATED, {
        "case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001", "severity": "high",
        "reason": "first_response", "rung": 3, "previous_assignee": dict(MANAGER), "assignee": dict(REGIONAL),
        "escalated_at": T, "due_at": T - timedelta(hours=1, minutes=30), **overrides})


def reassigned(**overrides):
    return loaded(ev.CASE_REASSIGNED, {
        "case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001", "severity": "high",
        "reason": "staff_deactivated", "previous_assignee": dict(MANAGER), "assignee": dict(REGIONAL),
        "reassigned_at": T, **overrides})


def due(**overrides):
    return loaded(ev.FOLLOWUP_DUE, {
        "revisit_id": "r7", "round": 1, "case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001",
        "owner": {"staff_id": "sh-xh-rv", "name": "赵敏", "role": "store_staff", "email": "zhao.min@yueyan.example"},
        "customer": dict(CUSTOMER), "due_at": T, **overrides})


def approached(**overrides):
    return loaded(ev.CASE_DEADLINE_APPROACHED, {
        "case_id": "c42", "case_number": NUMBER, "store_id": "SH-XH-001", "severity": "high",
        "clock": "resolution", "basis": "wall", "due_at": T + timedelta(hours=2), "warned_at": T,
        "assignee": dict(MANAGER), **overrides})


def appointment(event_type, **overrides):
    moment = {ev.APPOINTMENT_CONFIRMED: "confirmed_at", ev.APPOINTMENT_REMINDER_DUE: "reminded_at",
              ev.APPOINTMENT_CHANGE_REQUESTED: "requested_at"}[event_type]
    return loaded(event_type, {
        "event_id": "e1", "case_id": "A-9", "appointment_id": "A-9", "store_id": "SH-XH-001",
        "customer": dict(CUSTOMER), "service_item": "补水面部护理", "starts_at": T + timedelta(days=1),
        moment: T, **overrides})


GENERAL = {"staff_id": "gm-001", "name": "周慧敏", "role": "general_manager", "email": "gm@yueyan.example"}


def digest(**overrides):
    return loaded(ev.WEEKLY_DIGEST_READY, {
        "event_id": "e9", "digest_id": "2026-11-16:region:east", "level": "region", "unit_id": "east",
        "unit_name": "华东", "store_id": "SH-XH-001", "managers": [dict(REGIONAL), dict(GENERAL)],
        "week_from": T.date() - timedelta(days=7), "week_to": T.date() - timedelta(days=1), "cases": 9,
        "first_response_rate": 0.8889, "resolution_rate": None, "satisfaction_rate": 1.0, "repeat_30_rate": 0.0,
        "cases_change": 2, "root_causes": [
            {"root_cause": "service_not_in_place", "cases": 2, "share": 0.6667, "cumulative": 0.6667},
            {"root_cause": "unkept_promise", "cases": 1, "share": 0.3333,
             "cumulative": 1.0}], **overrides})


EVENTS = {ev.WEEKLY_DIGEST_READY: digest, ev.CASE_SUBMITTED: submitted, ev.CASE_ROUTED: routed, ev.CASE_ESCALATED: escalated,
          ev.CASE_REASSIGNED: reassigned, ev.FOLLOWUP_DUE: due, ev.CASE_DEADLINE_APPROACHED: approached,
          ev.APPOINTMENT_CONFIRMED: lambda **o: appointment(ev.APPOINTMENT_CONFIRMED, **o),
          ev.APPOINTMENT_REMINDER_DUE: lambda **o: appointment(ev.APPOINTMENT_REMINDER_DUE, **o),
          ev.APPOINTMENT_CHANGE_REQUESTED: lambda **o: appointment(
              ev.APPOINTMENT_CHANGE_REQUESTED, store_staff=dict(MANAGER), requested_starts_at=T + timedelta(days=2),
              note="出差", requested_by="cs-001", **o)}


def render(event_type, event, channel, locale=None, timezone_name="Asia/Shanghai", **context):
    notification = kinds.notification(event_type, event)
    variables = {**notification.context, "store_name": event.get("store_name") or "上海徐汇店",
                 "timezone": timezone_name, **context}
    return templates.render(notification.template, channel, locale or notification.locale, variables,
                            sms_sign="悦颜美容")


# -- the table of kinds ----------------------------------------------------------------------

def test_every_event_in_the_table_has_a_sample_here():
    assert set(EVENTS) == set(kinds.RULES)


def test_every_event_in_the_table_has_its_templates_in_both_locales():
    for rule in kinds.RULES.values():
        channels = ("wechat", "sms", "email") if rule.audience is Audience.CUSTOMER else ("wecom", "email")
        for channel, locale in itertools.product(channels, ("zh-CN", "en")):
            assert templates._path(rule.template, channel, locale) == f"{locale}/{rule.template}." \
                f"{templates.FILES[channel]}", (rule.template, channel, locale)


@pytest.mark.parametrize("event_type", sorted(EVENTS))
@pytest.mark.parametrize("locale", ev.LOCALES)
def test_every_template_renders_for_every_channel_with_its_event(event_type, locale):
    event = EVENTS[event_type](locale=locale)
    notification = kinds.notification(event_type, event)
    for channel in templates.FILES:
        if templates.available(notification.template, channel, locale):
            content = render(event_type, event, channel)
            assert content.text or content.params, (notification.template, channel)


def test_identity_and_recipients():
    ack = kinds.notification(ev.CASE_SUBMITTED, submitted())
    assert (ack.kind, ack.audience, ack.urgent) == ("acknowledgement", Audience.CUSTOMER, False)
    assert ack.recipient.startswith("customer:") and "13812345678" not in ack.recipient
    assert ack.addresses == {"sms": "+8613812345678", "email": "liu@example.com"}
    assert kinds.notification(ev.CASE_ESCALATED, escalated()).kind == "escalated:3"
    assert kinds.notification(ev.CASE_REASSIGNED, reassigned()).kind == "reassigned:sh-xh-mg"
    assert kinds.notification(ev.CASE_REASSIGNED, reassigned(previous_assignee=None)).kind == "reassigned:-"
    assert kinds.notification(ev.FOLLOWUP_DUE, due()).kind == "revisit_due:r7"
    reminder = kinds.notification(ev.APPOINTMENT_REMINDER_DUE, appointment(ev.APPOINTMENT_REMINDER_DUE))
    assert reminder.kind == f"appointment_reminder:{(T + timedelta(days=1)).isoformat()}"
    assert reminder.audience is Audience.CUSTOMER and reminder.case_id == "A-9"
    staff = kinds.notification(ev.CASE_ROUTED, routed())
    assert (staff.recipient, staff.addresses) == ("staff:sh-xh-mg", {"email": "zhang.li@yueyan.example"})


def test_urgent_are_referrals_and_the_top_rung():
    assert kinds.notification(ev.CASE_ROUTED, routed(severity="critical")).urgent
    assert not kinds.notification(ev.CASE_ROUTED, routed()).urgent
    assert kinds.notification(ev.CASE_ESCALATED, escalated(rung=kinds.TOP_RUNG)).urgent
    assert kinds.notification(ev.CASE_ESCALATED, escalated(severity="critical", reason="critical_referral")).urgent
    assert not kinds.notification(ev.CASE_ESCALATED, escalated(rung=2)).urgent


def test_a_customers_keys_find_them_by_any_handle_typed_any_usual_way():
    contact = dict(CUSTOMER, wechat_openid="o-liu")
    keys = kinds.customer_keys(contact)
    assert len(keys) == 3
    assert kinds.contact_key("138 1234 5678") == kinds.contact_key("+86 138-1234-5678") == keys[0]
    assert kinds.contact_key("Liu@Example.com") == keys[1] and kinds.contact_key("o-liu") == keys[2]


def test_preferred_channel_and_openid_come_from_the_event():
    event = submitted(customer=dict(CUSTOMER, wechat_openid="o-liu", preferred_channel="wechat"))
    notification = kinds.notification(ev.CASE_SUBMITTED, event)
    assert notification.preferred == "wechat" and notification.addresses["wechat"] == "o-liu"


# -- deadlines and durations come from the event -------------------------------------------------

def test_assignment_states_the_events_deadlines_and_their_durations():
    content = render(ev.CASE_ROUTED, routed(first=timedelta(hours=2), resolution=timedelta(hours=6, minutes=30)),
                     "email")
    assert content.subject == f"【待处理】严重顾客反馈 {NUMBER}(产品效果)"
    assert "首次回应截止:2026-11-24 03:30(2小时内)" in content.text
    assert "解决截止:2026-11-24 08:00(6小时30分钟内)" in content.text
    assert "24小时" not in content.text and "48小时" not in content.text and "书面报告" not in content.text


def test_a_referral_shows_the_report_deadline_in_english_too():
    content = render(ev.CASE_ROUTED, routed(report=timedelta(hours=8), severity="critical", locale="en"), "email")
    assert "Written report due: 2026-11-24 09:30 (within 8 hours)" in content.text
    assert "First response due: 2026-11-25 01:30 (within 1 day)" in content.text
    assert "截止" not in content.text


def test_times_are_the_stores_local_time():
    content = render(ev.CASE_ROUTED, routed(first=timedelta(hours=2)), "email", timezone_name="Asia/Tokyo")
    assert "首次回应截止:2026-11-24 04:30" in content.text


def test_the_acknowledgement_promises_no_fixed_hours_unless_the_event_carries_a_deadline():
    plain = render(ev.CASE_SUBMITTED, submitted(), "email")
    assert "尽快与您联系" in plain.text and "小时" not in plain.text
    promised = render(ev.CASE_SUBMITTED, submitted(), "email", first_response_due=T + timedelta(hours=4))
    assert "我们会在 2026-11-24 05:30 前(4小时内)与您联系" in promised.text
    sms = render(ev.CASE_SUBMITTED, submitted(), "sms", first_response_due=T + timedelta(hours=4))
    assert sms.params["promise"] == "我们将于11-24 05:30前联系您"


def test_escalation_says_which_deadline_was_missed_and_by_how_much():
    content = render(ev.CASE_ESCALATED, escalated(), "email")
    assert "原因:未在时限内首次回应(截止 2026-11-24 00:00,已逾期 1小时30分钟)" in content.text
    assert "原负责人:张丽" in content.text and content.text.startswith("陈立华,您好:")
    referral = render(ev.CASE_ESCALATED, escalated(reason="critical_referral", due_at=None, locale="en"), "email")
    assert "Reason: consumer-association or media referral, escalated at once\n" in referral.text + "\n"


@pytest.mark.parametrize("category", ev.CATEGORIES)
@pytest.mark.parametrize("locale", ev.LOCALES)
def test_every_category_has_a_label(category, locale):
    content = render(ev.CASE_ROUTED, routed(category=category, locale=locale), "email")
    assert templates.LABELS[locale][category] in content.subject


def test_an_unknown_locale_falls_back_to_chinese():
    assert render(ev.CASE_SUBMITTED, submitted(), "email", locale="fr").subject.startswith("【上海徐汇店】")


# -- each channel's rules ---------------------------------------------------------------------------

def test_email_has_an_html_part_that_escapes_what_customers_typed():
    content = render(ev.CASE_SUBMITTED, submitted(customer=dict(CUSTOMER, name="<b>刘</b>")), "email")
    assert "<b>刘</b>" in content.text and "&lt;b&gt;刘&lt;/b&gt;" in content.html and "<br>" in content.html


def test_sms_fills_the_providers_template_and_fits_one_message():
    content = render(ev.CASE_SUBMITTED, submitted(), "sms")
    assert content.params == {"store": "上海徐汇店", "number": NUMBER, "promise": "我们将尽快联系您"}
    assert content.text == f"【悦颜美容】您在上海徐汇店的反馈已受理,编号{NUMBER},我们将尽快联系您。"
    assert templates.sms_parts(content.text) == 1


def test_an_sms_variable_over_the_providers_limit_is_refused_before_sending():
    with pytest.raises(InvalidMessage, match="store"):
        render(ev.CASE_SUBMITTED, submitted(store_name="店" * 36), "sms")


def test_sms_parts_follow_the_67_character_rule():
    assert templates.sms_parts("字" * 70) == 1
    assert templates.sms_parts("字" * 71) == 2 and templates.sms_parts("字" * 134) == 2
    assert templates.sms_parts("字" * 135) == 3


def test_wechat_fields_follow_their_types():
    content = render(ev.CASE_SUBMITTED, submitted(), "wechat")
    assert content.params == {"thing1": "上海徐汇店", "character_string2": NUMBER, "time3": "2026-11-24 01:30",
                              "thing4": "我们将尽快联系您"}
    long_name = render(ev.CASE_SUBMITTED, submitted(store_name="悦颜美业连锁上海徐汇区滨江大道旗舰店二号楼"), "wechat")
    assert len(long_name.params["thing1"]) == 20 and long_name.params["thing1"].endswith("…")
    with pytest.raises(InvalidMessage, match="character_string2"):
        render(ev.CASE_SUBMITTED, submitted(case_number="CL-" + "9" * 40), "wechat")


def test_the_staff_group_sees_the_customers_phone_masked():
    content = render(ev.FOLLOWUP_DUE, due(), "wecom")
    assert "138****5678" in content.text and "+8613812345678" not in content.text
    assert "+8613812345678" in render(ev.FOLLOWUP_DUE, due(), "email").text  # the caller's own mail


def test_a_missing_variable_is_refused_not_rendered_blank():
    notification = kinds.notification(ev.CASE_ROUTED, routed())
    with pytest.raises(InvalidMessage):
        templates.render("assigned", "email", "zh-CN", {"person": MANAGER, "timezone": "Asia/Shanghai"})
    assert notification.template == "assigned"


def test_no_template_for_a_channel_means_the_channel_is_not_available():
    assert not templates.available("assigned", "sms") and templates.available("assigned", "wecom")
    with pytest.raises(InvalidMessage):
        templates.render("assigned", "sms", "zh-CN", {})


def test_durations_in_words():
    assert templates.duration({"locale": "zh-CN"}, T + timedelta(days=1, hours=2), T) == "1天2小时"
    assert templates.duration({"locale": "en"}, T + timedelta(hours=1, minutes=1), T) == "1 hour 1 minute"
    assert templates.duration({"locale": "en"}, T, T) == "0 minutes"


def test_an_sla_warning_is_a_template_and_a_row_and_says_the_events_own_deadline():
    notification = kinds.notification(ev.CASE_DEADLINE_APPROACHED, approached())
    assert notification.kind == f"deadline_warning:resolution:{(T + timedelta(hours=2)).isoformat()}"
    assert not notification.urgent and kinds.notification(ev.CASE_DEADLINE_APPROACHED,
                                                          approached(severity="critical")).urgent
    mail = render(ev.CASE_DEADLINE_APPROACHED, approached(), "email")
    assert mail.subject == f"【即将到期】顾客反馈 {NUMBER} 的解决时限"
    assert "将于 2026-11-24 03:30 到期,还剩 2小时" in mail.text
    group = render(ev.CASE_DEADLINE_APPROACHED, approached(clock="report", locale="en"), "wecom")
    assert "Deadline: written report, due" in group.text and "(in 2 hours)" in group.text


def test_intake_takes_a_customers_openid_and_preferred_channel_and_only_known_channels():
    from marshmallow import ValidationError

    from services.intake.schemas import FeedbackIn
    body = {"store_id": "SH-XH-001", "channel": "wechat", "content": "预约被取消", "occurred_at": "2026-11-23T15:00:00+08:00",
            "customer": {"name": "刘女士", "phone": "13812345678", "wechat_openid": "o-liu", "preferred_channel": "wechat"}}
    loaded_customer = FeedbackIn().load(body)["customer"]
    assert (loaded_customer["wechat_openid"], loaded_customer["preferred_channel"]) == ("o-liu", "wechat")
    with pytest.raises(ValidationError, match="preferred_channel"):
        FeedbackIn().load(dict(body, customer=dict(body["customer"], preferred_channel="wecom")))
    plain = FeedbackIn().load(dict(body, customer={"name": "刘女士", "phone": "13812345678"}))["customer"]
    assert "wechat_openid" not in plain and "preferred_channel" not in plain


PLACE = {"store_name": "上海徐汇店", "timezone": "Asia/Shanghai"}  # what flows add from the organisation
SERVICE = {"staff_id": "cs-001", "name": "客服部 林静", "role": "customer_service", "email": "service@yueyan.example"}


def test_everyone_on_the_rung_an_escalation_reached_is_told_once_with_the_acknowledgement_deadline():
    event = escalated(notified=[dict(REGIONAL), dict(SERVICE)], ack_due_at=T + timedelta(hours=4))
    told = kinds.notifications(ev.CASE_ESCALATED, event)
    assert [n.recipient for n in told] == ["staff:rm-east", "staff:cs-001"]
    assert {n.kind for n in told} == {"escalated:3"}
    text = templates.render("escalated", "email", "zh-CN", {**told[1].context, **PLACE}).text
    assert "客服部 林静,您好" in text and "11-24 05:30" in text and "确认" in text


def test_a_referrals_customer_service_is_told_whose_case_it_is():
    event = routed(severity="critical", report=timedelta(hours=8), informed=[dict(SERVICE)])
    owner, service = kinds.notifications(ev.CASE_ROUTED, event)
    assert (owner.recipient, service.recipient) == (f"staff:{event['assignee']['staff_id']}", "staff:cs-001")
    text = templates.render("assigned", "email", "zh-CN", {**service.context, **PLACE}).text
    assert f"已分配给 {event['assignee']['name']}" in text and "客服部同步跟进" in text
    assert "已分配给您" in templates.render("assigned", "email", "zh-CN", {**owner.context, **PLACE}).text


def test_the_weekly_digest_goes_to_each_manager_once_about_the_digest_not_a_case():
    sent = kinds.notifications(ev.WEEKLY_DIGEST_READY, digest(managers=[dict(REGIONAL), dict(GENERAL), dict(REGIONAL)]))
    assert [(n.case_id, n.kind, n.recipient, n.audience, n.urgent) for n in sent] == [
        ("2026-11-16:region:east", "weekly_digest", "staff:rm-east", Audience.STAFF, False),
        ("2026-11-16:region:east", "weekly_digest", "staff:gm-001", Audience.STAFF, False)]
    assert sent[0].addresses == {"email": "rm.east@yueyan.example"} and sent[0].store_id == "SH-XH-001"
    assert kinds.notifications(ev.WEEKLY_DIGEST_READY, digest(managers=[])) == []


def test_the_weekly_digest_says_the_weeks_figures_and_the_pareto_in_both_locales():
    event = digest()
    mail = render(ev.WEEKLY_DIGEST_READY, event, "email")
    assert mail.subject == "【周报】华东 2026-11-16 至 2026-11-22 顾客反馈汇总"
    assert "反馈数:9(较前一周 +2)" in mail.text and "首次回应及时率:88.9%" in mail.text
    assert "解决及时率:-" in mail.text  # no resolution clock ended: no rate, not 0%
    assert "1. 服务不到位:2 件,占 66.7%,累计 66.7%" in mail.text
    group = render(ev.WEEKLY_DIGEST_READY, event, "wecom", locale="en")
    assert group.text.startswith("**[Weekly digest] 华东, 2026-11-16 to 2026-11-22**")
    assert "> Cause 1: service not in place, 2 cases (66.7%)" in group.text
    quiet = render(ev.WEEKLY_DIGEST_READY, digest(root_causes=[], cases_change=None), "email", locale="en")
    assert "Cases: 9\n" in quiet.text and "No closed case with a recorded root cause" in quiet.text
