"""closeloop_shared/org.py: the organisation (brands > regions > stores > staff), its
nested seed format and the escalation ladder."""
import copy
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from closeloop_shared import org
from closeloop_shared.contract import Role, StoreStatus
from closeloop_shared.org import LADDER, Organisation, Staff

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "deploy" / "seeds" / "org.yaml"
CHART = org.load(SEED)
STORES = ("SH-XH-001", "HZ-XH-002", "GZ-TH-003", "BJ-CY-101")
GM_OF = {"SH-XH-001": "gm-001", "HZ-XH-002": "gm-001", "GZ-TH-003": "gm-001", "BJ-CY-101": "my-gm"}


def ids(people):
    return [p.staff_id for p in people]


def minimal(brand_staff=None, region_staff=None, store_staff=None):
    """One brand, one region, one store, in the seed's nested form."""
    return {"brands": [{
        "brand_id": "b1", "name": "品牌",
        "staff": [{"staff_id": "gm", "name": "GM", "role": "general_manager"}]
        if brand_staff is None else brand_staff,
        "regions": [{
            "region_id": "east", "name": "华东区",
            "staff": [{"staff_id": "rm", "name": "RM", "role": "regional_manager"}]
            if region_staff is None else region_staff,
            "stores": [{
                "store_id": "S1", "name": "店一",
                "staff": [{"staff_id": "s1", "name": "甲", "role": "store_staff"},
                          {"staff_id": "m1", "name": "乙", "role": "store_manager"}]
                if store_staff is None else store_staff}]}]}]}


def with_customer_service(doc):
    doc["brands"][0]["staff"].append({"staff_id": "cs", "name": "客服", "role": "customer_service"})
    return doc


def deactivated(chart, *staff_ids):
    return replace(chart, staff={**chart.staff, **{
        i: replace(chart.staff[i], active=False) for i in staff_ids}})


def test_ladder_order():
    assert LADDER == ("store_staff", "supervisor", "store_manager", "regional_manager",
                      "general_manager")
    assert all(isinstance(role, Role) for role in LADDER)


# -- the seed ---------------------------------------------------------------------------

def test_the_seed_loads():
    assert set(CHART.stores) == set(STORES)
    assert set(CHART.brands) == {"yueyan", "muyun"}
    assert {r: region.brand_id for r, region in CHART.regions.items()} == {
        "east": "yueyan", "south": "yueyan", "muyun-north": "muyun"}
    assert CHART.staff["gm-001"] == Staff("gm-001", "周慧敏", Role.GENERAL_MANAGER, "gm@yueyan.example",
                                          brand_id="yueyan")
    cs = CHART.first_active(Role.CUSTOMER_SERVICE, brand_id="yueyan")
    assert (cs.staff_id, cs.role) == ("cs-001", Role.CUSTOMER_SERVICE)
    assert CHART.first_active(Role.CUSTOMER_SERVICE, brand_id="muyun") is None
    assert CHART.first_active(Role.REGIONAL_MANAGER, region_id="east").staff_id == "rm-east"
    assert CHART.first_active(Role.REGIONAL_MANAGER, region_id="south").staff_id == "rm-south"
    store = CHART.store("SH-XH-001")
    assert (store.name, store.region_id, store.revisit_owner_id) == ("上海徐汇店", "east", "sh-xh-rv")
    assert (store.timezone, store.status) == ("Asia/Shanghai", StoreStatus.OPEN)
    assert len([p for p in CHART.staff.values() if p.store_id == "SH-XH-001"]) == 4
    assert CHART.version == 0


def test_the_seed_has_an_admin_in_no_unit():
    admin = CHART.staff["ops-admin"]
    assert admin.role is Role.ADMIN
    assert (admin.store_id, admin.region_id, admin.brand_id) == (None, None, None)
    assert CHART.brand_of(admin) is None


def test_every_person_sits_in_exactly_the_unit_of_their_role_level():
    for person in CHART.staff.values():
        units = {k for k in ("store_id", "region_id", "brand_id") if getattr(person, k)}
        expected = {"store_id"} if person.role in org.STORE_ROLES else \
            {"region_id"} if person.role in org.REGION_ROLES else \
            {"brand_id"} if person.role in org.BRAND_ROLES else set()
        assert units == expected, person
        assert person.active


def test_parse_matches_load():
    assert org.parse(yaml.safe_load(SEED.read_text(encoding="utf-8"))) == CHART


def test_unknown_store_is_none():
    assert CHART.store("BJ-CY-999") is None
    assert CHART.open_store("BJ-CY-999") is None


def test_open_store_only_when_open():
    assert CHART.open_store("SH-XH-001") is CHART.store("SH-XH-001")
    closed = replace(CHART, stores={**CHART.stores, "SH-XH-001": replace(
        CHART.stores["SH-XH-001"], status=StoreStatus.CLOSED)})
    assert closed.open_store("SH-XH-001") is None
    assert closed.store("SH-XH-001") is not None


def test_units_resolve_to_their_brand_and_stores():
    assert CHART.brand_of_store("BJ-CY-101") == "muyun"
    assert CHART.brand_of_store("GZ-TH-003") == "yueyan"
    assert CHART.brand_of(CHART.staff["sh-xh-s1"]) == "yueyan"
    assert CHART.brand_of(CHART.staff["rm-south"]) == "yueyan"
    assert CHART.brand_of(CHART.staff["my-gm"]) == "muyun"
    assert CHART.stores_of_region("east") == {"SH-XH-001", "HZ-XH-002"}
    assert CHART.stores_of_region("nowhere") == frozenset()
    assert CHART.stores_of_brand("yueyan") == {"SH-XH-001", "HZ-XH-002", "GZ-TH-003"}
    assert CHART.stores_of_brand("muyun") == {"BJ-CY-101"}


# -- the ladder --------------------------------------------------------------------------

@pytest.mark.parametrize("store_id", STORES)
def test_every_store_has_five_rungs_in_ladder_order(store_id):
    people = CHART.ladder(store_id)
    assert len(people) == len(LADDER) == 5
    assert all(isinstance(p, Staff) for p in people)
    # customer service stands in for a missing regional manager: rank it on that rung
    rank = {**{role: i for i, role in enumerate(LADDER)}, Role.CUSTOMER_SERVICE: 3}
    positions = [rank[p.role] for p in people]
    # Rung i is held by someone of role LADDER[i], or (a missing rung) by someone higher.
    assert all(position >= rung for rung, position in enumerate(positions))
    assert positions == sorted(positions)
    assert people[-1].staff_id == GM_OF[store_id]
    # never someone of another brand
    assert {CHART.brand_of(p) for p in people} == {CHART.brand_of_store(store_id)}


def test_a_full_store_has_one_person_per_role():
    assert ids(CHART.ladder("SH-XH-001")) == ["sh-xh-s1", "sh-xh-sv", "sh-xh-mg", "rm-east", "gm-001"]
    assert [p.role for p in CHART.ladder("SH-XH-001")] == list(LADDER)
    assert ids(CHART.ladder("HZ-XH-002")) == ["hz-xh-s1", "hz-xh-sv", "hz-xh-mg", "rm-east", "gm-001"]


def test_a_missing_supervisor_falls_back_to_the_store_manager():
    people = CHART.ladder("GZ-TH-003")
    assert ids(people) == ["gz-th-s1", "gz-th-mg", "gz-th-mg", "rm-south", "gm-001"]
    assert people[1].role is Role.STORE_MANAGER


def test_a_brand_without_regional_manager_or_customer_service_climbs_to_its_general_manager():
    assert ids(CHART.ladder("BJ-CY-101")) == ["bj-cy-s1", "bj-cy-mg", "bj-cy-mg", "my-gm", "my-gm"]


def test_the_first_staff_member_of_a_role_holds_the_rung():
    # SH-XH-001 has two store_staff; the one listed first is rung 0.
    assert CHART.ladder("SH-XH-001")[0].name == "王小雨"


def test_inactive_people_hold_no_rung():
    chart = deactivated(CHART, "sh-xh-s1")
    assert ids(chart.ladder("SH-XH-001"))[0] == "sh-xh-rv"
    chart = deactivated(CHART, "sh-xh-s1", "sh-xh-rv", "sh-xh-sv")
    assert ids(chart.ladder("SH-XH-001")) == ["sh-xh-mg"] * 3 + ["rm-east", "gm-001"]
    chart = deactivated(CHART, "rm-east")
    assert ids(chart.ladder("SH-XH-001"))[3] == "cs-001"
    chart = deactivated(CHART, "rm-east", "cs-001")
    assert ids(chart.ladder("SH-XH-001"))[3] == "gm-001"


def test_without_an_active_general_manager_there_is_no_ladder():
    with pytest.raises(ValueError, match="general manager"):
        deactivated(CHART, "gm-001").ladder("SH-XH-001")
    deactivated(CHART, "gm-001").ladder("BJ-CY-101")  # the other brand is unaffected


def test_ladder_of_an_unknown_store_raises():
    with pytest.raises(KeyError):
        CHART.ladder("BJ-CY-999")


def test_a_region_without_manager_falls_back_to_customer_service():
    people = org.parse(with_customer_service(minimal(region_staff=[]))).ladder("S1")
    assert ids(people) == ["s1", "m1", "m1", "cs", "gm"]
    assert people[3].role is Role.CUSTOMER_SERVICE


def test_without_customer_service_either_the_general_manager_steps_in():
    assert ids(org.parse(minimal(region_staff=[])).ladder("S1")) == ["s1", "m1", "m1", "gm", "gm"]


def test_a_store_without_staff_starts_at_the_regional_manager():
    assert ids(org.parse(minimal(store_staff=[])).ladder("S1")) == ["rm", "rm", "rm", "rm", "gm"]


def test_ladder_does_not_change_the_chart():
    chart = org.parse(minimal())
    before = copy.deepcopy(chart)
    chart.ladder("S1")[0] = None
    assert chart == before
    assert chart.ladder("S1")[0].staff_id == "s1"


# -- revisit owners -------------------------------------------------------------------

@pytest.mark.parametrize("store_id, owner", [
    ("SH-XH-001", "sh-xh-rv"),   # named in the seed
    ("HZ-XH-002", "hz-xh-s1"),
    ("GZ-TH-003", "cs-001"),     # none named: the brand's customer service
    ("BJ-CY-101", "bj-cy-mg"),   # no customer service in that brand: the store manager
])
def test_revisit_owner(store_id, owner):
    assert CHART.revisit_owner(store_id).staff_id == owner


def test_revisit_owner_naming_nobody_on_staff_falls_back_to_customer_service():
    doc = with_customer_service(minimal())
    doc["brands"][0]["regions"][0]["stores"][0]["revisit_owner"] = "left-the-company"
    assert org.parse(doc).revisit_owner("S1").staff_id == "cs"


def test_an_inactive_revisit_owner_falls_back_to_customer_service():
    assert deactivated(CHART, "sh-xh-rv").revisit_owner("SH-XH-001").staff_id == "cs-001"


def test_without_customer_service_the_store_manager_revisits():
    assert org.parse(minimal()).revisit_owner("S1").staff_id == "m1"


def test_every_store_has_a_revisit_owner():
    doc = minimal(store_staff=[{"staff_id": "s1", "name": "甲", "role": "store_staff"},
                               {"staff_id": "v1", "name": "丙", "role": "supervisor"}])
    assert org.parse(doc).revisit_owner("S1").staff_id == "rm"  # the store-manager rung's holder


def test_the_customer_service_of_another_brand_never_revisits():
    # muyun has none; yueyan's customer service must not stand in
    assert CHART.brand_of(CHART.revisit_owner("BJ-CY-101")) == "muyun"


# -- seed options and refusals ----------------------------------------------------------

def test_store_options_in_the_seed():
    doc = minimal()
    doc["brands"][0]["regions"][0]["stores"][0].update(status="closed", timezone="Asia/Urumqi")
    store = org.parse(doc).store("S1")
    assert (store.status, store.timezone, store.is_open) == (StoreStatus.CLOSED, "Asia/Urumqi", False)


def test_an_unknown_role_is_refused():
    doc = minimal()
    doc["brands"][0]["regions"][0]["stores"][0]["staff"].append(
        {"staff_id": "x", "name": "收银", "role": "cashier"})
    with pytest.raises(ValueError, match="cashier"):
        org.parse(doc)


@pytest.mark.parametrize("level, role", [
    ("store", "customer_service"), ("store", "general_manager"), ("store", "regional_manager"),
    ("store", "admin"), ("region", "store_manager"), ("region", "general_manager"),
    ("brand", "store_staff"), ("brand", "regional_manager"), ("brand", "admin"),
])
def test_a_role_belongs_to_its_level(level, role):
    doc = minimal()
    brand = doc["brands"][0]
    people = {"brand": brand["staff"], "region": brand["regions"][0]["staff"],
              "store": brand["regions"][0]["stores"][0]["staff"]}[level]
    people.append({"staff_id": "x", "name": "X", "role": role})
    with pytest.raises(ValueError, match=f"{role} is not a {level} role"):
        org.parse(doc)


def test_people_get_the_unit_they_are_listed_under():
    chart = org.parse(with_customer_service(minimal()))
    assert chart.staff["gm"].brand_id == chart.staff["cs"].brand_id == "b1"
    assert chart.staff["rm"].region_id == "east"
    assert chart.staff["s1"].store_id == chart.staff["m1"].store_id == "S1"


def test_a_duplicate_staff_id_is_refused():
    doc = minimal()
    doc["brands"][0]["regions"][0]["stores"][0]["staff"].append(
        {"staff_id": "gm", "name": "同号", "role": "store_staff"})
    with pytest.raises(ValueError, match="duplicate staff id 'gm'"):
        org.parse(doc)
    doc = minimal()
    doc["admins"] = [{"staff_id": "s1", "name": "管理员"}]
    with pytest.raises(ValueError, match="duplicate"):
        org.parse(doc)


def test_a_brand_with_stores_needs_a_general_manager():
    with pytest.raises(ValueError, match="general manager"):
        org.parse(minimal(brand_staff=[]))


def test_an_empty_document_is_an_empty_organisation():
    assert org.parse({}) == Organisation()
    # a brand with no store yet needs no general manager (it cannot take feedback)
    assert set(org.parse({"brands": [{"brand_id": "new", "name": "新品牌"}]}).brands) == {"new"}


def test_staff_as_dict():
    assert CHART.ladder("GZ-TH-003")[0].as_dict() == {
        "staff_id": "gz-th-s1", "name": "何芳", "role": "store_staff",
        "email": "he.fang@yueyan.example"}
    assert Staff("x", "无邮箱", Role.STORE_STAFF).as_dict()["email"] is None


def test_staff_and_store_records_round_trip():
    for person in CHART.staff.values():
        record = person.to_record()
        assert record["role"] == person.role.value and isinstance(record["role"], str)
        assert Staff.from_record(record) == person
    for store in CHART.stores.values():
        assert org.Store.from_record(store.to_record()) == store


def test_first_active():
    assert CHART.first_active(Role.STORE_MANAGER, store_id="GZ-TH-003").staff_id == "gz-th-mg"
    assert CHART.first_active(Role.SUPERVISOR, store_id="GZ-TH-003") is None
    assert deactivated(CHART, "gz-th-mg").first_active(Role.STORE_MANAGER, store_id="GZ-TH-003") is None


@pytest.mark.parametrize("unit", ["store", "region", "brand"])
def test_a_duplicate_unit_id_is_refused(unit):
    doc = minimal()
    brand = doc["brands"][0]
    if unit == "store":
        brand["regions"][0]["stores"].append({"store_id": "S1", "name": "同号店", "staff": []})
    elif unit == "region":
        brand["regions"].append({"region_id": "east", "name": "同号区", "stores": []})
    else:
        doc["brands"].append({"brand_id": "b1", "name": "同号品牌"})
    with pytest.raises(ValueError, match="duplicate"):
        org.parse(doc)
