"""closeloop_shared/access.py: the role table, principals, scopes and personal data."""
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from closeloop_shared import org
from closeloop_shared.access import (
    INTEGRATION_PERMISSIONS,
    ROLE_PERMISSIONS,
    Principal,
    Scope,
    contact_view,
    mask_phone,
    scope_of,
    sees_personal_data,
)
from closeloop_shared.contract import Permission as P
from closeloop_shared.contract import PrincipalKind, Role
from services.followup import revisits

CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
YUEYAN = frozenset({"SH-XH-001", "HZ-XH-002", "GZ-TH-003"})
CONTACT = {"name": "刘女士", "phone": "+8613812345678", "email": "liu@example.com", "member_id": "VIP-7"}
COMPLAINT_ACTIONS = {P.CASE_RESPOND, P.CASE_REPORT, P.CASE_RESOLVE, P.CASE_REFUND,
                     P.CASE_CLOSE_REFERRAL, P.CASE_REOPEN, P.REVISIT_RECORD, P.FEEDBACK_SUBMIT}
OPERATIONS = {P.ORG_MANAGE, P.KEYS_MANAGE, P.AUDIT_READ}


def person(staff_id):
    found = CHART.staff[staff_id]
    return Principal.for_staff(found, CHART.brand_of(found))


def of_role(role):
    return frozenset(ROLE_PERMISSIONS[role])


def integration(**client):
    return Principal.for_integration({"client_id": "pos", "name": "门店收银", "brand_id": "yueyan",
                                      "permissions": ["feedback:submit", "case:read"], **client})


# -- the role table -------------------------------------------------------------------

def test_every_role_has_a_row():
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert all(isinstance(p, P) for perms in ROLE_PERMISSIONS.values() for p in perms)


def test_store_staff_cannot_reopen_refund_report_close_referrals_or_manage():
    staff = of_role(Role.STORE_STAFF)
    assert not staff & {P.CASE_REOPEN, P.CASE_REFUND, P.CASE_REPORT, P.CASE_CLOSE_REFERRAL}
    assert not staff & OPERATIONS
    assert {P.CASE_READ, P.CASE_RESPOND, P.CASE_RESOLVE, P.FEEDBACK_SUBMIT, P.REVISIT_RECORD,
            P.PERSONAL_DATA} <= staff


def test_a_supervisor_may_reopen_but_not_refund():
    supervisor = of_role(Role.SUPERVISOR)
    assert {P.CASE_REOPEN, P.DELIVERY_READ, P.REPORT_READ} <= supervisor
    assert not supervisor & {P.CASE_REFUND, P.CASE_CLOSE_REFERRAL, P.CASE_REPORT}


def test_a_store_manager_may_refund_report_and_close_referrals():
    assert {P.CASE_REFUND, P.CASE_REPORT, P.CASE_CLOSE_REFERRAL, P.CASE_REOPEN} <= of_role(Role.STORE_MANAGER)


def test_store_roles_grow_up_the_ladder():
    assert of_role(Role.STORE_STAFF) < of_role(Role.SUPERVISOR) < of_role(Role.STORE_MANAGER)


def test_admin_runs_the_system_but_handles_no_complaints():
    admin = of_role(Role.ADMIN)
    assert OPERATIONS <= admin
    assert not admin & COMPLAINT_ACTIONS
    assert P.PERSONAL_DATA not in admin
    assert {P.CASE_READ, P.REPORT_READ} <= admin


def test_only_admins_manage_the_organisation_keys_and_audit():
    for role in Role:
        assert bool(of_role(role) & OPERATIONS) == (role is Role.ADMIN), role


@pytest.mark.parametrize("role", [Role.REGIONAL_MANAGER, Role.GENERAL_MANAGER])
def test_managers_above_the_store_steer_and_approve_but_see_contacts_masked(role):
    perms = of_role(role)
    assert P.PERSONAL_DATA not in perms
    assert {P.CASE_REFUND, P.CASE_CLOSE_REFERRAL, P.CASE_REOPEN, P.CASE_REPORT, P.REPORT_READ} <= perms
    assert P.FEEDBACK_SUBMIT not in perms


def test_customer_service_calls_customers_and_sees_their_contacts():
    cs = of_role(Role.CUSTOMER_SERVICE)
    assert {P.PERSONAL_DATA, P.FEEDBACK_SUBMIT, P.REVISIT_RECORD, P.CASE_REFUND} <= cs
    assert not cs & OPERATIONS


def test_who_sees_personal_data():
    assert {role for role in Role if P.PERSONAL_DATA in of_role(role)} == {
        Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER, Role.CUSTOMER_SERVICE}


def test_who_sees_health_data():
    """Allergies, pregnancy and postpartum status (PIPL sensitive data): only the store's
    own people, who treat and call the customer; not the managers above the store, not
    customer service, not operations, never an integration."""
    assert {role for role in Role if P.HEALTH_DATA in of_role(role)} == {
        Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER}
    assert P.HEALTH_DATA not in INTEGRATION_PERMISSIONS


def test_integrations_may_be_issued_only_harmless_permissions():
    assert INTEGRATION_PERMISSIONS == {P.FEEDBACK_SUBMIT, P.FEEDBACK_READ, P.CASE_READ, P.BOOKING_PUBLISH}
    assert not INTEGRATION_PERMISSIONS & (COMPLAINT_ACTIONS - {P.FEEDBACK_SUBMIT})
    assert not INTEGRATION_PERMISSIONS & (OPERATIONS | {P.PERSONAL_DATA})


# -- principals ---------------------------------------------------------------------------

def test_a_staff_principal_takes_role_unit_and_brand_from_the_organisation():
    clerk = person("sh-xh-s1")
    assert (clerk.subject, clerk.kind, clerk.name) == ("sh-xh-s1", PrincipalKind.STAFF, "王小雨")
    assert (clerk.role, clerk.store_id, clerk.region_id, clerk.brand_id) == (
        Role.STORE_STAFF, "SH-XH-001", None, "yueyan")
    assert clerk.permissions == of_role(Role.STORE_STAFF)
    assert clerk.can(P.CASE_RESPOND) and not clerk.can(P.CASE_REFUND)
    assert clerk.actor == "sh-xh-s1"
    rm = person("rm-east")
    assert (rm.region_id, rm.brand_id, rm.store_id) == ("east", "yueyan", None)


def test_an_integration_principal_keeps_only_integration_permissions():
    pos = integration(permissions=["feedback:submit", "org:manage", "personal_data:read", "case:read"])
    assert pos.permissions == {P.FEEDBACK_SUBMIT, P.CASE_READ}
    assert (pos.kind, pos.role, pos.brand_id, pos.store_ids) == (PrincipalKind.INTEGRATION, None, "yueyan", ())
    assert pos.actor == "integration:pos"
    assert not sees_personal_data(pos)


def test_an_unknown_permission_on_an_integration_record_is_refused():
    with pytest.raises(ValueError):
        integration(permissions=["feedback:delete"])


# -- scopes -------------------------------------------------------------------------------

@pytest.mark.parametrize("staff_id, stores", [
    ("sh-xh-s1", {"SH-XH-001"}), ("sh-xh-sv", {"SH-XH-001"}), ("sh-xh-mg", {"SH-XH-001"}),
    ("gz-th-mg", {"GZ-TH-003"}),
    ("rm-east", {"SH-XH-001", "HZ-XH-002"}), ("rm-south", {"GZ-TH-003"}),
    ("cs-001", YUEYAN), ("gm-001", YUEYAN),
    ("my-gm", {"BJ-CY-101"}), ("bj-cy-s1", {"BJ-CY-101"}),
])
def test_scope_of_each_staff_role(staff_id, stores):
    scope = scope_of(person(staff_id), CHART)
    assert scope == Scope(frozenset(stores))
    assert scope.client_id is None


def test_scope_of_an_admin_is_every_store():
    scope = scope_of(person("ops-admin"), CHART)
    assert scope == Scope(None)
    assert all(scope.allows(store_id) for store_id in [*CHART.stores, "A-STORE-YET-TO-COME"])


def test_scope_of_every_staff_member_in_the_seed():
    """Whatever the role, a staff scope never crosses the person's brand."""
    for staff_id, found in CHART.staff.items():
        scope = scope_of(person(staff_id), CHART)
        if found.role is Role.ADMIN:
            assert scope.stores is None
        else:
            assert scope.stores and scope.stores <= CHART.stores_of_brand(CHART.brand_of(found))


def test_scope_of_an_integration_is_its_brand_and_its_own_submissions():
    scope = scope_of(integration(), CHART)
    assert scope == Scope(YUEYAN, client_id="pos")


def test_scope_of_an_integration_limited_to_some_stores():
    scope = scope_of(integration(store_ids=["SH-XH-001"]), CHART)
    assert scope == Scope(frozenset({"SH-XH-001"}), client_id="pos")


def test_a_limit_to_another_brand_s_store_reaches_nothing():
    scope = scope_of(integration(store_ids=["BJ-CY-101"]), CHART)
    assert scope.stores == frozenset()


def test_scope_allows_by_store():
    scope = Scope(frozenset({"SH-XH-001"}))
    assert scope.allows("SH-XH-001")
    assert scope.allows("SH-XH-001", {"kind": "staff", "client_id": None, "staff_id": "x"})
    assert not scope.allows("HZ-XH-002")
    assert Scope(None).allows("anything")


def test_scope_with_a_client_allows_only_its_own_submissions():
    scope = Scope(frozenset({"SH-XH-001"}), client_id="pos")
    assert scope.allows("SH-XH-001", {"kind": "integration", "client_id": "pos"})
    assert not scope.allows("SH-XH-001", {"kind": "integration", "client_id": "crm"})
    assert not scope.allows("SH-XH-001", {"kind": "staff", "client_id": None, "staff_id": "pos"})
    assert not scope.allows("SH-XH-001", None)
    assert not scope.allows("HZ-XH-002", {"kind": "integration", "client_id": "pos"})


def test_covers_is_about_the_store_alone():
    """Where a principal may submit or act; `allows` adds whose objects it may see."""
    scope = Scope(frozenset({"SH-XH-001"}), client_id="pos")
    assert scope.covers("SH-XH-001") and not scope.covers("HZ-XH-002")
    assert scope.covers("SH-XH-001") and not scope.allows("SH-XH-001")
    assert Scope(None).covers("anything")
    for staff_id in CHART.staff:
        staff_scope = scope_of(person(staff_id), CHART)
        assert all(staff_scope.covers(s) == staff_scope.allows(s) for s in CHART.stores)


# -- personal data ------------------------------------------------------------------------

@pytest.mark.parametrize("phone, masked", [
    ("+8613812345678", "138****5678"),
    ("+12025550123", "120****0123"),
    ("+85251234567", "852****4567"),
    ("+861234", "****"),
    ("", ""),
    (None, None),
])
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("staff_id", ["rm-east", "gm-001", "ops-admin"])
def test_contact_view_masks_for_roles_without_personal_data(staff_id):
    shown = contact_view(dict(CONTACT), person(staff_id))
    assert shown == {"name": "刘女士", "phone": "138****5678", "email": None, "member_id": "VIP-7"}


@pytest.mark.parametrize("staff_id", ["sh-xh-s1", "sh-xh-sv", "sh-xh-mg", "cs-001"])
def test_contact_view_shows_everything_to_those_who_call_customers(staff_id):
    assert contact_view(dict(CONTACT), person(staff_id)) == CONTACT


def test_contact_view_leaves_the_stored_contact_alone():
    stored = dict(CONTACT)
    contact_view(stored, person("gm-001"))
    assert stored == CONTACT
    assert contact_view(None, person("gm-001")) is None
    assert contact_view({"name": "无电话"}, person("gm-001")) == {"name": "无电话", "phone": None, "email": None}


def test_contact_view_for_an_integration_is_masked():
    assert contact_view(dict(CONTACT), integration())["email"] is None


def test_a_revisit_shows_the_customer_as_the_role_may_see_it():
    revisit = {"_id": "r1", "case_id": "c1", "customer": dict(CONTACT), "outbox": [], "outbox_pending": False,
               "status": "due"}
    assert revisits.view(revisit, person("sh-xh-rv"))["customer"] == CONTACT
    shown = revisits.view(revisit, person("rm-east"))
    assert shown["customer"]["phone"] == "138****5678" and shown["customer"]["email"] is None
    assert shown["revisit_id"] == "r1" and not {"_id", "outbox", "outbox_pending"} & set(shown)
    assert revisit["customer"] == CONTACT


# E.164: "+", a country code of 1-3 digits not starting with 0, at most 15 digits in all.
DIGITS = "0123456789"
e164 = st.integers(min_value=1, max_value=3).flatmap(lambda cc: st.tuples(
    st.sampled_from("123456789"),
    st.text(DIGITS, min_size=cc - 1, max_size=cc - 1),
    st.integers(min_value=4, max_value=15 - cc).flatmap(lambda n: st.text(DIGITS, min_size=n, max_size=n)),
)).map(lambda parts: "+" + "".join(parts))
masked_roles = st.sampled_from([r for r in Role if P.PERSONAL_DATA not in ROLE_PERMISSIONS[r]])
emails = st.emails()


@given(phone=e164, email=emails, role=masked_roles, name=st.text(alphabet="刘王张女士先生", min_size=1))
@example(phone="+8613812345678", email="liu@example.com", role=Role.REGIONAL_MANAGER, name="刘女士")
@example(phone="+862161234567", email="a@b.cn", role=Role.ADMIN, name="王")  # a Shanghai landline
@example(phone="+8612345678", email="a@b.cn", role=Role.GENERAL_MANAGER, name="王")
def test_a_masked_contact_never_holds_the_number_or_an_email(phone, email, role, name):
    principal = Principal.for_staff(org.Staff("p", "某人", role, store_id="SH-XH-001"), "yueyan")
    shown = contact_view({"name": name, "phone": phone, "email": email, "member_id": None}, principal)
    text = repr(shown)
    assert phone not in text
    assert phone.lstrip("+") not in text
    assert (phone[3:] if phone.startswith("+86") else phone[1:]) not in text  # nor its national digits
    assert shown["email"] is None and "@" not in text and email not in text
    assert shown["name"] == name
    # at most 7 digits of the number stay visible
    assert len(re.findall(r"\d", shown["phone"])) <= 7


@given(phone=e164, role=st.sampled_from([r for r in Role if P.PERSONAL_DATA in ROLE_PERMISSIONS[r]]))
def test_roles_with_personal_data_see_the_number_as_stored(phone, role):
    principal = Principal.for_staff(org.Staff("p", "某人", role, store_id="SH-XH-001"), "yueyan")
    assert contact_view({"name": "刘", "phone": phone, "email": None}, principal)["phone"] == phone
