"""Appointment reminders: the day before at a sensible store-local hour, never inside
quiet hours, across store time zones; changes, cancellations and repeats."""
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import assume, given
from hypothesis import strategies as st

from closeloop_shared import events as ev
from services.followup import appointments
from closeloop_shared.quiet_hours import QuietHours

NOW = datetime(2027, 3, 10, 1, 0, tzinfo=timezone.utc)  # 09:00 in Shanghai
POLICY = appointments.ReminderPolicy(10, QuietHours.parse("21:00-09:00"))
ZONES = st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "Europe/London", "America/New_York"])
BOOKING = {"appointment_id": "A-1", "store_id": "SH-XH-001", "service_item": "补水面部护理",
           "customer": {"name": "刘女士", "phone": "+8613812345678", "member_id": "M-1"},
           "starts_at": datetime(2027, 3, 12, 7, 0, tzinfo=timezone.utc), "version": 1, "locale": "zh-CN",
           "status": "booked"}


def test_the_reminder_goes_the_day_before_at_ten_store_time():
    assert appointments.reminder_at(BOOKING["starts_at"], "Asia/Shanghai", POLICY, NOW) == \
        datetime(2027, 3, 11, 2, 0, tzinfo=timezone.utc)


def test_an_hour_inside_quiet_hours_moves_to_their_end_and_a_late_booking_gets_no_reminder():
    early = appointments.ReminderPolicy(7, QuietHours.parse("21:00-09:00"))
    assert appointments.reminder_at(BOOKING["starts_at"], "Asia/Shanghai", early, NOW) == \
        datetime(2027, 3, 11, 1, 0, tzinfo=timezone.utc)  # 09:00 Shanghai
    evening_before = datetime(2027, 3, 11, 12, 0, tzinfo=timezone.utc)  # 20:00 the day before
    assert appointments.reminder_at(BOOKING["starts_at"], "Asia/Shanghai", POLICY, evening_before) is None


@given(starts=st.datetimes(datetime(2027, 1, 1), datetime(2028, 12, 31), timezones=st.just(timezone.utc)),
       hour=st.integers(0, 23), quiet_start=st.integers(18, 23), quiet_end=st.integers(6, 10), tz=ZONES)
def test_a_reminder_is_never_in_quiet_hours_always_the_day_before_and_before_the_appointment(
        starts, hour, quiet_start, quiet_end, tz):
    quiet = QuietHours(time(quiet_start), time(quiet_end))
    at = appointments.reminder_at(starts, tz, appointments.ReminderPolicy(hour, quiet), NOW)
    assume(at is not None)
    local, zone = at.astimezone(ZoneInfo(tz)), ZoneInfo(tz)
    assert not quiet.contains(local)
    assert local.date() == starts.astimezone(zone).date() - timedelta(days=1)
    assert NOW < at < starts


def test_a_booking_is_confirmed_a_new_time_reconfirmed_and_moves_the_reminder():
    document = appointments.booked(BOOKING, "Asia/Shanghai", POLICY, NOW)
    [confirmation] = document["outbox"]
    assert confirmation["type"] == ev.APPOINTMENT_CONFIRMED and confirmation["payload"]["change"] is False
    assert document["reminder_at"] == datetime(2027, 3, 11, 2, 0, tzinfo=timezone.utc)

    moved = dict(BOOKING, starts_at=BOOKING["starts_at"] + timedelta(days=2), version=2)
    changes, events = appointments.changed(document, moved, "Asia/Shanghai", POLICY, NOW)
    assert changes["reminder_at"] == datetime(2027, 3, 13, 2, 0, tzinfo=timezone.utc)
    assert [e["payload"]["change"] for e in events] == [True]

    same_time = dict(BOOKING, service_item="深层清洁", version=3)
    assert appointments.changed(document, same_time, "Asia/Shanghai", POLICY, NOW)[1] == []
    no_show = dict(BOOKING, status="no_show", version=4)
    changes, events = appointments.changed(document, no_show, "Asia/Shanghai", POLICY, NOW)
    assert changes["reminder_at"] is None and events == []
    assert appointments.cancelled(5) == {"version": 5, "status": "cancelled", "reminder_at": None}
