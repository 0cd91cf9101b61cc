"""services/routing/organisation.py: managing the organisation, checked against the
whole organisation; snapshots (the org_changed payload) and identity_flows'
change_organisation."""
import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from closeloop_shared import events as ev
from closeloop_shared import org
from closeloop_shared.access import Scope
from closeloop_shared.contract import Role, StoreStatus
from closeloop_shared.org import LADDER, Organisation
from services.routing import identity_flows
from services.routing import organisation as orgs
from services.routing.organisation import OrgRefused
from tests.unit.fakes import FakeOrgStore

CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


def refusal(change, *args):
    with pytest.raises(OrgRefused) as refused:
        change(*args)
    error = refused.value
    return error.status, error.code, error.field


def new_brand_with_store():
    """A new brand, region and store, nobody in them yet."""
    chart = orgs.add_brand(CHART, "lanting", "兰亭养生")
    chart = orgs.add_region(chart, "west", "西南区", "lanting")
    return orgs.add_store(chart, "CD-JJ-201", "成都锦江店", "west", "Asia/Shanghai")


def open_store(chart, store_id):
    return orgs.update_store(chart, store_id, {"status": "open"})


# -- adding units -----------------------------------------------------------------------

def test_add_brand_region_store():
    chart = new_brand_with_store()
    assert chart.brands["lanting"].name == "兰亭养生"
    assert chart.regions["west"].brand_id == "lanting"
    store = chart.store("CD-JJ-201")
    assert (store.region_id, store.timezone) == ("west", "Asia/Shanghai")
    assert chart.stores_of_brand("lanting") == {"CD-JJ-201"}
    assert CHART.store("CD-JJ-201") is None  # the original is untouched
    assert chart.version == CHART.version    # versions are the caller's business


@pytest.mark.parametrize("change, args, field", [
    (orgs.add_brand, ("yueyan", "重复"), "brand_id"),
    (orgs.add_region, ("east", "重复", "yueyan"), "region_id"),
    (orgs.add_store, ("SH-XH-001", "重复", "east", "Asia/Shanghai"), "store_id"),
    (orgs.add_staff, ("sh-xh-s1", "重复", "store_staff", "SH-XH-001", None), "staff_id"),
    (orgs.add_staff, ("ops-admin", "重复", "admin", None, None), "staff_id"),
])
def test_duplicate_ids_are_409_already_exists(change, args, field):
    assert refusal(change, CHART, *args) == (409, "already_exists", field)


def test_an_id_is_unique_across_brands_too():
    assert refusal(orgs.add_store, CHART, "BJ-CY-101", "同号", "east", "Asia/Shanghai")[:2] == (409, "already_exists")


@pytest.mark.parametrize("change, args, code, field", [
    (orgs.add_region, ("north", "华北区", "nope"), "unknown_brand", "brand_id"),
    (orgs.add_store, ("S-9", "店", "nowhere", "Asia/Shanghai"), "unknown_region", "region_id"),
    (orgs.add_staff, ("x", "X", "store_staff", "NO-STORE", None), "unknown_store", "unit_id"),
    (orgs.add_staff, ("x", "X", "store_manager", "east", None), "unknown_store", "unit_id"),  # a region
    (orgs.add_staff, ("x", "X", "regional_manager", "SH-XH-001", None), "unknown_region", "unit_id"),
    (orgs.add_staff, ("x", "X", "general_manager", "east", None), "unknown_brand", "unit_id"),
    (orgs.add_staff, ("x", "X", "customer_service", None, None), "unknown_brand", "unit_id"),
    (orgs.add_staff, ("x", "X", "admin", "yueyan", None), "validation_failed", "unit_id"),
])
def test_unknown_units_are_422(change, args, code, field):
    assert refusal(change, CHART, *args) == (422, code, field)


def test_staff_get_the_unit_field_of_their_role_level():
    chart = CHART
    for staff_id, role, unit in (("a1", "store_staff", "HZ-XH-002"), ("a2", "regional_manager", "south"),
                                 ("a3", "customer_service", "muyun"), ("a4", "admin", None)):
        chart = orgs.add_staff(chart, staff_id, "新人", role, unit, f"{staff_id}@example.com")
    assert chart.staff["a1"].store_id == "HZ-XH-002"
    assert chart.staff["a2"].region_id == "south"
    assert chart.staff["a3"].brand_id == "muyun"
    a4 = chart.staff["a4"]
    assert (a4.role, a4.store_id, a4.region_id, a4.brand_id) == (Role.ADMIN, None, None, None)
    assert all(chart.staff[i].active for i in ("a1", "a2", "a3", "a4"))
    assert chart.staff["a1"].email == "a1@example.com"


def test_a_new_customer_service_stands_in_for_the_missing_regional_manager():
    chart = orgs.add_staff(CHART, "my-cs", "客服", "customer_service", "muyun", None)
    assert chart.ladder("BJ-CY-101")[3].staff_id == "my-cs"
    assert chart.revisit_owner("BJ-CY-101").staff_id == "my-cs"


# -- opening a store ----------------------------------------------------------------------

def test_a_new_store_starts_closed():
    store = new_brand_with_store().store("CD-JJ-201")
    assert store.status is StoreStatus.CLOSED and not store.is_open
    assert new_brand_with_store().open_store("CD-JJ-201") is None


def test_opening_needs_an_active_store_manager():
    chart = new_brand_with_store()
    assert refusal(open_store, chart, "CD-JJ-201") == (409, "store_needs_manager", "status")
    chart = orgs.add_staff(chart, "cd-s1", "店员", "store_staff", "CD-JJ-201", None)
    chart = orgs.add_staff(chart, "cd-sv", "主管", "supervisor", "CD-JJ-201", None)
    assert refusal(open_store, chart, "CD-JJ-201")[1] == "store_needs_manager"  # a supervisor is not enough


def test_opening_needs_a_general_manager_of_the_brand():
    chart = orgs.add_staff(new_brand_with_store(), "cd-mg", "店长", "store_manager", "CD-JJ-201", None)
    assert refusal(open_store, chart, "CD-JJ-201") == (409, "brand_needs_general_manager", "status")
    # another brand's general manager does not count
    assert chart.first_active(Role.GENERAL_MANAGER, brand_id="yueyan") is not None
    chart = orgs.add_staff(chart, "lt-gm", "总经理", "general_manager", "lanting", None)
    opened = open_store(chart, "CD-JJ-201")
    assert opened.store("CD-JJ-201").is_open
    assert [p.staff_id for p in opened.ladder("CD-JJ-201")] == ["cd-mg", "cd-mg", "cd-mg", "lt-gm", "lt-gm"]


def test_an_inactive_manager_does_not_open_a_store():
    chart = orgs.add_staff(new_brand_with_store(), "cd-mg", "店长", "store_manager", "CD-JJ-201", None)
    chart = orgs.add_staff(chart, "lt-gm", "总经理", "general_manager", "lanting", None)
    chart = orgs.deactivate_staff(chart, "cd-mg")  # the store is closed: allowed
    assert refusal(open_store, chart, "CD-JJ-201")[1] == "store_needs_manager"


def test_closing_a_store_is_always_allowed():
    closed = orgs.update_store(CHART, "GZ-TH-003", {"status": "closed"})
    assert closed.store("GZ-TH-003").status is StoreStatus.CLOSED
    assert orgs.update_store(closed, "GZ-TH-003", {"status": "open"}).store("GZ-TH-003").is_open


def test_update_store_of_an_unknown_store_is_404():
    assert refusal(orgs.update_store, CHART, "NOPE", {"name": "x"}) == (404, "store_not_found", "store_id")


def test_update_store_name_and_timezone():
    chart = orgs.update_store(CHART, "SH-XH-001", {"name": "上海徐汇旗舰店", "timezone": "Asia/Urumqi"})
    store = chart.store("SH-XH-001")
    assert (store.name, store.timezone, store.status) == ("上海徐汇旗舰店", "Asia/Urumqi", StoreStatus.OPEN)


@pytest.mark.parametrize("owner", ["hz-xh-s1", "cs-001", "nobody", "rm-east"])
def test_the_revisit_owner_must_be_an_active_member_of_the_store(owner):
    assert refusal(orgs.update_store, CHART, "SH-XH-001", {"revisit_owner_id": owner}) == (
        422, "validation_failed", "revisit_owner_id")


def test_set_and_clear_the_revisit_owner():
    chart = orgs.update_store(CHART, "SH-XH-001", {"revisit_owner_id": "sh-xh-sv"})
    assert chart.revisit_owner("SH-XH-001").staff_id == "sh-xh-sv"
    chart = orgs.update_store(chart, "SH-XH-001", {"revisit_owner_id": None})
    assert chart.store("SH-XH-001").revisit_owner_id is None
    assert chart.revisit_owner("SH-XH-001").staff_id == "cs-001"
    inactive = orgs.deactivate_staff(CHART, "sh-xh-s1")
    assert refusal(orgs.update_store, inactive, "SH-XH-001", {"revisit_owner_id": "sh-xh-s1"})[1] == \
        "validation_failed"


# -- deactivating -----------------------------------------------------------------------

def test_deactivation_keeps_the_person_and_their_history():
    chart = orgs.deactivate_staff(CHART, "sh-xh-s1")
    person = chart.staff["sh-xh-s1"]
    assert person == replace(CHART.staff["sh-xh-s1"], active=False)
    assert chart.ladder("SH-XH-001")[0].staff_id == "sh-xh-rv"
    assert CHART.staff["sh-xh-s1"].active  # the original is untouched


def test_deactivation_clears_a_revisit_owner():
    chart = orgs.deactivate_staff(CHART, "sh-xh-rv")
    assert chart.store("SH-XH-001").revisit_owner_id is None
    assert chart.store("HZ-XH-002").revisit_owner_id == "hz-xh-s1"
    assert chart.revisit_owner("SH-XH-001").staff_id == "cs-001"


def test_the_only_manager_of_an_open_store_cannot_be_deactivated():
    assert refusal(orgs.deactivate_staff, CHART, "gz-th-mg") == (409, "store_needs_manager", "status")
    closed = orgs.update_store(CHART, "GZ-TH-003", {"status": "closed"})
    assert not orgs.deactivate_staff(closed, "gz-th-mg").staff["gz-th-mg"].active


def test_one_of_two_managers_can_be_deactivated():
    chart = orgs.add_staff(CHART, "gz-th-mg2", "副店长", "store_manager", "GZ-TH-003", None)
    chart = orgs.deactivate_staff(chart, "gz-th-mg")
    assert chart.ladder("GZ-TH-003")[2].staff_id == "gz-th-mg2"


def test_the_only_general_manager_of_a_brand_with_open_stores_stays():
    assert refusal(orgs.deactivate_staff, CHART, "gm-001") == (409, "brand_needs_general_manager", "staff_id")
    assert refusal(orgs.deactivate_staff, CHART, "my-gm")[1] == "brand_needs_general_manager"
    chart = orgs.add_staff(CHART, "gm-002", "副总", "general_manager", "yueyan", None)
    assert orgs.deactivate_staff(chart, "gm-001").ladder("SH-XH-001")[4].staff_id == "gm-002"


@pytest.mark.parametrize("staff_id", ["rm-east", "cs-001", "sh-xh-sv", "ops-admin"])
def test_nobody_else_is_required(staff_id):
    assert not orgs.deactivate_staff(CHART, staff_id).staff[staff_id].active


def test_deactivating_twice_or_someone_unknown():
    chart = orgs.deactivate_staff(CHART, "sh-xh-s1")
    assert refusal(orgs.deactivate_staff, chart, "sh-xh-s1")[:2] == (409, "staff_inactive")
    assert refusal(orgs.deactivate_staff, CHART, "nobody") == (404, "staff_not_found", "staff_id")


def test_ladder_fallbacks_as_people_leave():
    chart = CHART
    expected = [
        ("sh-xh-s1", ["sh-xh-rv", "sh-xh-sv", "sh-xh-mg", "rm-east", "gm-001"]),
        ("sh-xh-rv", ["sh-xh-sv", "sh-xh-sv", "sh-xh-mg", "rm-east", "gm-001"]),
        ("sh-xh-sv", ["sh-xh-mg", "sh-xh-mg", "sh-xh-mg", "rm-east", "gm-001"]),
        ("rm-east", ["sh-xh-mg", "sh-xh-mg", "sh-xh-mg", "cs-001", "gm-001"]),
        ("cs-001", ["sh-xh-mg", "sh-xh-mg", "sh-xh-mg", "gm-001", "gm-001"]),
    ]
    for leaving, ladder in expected:
        chart = orgs.deactivate_staff(chart, leaving)
        assert [p.staff_id for p in chart.ladder("SH-XH-001")] == ladder, leaving
        assert all(p.active for p in chart.ladder("SH-XH-001"))
    assert chart.revisit_owner("SH-XH-001").staff_id == "sh-xh-mg"


# -- updating and moving -----------------------------------------------------------------

def test_update_staff_name_and_email_is_no_move():
    chart = orgs.update_staff(CHART, "sh-xh-s1", {"name": "王小雨(新)", "email": "new@yueyan.example"})
    person = chart.staff["sh-xh-s1"]
    assert (person.name, person.email, person.role, person.store_id) == (
        "王小雨(新)", "new@yueyan.example", Role.STORE_STAFF, "SH-XH-001")
    assert not orgs.left_post(CHART, chart, "sh-xh-s1")


def test_update_staff_of_someone_unknown_or_inactive():
    assert refusal(orgs.update_staff, CHART, "nobody", {"name": "x"}) == (404, "staff_not_found", "staff_id")
    chart = orgs.deactivate_staff(CHART, "sh-xh-s1")
    assert refusal(orgs.update_staff, chart, "sh-xh-s1", {"name": "x"})[:2] == (409, "staff_inactive")


def test_a_move_into_a_unit_of_the_wrong_level_is_refused():
    # the unit check comes before the move is applied
    assert refusal(orgs.update_staff, CHART, "sh-xh-s1", {"role": "regional_manager", "unit_id": "SH-XH-001"}) \
        == (422, "unknown_region", "unit_id")
    assert refusal(orgs.update_staff, CHART, "sh-xh-s1", {"role": "regional_manager"})[:2] == (422, "unknown_region")


def test_the_only_manager_cannot_be_made_an_admin_of_an_open_store_away():
    assert refusal(orgs.update_staff, CHART, "gz-th-mg", {"role": "admin"})[:2] == (409, "store_needs_manager")
    assert refusal(orgs.update_staff, CHART, "my-gm", {"role": "admin"})[:2] == (409, "brand_needs_general_manager")


def test_becoming_an_admin_leaves_the_post():
    chart = orgs.update_staff(CHART, "sh-xh-s1", {"role": "admin"})
    person = chart.staff["sh-xh-s1"]
    assert (person.role, person.store_id, person.region_id, person.brand_id) == (Role.ADMIN, None, None, None)
    assert orgs.left_post(CHART, chart, "sh-xh-s1")
    assert chart.ladder("SH-XH-001")[0].staff_id == "sh-xh-rv"




@pytest.mark.parametrize("changes, unit", [
    ({"unit_id": "HZ-XH-002"}, {"store_id": "HZ-XH-002"}),
    ({"role": "supervisor", "unit_id": "GZ-TH-003"}, {"store_id": "GZ-TH-003"}),
    ({"role": "regional_manager", "unit_id": "south"}, {"region_id": "south"}),
    ({"role": "customer_service", "unit_id": "muyun"}, {"brand_id": "muyun"}),
])
def test_update_staff_moves_units(changes, unit):
    chart = orgs.update_staff(CHART, "sh-xh-s1", changes)
    person = chart.staff["sh-xh-s1"]
    assert {k: getattr(person, k) for k in ("store_id", "region_id", "brand_id") if getattr(person, k)} == unit
    assert orgs.left_post(CHART, chart, "sh-xh-s1")


def test_moving_the_only_manager_of_an_open_store_away_is_refused():
    assert refusal(orgs.update_staff, CHART, "gz-th-mg", {"unit_id": "SH-XH-001"})[:2] == (409, "store_needs_manager")


def test_a_revisit_owner_who_moves_away_is_no_longer_the_owner():
    chart = orgs.update_staff(CHART, "sh-xh-rv", {"unit_id": "HZ-XH-002"})
    assert chart.revisit_owner("SH-XH-001").staff_id != "sh-xh-rv"


def test_a_revisit_owner_who_becomes_an_admin_is_no_longer_the_owner():
    chart = orgs.update_staff(CHART, "hz-xh-s1", {"role": "admin"})
    owner = chart.revisit_owner("HZ-XH-002")
    assert owner.role is not Role.ADMIN and chart.brand_of(owner) == "yueyan"


def test_revisit_owner_is_always_someone_of_the_store_or_above():
    person = replace(CHART.staff["sh-xh-rv"], store_id="HZ-XH-002")  # moved, as update_staff means to
    chart = replace(CHART, staff={**CHART.staff, "sh-xh-rv": person})
    assert chart.revisit_owner("SH-XH-001").staff_id != "sh-xh-rv"


@pytest.mark.parametrize("after, moved", [
    (lambda c: orgs.deactivate_staff(c, "sh-xh-s1"), True),
    (lambda c: replace(c, staff={**c.staff, "sh-xh-s1": replace(c.staff["sh-xh-s1"], store_id="HZ-XH-002")}), True),
    (lambda c: replace(c, staff={**c.staff, "sh-xh-s1": replace(c.staff["sh-xh-s1"], role=Role.SUPERVISOR)}), True),
    (lambda c: replace(c, staff={**c.staff, "sh-xh-s1": replace(c.staff["sh-xh-s1"], email="x@y.cn")}), False),
    (lambda c: orgs.deactivate_staff(c, "sh-xh-rv"), False),  # someone else
])
def test_left_post(after, moved):
    assert orgs.left_post(CHART, after(CHART), "sh-xh-s1") is moved


# -- what GET /v1/org shows ---------------------------------------------------------------

def test_public_view_of_a_store_scope():
    shown = orgs.public_view(CHART, Scope(frozenset({"GZ-TH-003"})))
    assert [s["store_id"] for s in shown["stores"]] == ["GZ-TH-003"]
    assert [r["region_id"] for r in shown["regions"]] == ["south"]
    assert [b["brand_id"] for b in shown["brands"]] == ["yueyan"]
    assert {p["staff_id"] for p in shown["staff"]} == {"gz-th-s1", "gz-th-mg", "rm-south", "gm-001", "cs-001"}
    assert shown["version"] == CHART.version


def test_public_view_of_everything():
    shown = orgs.public_view(CHART, Scope(None))
    assert len(shown["stores"]) == 4 and len(shown["staff"]) == len(CHART.staff)
    assert "ops-admin" in {p["staff_id"] for p in shown["staff"]}


def test_public_view_never_crosses_brands():
    shown = orgs.public_view(CHART, Scope(frozenset({"BJ-CY-101"})))
    assert {p["staff_id"] for p in shown["staff"]} == {"bj-cy-s1", "bj-cy-mg", "my-gm"}
    assert [b["brand_id"] for b in shown["brands"]] == ["muyun"]


# -- snapshots ----------------------------------------------------------------------------

def through_the_bus(snapshot):
    """The snapshot as another service receives it in org_changed."""
    payload = json.loads(json.dumps(ev.dump(ev.ORG_CHANGED, snapshot), ensure_ascii=False))
    return ev.load(ev.ORG_CHANGED, payload)


def changed_chart():
    chart = orgs.deactivate_staff(new_brand_with_store(), "sh-xh-rv")
    chart = orgs.add_staff(chart, "cd-mg", "店长", "store_manager", "CD-JJ-201", None)
    return orgs.update_store(chart, "SH-XH-001", {"timezone": "Asia/Urumqi"}).with_version(7)


@pytest.mark.parametrize("chart", [CHART, Organisation(), changed_chart()], ids=["seed", "empty", "changed"])
def test_snapshot_round_trip(chart):
    assert Organisation.from_snapshot(chart.to_snapshot()) == chart
    assert Organisation.from_snapshot(through_the_bus(chart.to_snapshot())) == chart


def test_the_snapshot_keeps_order_so_the_ladder_is_the_same_everywhere():
    copy = Organisation.from_snapshot(through_the_bus(CHART.to_snapshot()))
    for store_id in CHART.stores:
        assert copy.ladder(store_id) == CHART.ladder(store_id)
        assert copy.revisit_owner(store_id) == CHART.revisit_owner(store_id)


def test_the_snapshot_is_plain_data():
    snapshot = changed_chart().to_snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["version"] == 7
    staff = {p["staff_id"]: p for p in snapshot["staff"]}
    assert staff["sh-xh-rv"]["active"] is False and staff["sh-xh-s1"]["role"] == "store_staff"
    assert {s["store_id"]: s["status"] for s in snapshot["stores"]}["CD-JJ-201"] == "closed"


# -- change_organisation (identity_flows) ---------------------------------------------------

def test_change_organisation_stores_the_next_version_and_announces_it():
    store = FakeOrgStore(CHART.to_snapshot())
    changed, events = identity_flows.change_organisation(
        store, CHART, lambda o: orgs.add_brand(o, "lanting", "兰亭养生"), NOW)
    assert changed.version == CHART.version + 1 and "lanting" in changed.brands
    [event] = events
    assert event["type"] == ev.ORG_CHANGED
    assert Organisation.from_snapshot(ev.load(ev.ORG_CHANGED, event["payload"])) == changed
    assert store.snapshot == changed.to_snapshot() and store.events == events


def test_change_organisation_refuses_a_stale_base():
    store = FakeOrgStore(CHART.with_version(5).to_snapshot())
    with pytest.raises(identity_flows.ConcurrentChange):
        identity_flows.change_organisation(store, CHART, lambda o: orgs.add_brand(o, "x", "X"), NOW)
    assert store.events == []


def test_a_refused_change_stores_nothing():
    store = FakeOrgStore(CHART.to_snapshot())
    with pytest.raises(OrgRefused):
        identity_flows.change_organisation(store, CHART, lambda o: orgs.deactivate_staff(o, "gm-001"), NOW)
    assert store.snapshot == CHART.to_snapshot() and store.events == []


# -- the rules hold whatever is changed in whatever order --------------------------------------

ROLES = [r.value for r in Role]


class OrganisationMachine(RuleBasedStateMachine):
    """Random organisation management; every accepted change keeps every open store
    runnable, and refused ones change nothing."""

    def __init__(self):
        super().__init__()
        self.chart, self.counter = CHART, 0

    def _try(self, change):
        before = self.chart
        try:
            self.chart = change(before)
        except OrgRefused as refused:
            assert refused.status in (404, 409, 422) and refused.code
            assert self.chart is before

    def _new_id(self, prefix):
        self.counter += 1
        return f"{prefix}-{self.counter}"

    @rule(data=st.data())
    def deactivate(self, data):
        staff_id = data.draw(st.sampled_from(sorted(self.chart.staff)))
        self._try(lambda o: orgs.deactivate_staff(o, staff_id))

    @rule(data=st.data(), role=st.sampled_from(ROLES))
    def add_staff(self, data, role):
        units = sorted(self.chart.stores) + sorted(self.chart.regions) + sorted(self.chart.brands) + [None]
        unit = data.draw(st.sampled_from(units))
        staff_id = self._new_id("p")
        self._try(lambda o: orgs.add_staff(o, staff_id, "新人", role, unit, None))

    @rule(data=st.data(), status=st.sampled_from(["open", "closed"]))
    def set_status(self, data, status):
        store_id = data.draw(st.sampled_from(sorted(self.chart.stores)))
        self._try(lambda o: orgs.update_store(o, store_id, {"status": status}))

    @rule(data=st.data())
    def set_revisit_owner(self, data):
        store_id = data.draw(st.sampled_from(sorted(self.chart.stores)))
        owner = data.draw(st.sampled_from(sorted(self.chart.staff) + [None]))
        self._try(lambda o: orgs.update_store(o, store_id, {"revisit_owner_id": owner}))

    @rule(data=st.data())
    def add_store(self, data):
        region_id = data.draw(st.sampled_from(sorted(self.chart.regions) + ["nowhere"]))
        store_id = self._new_id("S")
        self._try(lambda o: orgs.add_store(o, store_id, "新店", region_id, "Asia/Shanghai"))

    @rule(data=st.data())
    def become_admin(self, data):
        owners = {s.revisit_owner_id for s in self.chart.stores.values()}
        staff_id = data.draw(st.sampled_from(sorted(set(self.chart.staff) - owners)))
        self._try(lambda o: orgs.update_staff(o, staff_id, {"role": "admin"}))

    @invariant()
    def open_stores_can_run(self):
        for store in self.chart.stores.values():
            if not store.is_open:
                continue
            ladder = self.chart.ladder(store.store_id)
            brand_id = self.chart.brand_of_store(store.store_id)
            assert len(ladder) == len(LADDER)
            assert all(p.active and self.chart.brand_of(p) == brand_id for p in ladder)
            assert self.chart.first_active(Role.STORE_MANAGER, store_id=store.store_id) is not None
            owner = self.chart.revisit_owner(store.store_id)
            assert owner.active and self.chart.brand_of(owner) == brand_id

    @invariant()
    def named_revisit_owners_are_active_members(self):
        for store in self.chart.stores.values():
            if store.revisit_owner_id is not None:
                owner = self.chart.staff[store.revisit_owner_id]
                assert owner.active and owner.store_id == store.store_id

    @invariant()
    def every_person_has_exactly_the_unit_of_their_role(self):
        for person in self.chart.staff.values():
            units = [u for u in (person.store_id, person.region_id, person.brand_id) if u]
            assert len(units) == (0 if person.role is Role.ADMIN else 1)

    def teardown(self):
        # once per run, not per step: snapshots (asdict) and marshmallow are slow
        assert Organisation.from_snapshot(through_the_bus(self.chart.to_snapshot())) == self.chart


OrganisationMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestOrganisationMachine = OrganisationMachine.TestCase
