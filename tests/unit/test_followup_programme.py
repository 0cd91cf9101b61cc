"""The tiered revisit programme's pure parts: profiles and their import, tiers, cadences,
contact-hour slots across store time zones, retries, the survey throttle, completion."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared.access import ROLE_PERMISSIONS, Principal
from closeloop_shared.contract import CustomerTier, PrincipalKind, Role, RevisitTaskStatus
from services.followup import profiles, programme, revisits, tiers
from services.followup.opening import OpeningHours

NOW = datetime(2027, 3, 10, 2, 0, tzinfo=timezone.utc)
STORES = frozenset({"SH-XH-001", "HZ-XH-001"})
ROW = {"member_id": "M-1", "name": "刘女士", "phone": "138 1234 5678", "home_store_id": "SH-XH-001",
       "preferred_channel": "sms", "contact_hours": "10-20", "special_needs": "allergy,postpartum",
       "consent": "yes"}


def staff(role, store_id="SH-XH-001"):
    return Principal(subject="p", kind=PrincipalKind.STAFF, name="p", permissions=ROLE_PERMISSIONS[role],
                     role=role, store_id=store_id)


def test_an_import_row_becomes_a_profile_with_an_e164_phone_and_its_needs():
    profile = profiles.profile_from_row(ROW, STORES, NOW)
    assert profile.phone == "+8613812345678"
    assert profile.special_needs == ("allergy", "postpartum") and profile.consent is True
    assert profile.contact_hours == profiles.ContactHours(10, 20)
    assert profiles.Profile.from_document(profile.to_document()) == profile


def test_an_import_reports_every_rejected_row_with_the_fields_at_fault():
    rows = [ROW,
            dict(ROW, member_id="M-2", phone="12345", home_store_id="NOWHERE"),
            dict(ROW, member_id="M-3", contact_hours="20-10", preferred_channel="fax", consent="maybe"),
            dict(ROW),  # M-1 again
            dict(ROW, member_id="M-4", phone="", preferred_channel="wechat", wechat_openid="o-1")]
    report = profiles.import_rows(rows, STORES, NOW)
    assert [p.member_id for p in report.accepted] == ["M-1", "M-4"]
    rejected = {r["row"]: set(r["fields"]) for r in report.rejected}
    assert rejected == {2: {"phone", "home_store_id"},
                        3: {"contact_hours", "preferred_channel", "consent"},
                        4: {"member_id"}}


def test_a_csv_import_reads_its_header():
    body = ("member_id,name,phone,home_store_id,consent\n"
            "M-9,王女士,+86 139 0000 1111,HZ-XH-001,是\n").encode("utf-8-sig")
    [profile] = profiles.import_rows(profiles.read_csv(body), STORES, NOW).accepted
    assert profile.phone == "+8613900001111" and profile.consent


def test_health_data_is_shown_only_to_the_stores_own_roles():
    profile = profiles.profile_from_row(ROW, STORES, NOW)
    for role in (Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER):
        assert profiles.view(profile, staff(role))["special_needs"] == ["allergy", "postpartum"]
    for role in (Role.REGIONAL_MANAGER, Role.GENERAL_MANAGER, Role.CUSTOMER_SERVICE, Role.ADMIN):
        shown = profiles.view(profile, staff(role, None))
        assert "special_needs" not in shown and "special_needs_note" not in shown
        assert shown["has_special_needs"] is True


RULES = tiers.TierRules(window_days=365, key_spend_fen=1_000_000, key_visits=24,
                        regular_spend_fen=200_000, regular_visits=4)


def visits(count, spend_fen, days_ago=10):
    return [tiers.Visit(NOW - timedelta(days=days_ago), spend_fen) for _ in range(count)]


@pytest.mark.parametrize("history, needs, tier", [
    (visits(2, 600_000), (), CustomerTier.KEY),            # spend
    (visits(24, 100), (), CustomerTier.KEY),               # frequency
    (visits(4, 100), (), CustomerTier.REGULAR),
    (visits(1, 250_000), (), CustomerTier.REGULAR),
    (visits(3, 100), (), CustomerTier.POTENTIAL),
    (visits(30, 900_000, days_ago=400), (), CustomerTier.POTENTIAL),  # outside the window
    (visits(30, 900_000), ("postpartum",), CustomerTier.SPECIAL),
])
def test_tiers_follow_the_configured_rules(history, needs, tier):
    assert tiers.computed_tier(history, needs, RULES, NOW) is tier


def test_rules_come_from_config_and_an_override_wins_and_is_audited():
    assert tiers.TierRules.from_config({"key_visits": "12", "unknown": 1}).key_visits == 12
    override = tiers.Override(CustomerTier.KEY, "sh-xh-mg", "大客户转介绍", NOW)
    assert tiers.effective_tier(CustomerTier.POTENTIAL, override) is CustomerTier.KEY
    assert tiers.effective_tier(CustomerTier.POTENTIAL, None) is CustomerTier.POTENTIAL
    assert tiers.audit_entry(CustomerTier.POTENTIAL, override) == {
        "from": "potential", "to": "key", "by": "sh-xh-mg", "reason": "大客户转介绍", "at": NOW}


def test_cadences_default_to_seed_002_and_are_configurable():
    cadence = programme.Cadence.from_config(None)
    hours = profiles.ContactHours(10, 20)
    year = lambda tier, c=cadence: programme.plan(  # noqa: E731
        "M", tier, c, date(2027, 1, 1), date(2027, 12, 31), hours, "Asia/Shanghai")
    assert len(year(CustomerTier.KEY)) == 11 and len(year(CustomerTier.REGULAR)) == 3
    assert len(year(CustomerTier.POTENTIAL)) == 1
    assert year(CustomerTier.KEY)[0] == datetime(2027, 2, 1, 2, 0, tzinfo=timezone.utc)  # 10:00 Shanghai
    faster = programme.Cadence.from_config({"regular": 2})
    assert len(year(CustomerTier.REGULAR, faster)) == 5



def test_a_chain_may_have_cadences_of_its_own():
    cadence = programme.Cadence.from_config({"regular": 2, "yueyan": {"potential": 4, "key": 2}})
    start = date(2027, 1, 31)
    assert cadence.next_after(start, CustomerTier.REGULAR) == date(2027, 3, 31)
    assert cadence.next_after(start, CustomerTier.POTENTIAL, "yueyan") == date(2027, 5, 31)
    assert cadence.next_after(start, CustomerTier.KEY, "yueyan") == date(2027, 3, 31)
    assert cadence.next_after(start, CustomerTier.REGULAR, "yueyan") == date(2027, 3, 31)  # the deployment's
    assert cadence.next_after(start, CustomerTier.KEY, "other-chain") == date(2027, 2, 28)  # seed 002's
    with pytest.raises(ValueError):
        programme.Cadence.from_config({"yueyan": {"vip": 1}})



@given(day=st.dates(date(2020, 1, 1), date(2035, 12, 31)), months=st.integers(0, 30))
def test_a_cadence_adds_calendar_months_keeping_the_day_or_the_months_last(day, months):
    later = programme.add_months(day, months)
    assert later == day + relativedelta(months=months)  # as dateutil counts months
    assert (later.year - day.year) * 12 + later.month - day.month == months
    assert later.day == day.day or later.day < day.day and (later + timedelta(days=1)).day == 1


ZONES = st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "Europe/London"])


@given(start=st.integers(0, 22), length=st.integers(1, 14), attempt=st.integers(0, 10),
       day=st.dates(date(2026, 1, 1), date(2030, 12, 31)), tz=ZONES)
def test_every_slot_falls_inside_the_customers_contact_hours_in_the_stores_zone(start, length, attempt, day, tz):
    hours = profiles.ContactHours(start, min(start + length, 24))
    local = programme.slot(day, hours, attempt, tz).astimezone(ZoneInfo(tz))
    assert local.date() == day and hours.start_hour <= local.hour < hours.end_hour


@given(attempts=st.integers(1, 6), max_attempts=st.integers(1, 6), tz=ZONES)
def test_an_unreached_customer_is_retried_the_next_day_at_another_hour_then_marked(attempts, max_attempts, tz):
    hours, policy = profiles.ContactHours(10, 20), programme.AttemptPolicy(max_attempts=max_attempts)
    result = programme.after_unreached(attempts, hours, tz, NOW, policy)
    if attempts >= max_attempts:
        assert result == programme.AttemptResult(RevisitTaskStatus.UNREACHABLE, None)
        return
    previous = programme.slot(NOW.astimezone(ZoneInfo(tz)).date(), hours, attempts - 1, tz)
    assert result.status is RevisitTaskStatus.SCHEDULED and result.due_at > NOW
    assert result.due_at.astimezone(ZoneInfo(tz)).hour != previous.astimezone(ZoneInfo(tz)).hour
    assert result.due_at.astimezone(ZoneInfo(tz)).date() == NOW.astimezone(ZoneInfo(tz)).date() + timedelta(days=1)


@given(gap=st.integers(0, 90))
def test_one_survey_per_customer_within_the_window(gap):
    window = timedelta(days=30)
    assert programme.survey_allowed(None, NOW, window)
    assert programme.survey_allowed(NOW - timedelta(days=gap), NOW, window) is (gap >= 30)


def test_completion_counts_unreachable_customers_as_not_completed():
    counts = [("SH-XH-001", "a", "completed", 2), ("SH-XH-001", "a", "unreachable", 1), ("SH-XH-001", "a", "due", 1),
              ("SH-XH-001", "a", "scheduled", 5), ("SH-XH-001", "a", "cancelled", 3),
              ("SH-XH-001", "b", "unreachable", 1)]
    rates = {c.owner_id: c for c in programme.completion(counts)}
    assert (rates["a"].due, rates["a"].completed, rates["a"].unreachable, rates["a"].rate) == (4, 2, 1, 0.5)
    assert rates["b"].rate == 0.0


def test_successive_revisits_change_purpose_and_a_special_customer_is_never_offered_anything():
    assert [programme.purpose_for(n, CustomerTier.KEY).value for n in range(5)] == [
        "care", "satisfaction", "service_reminder", "offer", "care"]
    assert {programme.purpose_for(n, CustomerTier.SPECIAL).value for n in range(10)} == {"care", "satisfaction"}


OWNER = {"staff_id": "sh-xh-rv", "name": "赵敏", "role": "store_staff", "email": None}
SUPERVISOR = {"staff_id": "sh-xh-sv", "name": "钱主管", "role": "supervisor", "email": None}


@pytest.mark.parametrize("resolved_by, surveyor", [
    ("sh-xh-s1", "sh-xh-rv"),   # someone else resolved it: the store's revisit owner asks
    ("sh-xh-rv", "sh-xh-sv"),   # the revisit owner resolved it: the next person asks
    (None, "sh-xh-rv"),         # an older emitter does not say
])
def test_the_satisfaction_revisit_is_made_by_someone_other_than_the_handler(resolved_by, surveyor):
    resolved = {"revisit_owner": OWNER, "resolved_by": resolved_by}
    assert revisits.surveyor(resolved, [OWNER, SUPERVISOR])["staff_id"] == surveyor


def test_a_revisit_after_a_reopening_is_a_recovery_re_survey():
    def resolved(round_):
        return {"case_id": "c1", "case_number": "CL-1", "resolution_round": round_, "store_id": "SH-XH-001",
                "customer": {}, "locale": "zh-CN", "remedy": {}, "resolved_at": NOW}
    always = OpeningHours.always_open("Asia/Shanghai")
    assert revisits.schedule(resolved(1), OWNER, 60, always, NOW)["recovery"] is False
    second = revisits.schedule(resolved(2), OWNER, 60, always, NOW)
    assert second["recovery"] is True and second["owner"] == OWNER and second["due_at"] == NOW + timedelta(minutes=1)
