"""A store's appointments of a day (GET /v1/appointments): the store-local day's bounds,
the caller's own store by default and nobody else's, the contact as the role may see it."""
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from closeloop_shared import org
from closeloop_shared.access import Principal, scope_of
from services.followup import flows

CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
NOW = datetime(2027, 3, 10, 17, 0, tzinfo=timezone.utc)  # 01:00 on 11 March in Shanghai


def person(staff_id):
    found = CHART.staff[staff_id]
    return Principal.for_staff(found, CHART.brand_of(found))


class FakeAppointments:
    def __init__(self):
        self.asked = []

    def starting_between(self, store_id, start, end, limit):
        self.asked.append((store_id, start, end, limit))
        return []


def test_the_day_is_the_stores_own_today_by_default_and_the_callers_store():
    appointments, staff = FakeAppointments(), person("sh-xh-s1")
    store_id, day, found = flows.appointments_of_day(appointments, CHART, None, None, staff,
                                                     scope_of(staff, CHART), NOW)
    assert (store_id, day, found) == ("SH-XH-001", date(2027, 3, 11), [])  # already tomorrow in Shanghai
    [(asked_store, start, end, _)] = appointments.asked
    assert asked_store == "SH-XH-001"
    assert start == datetime(2027, 3, 10, 16, 0, tzinfo=timezone.utc) and end - start == timedelta(days=1)


def test_a_store_out_of_scope_is_not_found_and_a_manager_of_several_stores_names_one():
    staff_b, regional = person("hz-xh-s1"), person("rm-east")
    with pytest.raises(flows.Refused) as hidden:
        flows.appointments_of_day(FakeAppointments(), CHART, "SH-XH-001", None, staff_b,
                                  scope_of(staff_b, CHART), NOW)
    assert (hidden.value.status, hidden.value.code) == (404, "store_not_found")
    with pytest.raises(flows.Refused) as unnamed:
        flows.appointments_of_day(FakeAppointments(), CHART, None, None, regional, scope_of(regional, CHART), NOW)
    assert unnamed.value.status == 422 and "store_id" in unnamed.value.fields
    store_id, day, _ = flows.appointments_of_day(FakeAppointments(), CHART, "SH-XH-001", date(2027, 3, 12),
                                                 regional, scope_of(regional, CHART), NOW)
    assert (store_id, day) == ("SH-XH-001", date(2027, 3, 12))


def test_the_desk_sees_time_item_status_and_reminder_the_contact_masked_for_managers():
    document = {"_id": "A-1", "store_id": "SH-XH-001", "starts_at": NOW, "service_item": "补水面部护理",
                "status": "booked", "reminder_at": None, "reminded_at": NOW - timedelta(days=1),
                "customer": {"name": "刘女士", "phone": "+8613812345678", "email": "liu@example.com",
                             "member_id": "M-1", "wechat_openid": "o-123"},
                "change_requests": [{"starts_at": NOW + timedelta(days=1), "by": "x", "at": NOW}],
                "outbox": [{"type": "secret"}]}
    shown = flows.appointment_view(document, person("sh-xh-s1"))
    assert shown["customer"]["phone"] == "+8613812345678" and shown["reminder_sent"] is True
    assert shown["change_requested_to"] == NOW + timedelta(days=1) and "outbox" not in shown
    assert "wechat_openid" not in shown["customer"]
    masked = flows.appointment_view(document, person("rm-east"))["customer"]
    assert masked["phone"] == "138****5678" and masked["email"] is None and masked["name"] == "刘女士"
    waiting = flows.appointment_view(dict(document, reminded_at=None, change_requests=[]), person("sh-xh-s1"))
    assert waiting["reminder_sent"] is False and waiting["change_requested_to"] is None
