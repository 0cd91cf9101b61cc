"""services/notify/policy.py: channel order with fallback, quiet hours, limits."""
import json
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from services.notify import policy
from services.notify.kinds import Audience, Notification
from closeloop_shared.quiet_hours import QuietHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours(time(21), time(9))
BASE = policy.policies("wechat,sms,email", "wecom,email", "21:00-09:00", "{}")[None]


def local(hour, minute=0, day=24):
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def note(audience=Audience.CUSTOMER, template="acknowledgement", urgent=False, preferred=None):
    return Notification(case_id="c1", case_number="CL-1", store_id="SH-XH-001", kind=template, template=template,
                        audience=audience, recipient="customer:x", locale="zh-CN", urgent=urgent,
                        preferred=preferred)


# -- quiet hours ---------------------------------------------------------------------------------

def test_a_message_at_23_30_waits_until_09_00_the_next_morning():
    opens = NIGHT.opens_at(local(23, 30), SHANGHAI)
    assert opens == local(9, 0, day=25).astimezone(timezone.utc)


def test_just_before_and_at_the_edges():
    assert NIGHT.opens_at(local(8, 59), SHANGHAI) == local(9).astimezone(timezone.utc)
    assert NIGHT.opens_at(local(9), SHANGHAI) is None
    assert NIGHT.opens_at(local(20, 59), SHANGHAI) is None
    assert NIGHT.opens_at(local(21), SHANGHAI) == local(9, day=25).astimezone(timezone.utc)


def test_the_window_is_the_stores_local_time():
    # 13:30 UTC is 21:30 in Shanghai (quiet) but 22:30 in Tokyo and 14:30 in London
    now = datetime(2026, 11, 24, 13, 30, tzinfo=timezone.utc)
    assert NIGHT.opens_at(now, SHANGHAI) is not None
    assert NIGHT.opens_at(now, ZoneInfo("Europe/London")) is None


def test_a_daytime_window_and_parsing():
    lunch = QuietHours.parse("12:00-13:30")
    assert lunch.contains(local(12, 15)) and not lunch.contains(local(13, 30))
    assert QuietHours.parse("off") is None and QuietHours.parse("") is None


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(timezone.utc)),
       st.sampled_from(["21:00-09:00", "22:30-07:15", "12:00-14:00", "00:00-06:00"]),
       st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "Europe/Berlin"]))
def test_deferred_messages_go_out_exactly_when_the_window_opens(now, window, zone_name):
    quiet, zone = QuietHours.parse(window), ZoneInfo(zone_name)
    opens = quiet.opens_at(now, zone)
    if opens is None:
        assert not quiet.contains(now.astimezone(zone))
        return
    assert quiet.contains(now.astimezone(zone))
    assert now < opens <= now + timedelta(hours=24)
    assert opens.astimezone(zone).time() == quiet.end
    assert not quiet.contains(opens.astimezone(zone))


def test_only_customer_messages_wait_and_urgent_ones_never():
    at_night = local(23, 30)
    assert BASE.release_at(note(), at_night, SHANGHAI) is not None
    assert BASE.release_at(note(urgent=True), at_night, SHANGHAI) is None
    assert BASE.release_at(note(Audience.STAFF, "escalated"), at_night, SHANGHAI) is None


def test_the_kinds_held_in_quiet_hours_are_configurable():
    table = policy.policies("wechat,sms,email", "wecom,email", "21:00-09:00", "{}", "acknowledgement,revisit_due")
    assert table[None].release_at(note(Audience.STAFF, "revisit_due"), local(23), SHANGHAI) is not None
    assert table[None].release_at(note(Audience.STAFF, "assigned"), local(23), SHANGHAI) is None
    assert policy.policies("sms", "email", "21:00-09:00", "{}", "")[None].quiet_kinds is None


def test_a_brand_may_set_its_own_hours_and_quiet_kinds():
    table = policy.policies("wechat,sms,email", "wecom,email", "21:00-09:00", json.dumps({
        "muyun": {"quiet_hours": "22:00-08:00", "quiet_kinds": ["acknowledgement", "revisit_due"],
                  "customer_channels": ["sms", "email"]}}))
    muyun = table["muyun"]
    assert muyun.release_at(note(), local(21, 30), SHANGHAI) is None
    assert muyun.release_at(note(Audience.STAFF, "revisit_due"), local(23), SHANGHAI) is not None
    assert muyun.release_at(note(Audience.STAFF, "escalated"), local(23), SHANGHAI) is None
    assert muyun.customer_channels == ("sms", "email") and muyun.staff_channels == ("wecom", "email")


# -- routes ------------------------------------------------------------------------------------------

def test_customers_fall_back_wechat_sms_email_over_what_reaches_them():
    everything = {"wechat": "o-1", "sms": "+8613812345678", "email": "a@b.cn"}
    assert [c for c, _ in BASE.route(note(), everything)] == ["wechat", "sms", "email"]
    assert BASE.route(note(), {"sms": "+8613812345678"}) == [("sms", "+8613812345678")]
    assert BASE.route(note(), {"wecom": "robot"}) == []


def test_the_customers_preferred_channel_comes_first():
    everything = {"wechat": "o-1", "sms": "+8613812345678", "email": "a@b.cn"}
    assert [c for c, _ in BASE.route(note(preferred="email"), everything)] == ["email", "wechat", "sms"]
    assert [c for c, _ in BASE.route(note(preferred="email"), {"sms": "+86138"})] == ["sms"]


def test_staff_go_wecom_then_email():
    route = BASE.route(note(Audience.STAFF, "assigned"), {"wecom": "robot", "email": "m@x.cn", "sms": "+86138"})
    assert route == [("wecom", "robot"), ("email", "m@x.cn")]


def test_a_webhook_copy_goes_to_its_endpoint():
    copy = replace(note(Audience.SYSTEM), recipient="webhook:crm")
    assert BASE.route(copy, {"webhook": "crm"}) == [("webhook", "crm")]


# -- limit windows --------------------------------------------------------------------------------------

def test_windows_are_fixed_and_end_where_the_next_begins():
    now = datetime(2026, 11, 24, 10, 15, 42, tzinfo=timezone.utc)
    key, ends = policy.provider_counter("wecom", "k1", now)
    assert ends == datetime(2026, 11, 24, 10, 16, tzinfo=timezone.utc)
    assert policy.provider_counter("wecom", "k1", now + timedelta(seconds=17))[0] == key
    assert policy.provider_counter("wecom", "k1", ends)[0] != key
    assert policy.staff_counter("staff:m", now)[1] == datetime(2026, 11, 24, 11, tzinfo=timezone.utc)
