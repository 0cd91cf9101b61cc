"""closeloop_shared/org.py: the org chart and the escalation ladder."""
import copy
from pathlib import Path

import pytest
import yaml

from closeloop_shared import org
from closeloop_shared.org import LADDER, Staff

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "deploy" / "seeds" / "org.yaml"
CHART = org.load(SEED)
STORES = ("SH-XH-001", "HZ-XH-002", "GZ-TH-003")


def ids(people):
    return [p.staff_id for p in people]


def minimal(**company):
    return {
        "company": {"general_manager": {"staff_id": "gm", "name": "GM"}, **company},
        "regions": [{"region_id": "east", "name": "华东区",
                     "regional_manager": {"staff_id": "rm", "name": "RM"}}],
        "stores": [{"store_id": "S1", "name": "店一", "region_id": "east", "staff": [
            {"staff_id": "s1", "name": "甲", "role": "store_staff"},
            {"staff_id": "m1", "name": "乙", "role": "store_manager"}]}],
    }


def test_ladder_order():
    assert LADDER == ("store_staff", "supervisor", "store_manager", "regional_manager",
                      "general_manager")


def test_the_seed_loads():
    assert set(CHART.stores) == set(STORES)
    assert CHART.general_manager == Staff("gm-001", "周慧敏", "general_manager", "gm@yueyan.example")
    assert CHART.customer_service.role == "customer_service"
    assert CHART.customer_service.staff_id == "cs-001"
    assert {r: s.staff_id for r, s in CHART.regional_managers.items()} == {
        "east": "rm-east", "south": "rm-south"}
    store = CHART.store("SH-XH-001")
    assert (store.name, store.region_id, store.revisit_owner_id) == ("上海徐汇店", "east", "sh-xh-rv")
    assert len(store.staff) == 4


def test_parse_matches_load():
    assert org.parse(yaml.safe_load(SEED.read_text(encoding="utf-8"))) == CHART


def test_unknown_store_is_none():
    assert CHART.store("BJ-CY-999") is None


@pytest.mark.parametrize("store_id", STORES)
def test_every_store_has_five_rungs_in_ladder_order(store_id):
    people = CHART.ladder(store_id)
    assert len(people) == len(LADDER) == 5
    assert all(isinstance(p, Staff) for p in people)
    positions = [LADDER.index(p.role) for p in people]
    # Rung i is held by someone of role LADDER[i], or (a missing rung) by someone higher.
    assert all(position >= rung for rung, position in enumerate(positions))
    assert positions == sorted(positions)
    assert people[-1] == CHART.general_manager


def test_a_full_store_has_one_person_per_role():
    assert ids(CHART.ladder("SH-XH-001")) == ["sh-xh-s1", "sh-xh-sv", "sh-xh-mg", "rm-east", "gm-001"]
    assert [p.role for p in CHART.ladder("SH-XH-001")] == list(LADDER)
    assert ids(CHART.ladder("HZ-XH-002")) == ["hz-xh-s1", "hz-xh-sv", "hz-xh-mg", "rm-east", "gm-001"]


def test_a_missing_supervisor_falls_back_to_the_store_manager():
    people = CHART.ladder("GZ-TH-003")
    assert ids(people) == ["gz-th-s1", "gz-th-mg", "gz-th-mg", "rm-south", "gm-001"]
    assert people[1].role == "store_manager"


def test_the_first_staff_member_of_a_role_holds_the_rung():
    # SH-XH-001 has two store_staff; the one listed first is rung 0.
    assert CHART.ladder("SH-XH-001")[0].name == "王小雨"


def test_ladder_of_an_unknown_store_raises():
    with pytest.raises(KeyError):
        CHART.ladder("BJ-CY-999")


def test_a_region_without_manager_falls_back_to_customer_service():
    doc = minimal(customer_service={"staff_id": "cs", "name": "客服"})
    del doc["regions"][0]["regional_manager"]
    people = org.parse(doc).ladder("S1")
    assert ids(people) == ["s1", "m1", "m1", "cs", "gm"]
    assert people[3].role == "customer_service"


def test_without_customer_service_either_the_general_manager_steps_in():
    doc = minimal()
    doc["regions"] = []
    assert ids(org.parse(doc).ladder("S1")) == ["s1", "m1", "m1", "gm", "gm"]


def test_a_store_without_staff_starts_at_the_regional_manager():
    doc = minimal()
    doc["stores"][0]["staff"] = []
    assert ids(org.parse(doc).ladder("S1")) == ["rm", "rm", "rm", "rm", "gm"]


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
    ("GZ-TH-003", "cs-001"),     # none named: customer service
])
def test_revisit_owner(store_id, owner):
    assert CHART.revisit_owner(store_id).staff_id == owner


def test_revisit_owner_naming_nobody_on_staff_falls_back_to_customer_service():
    doc = minimal(customer_service={"staff_id": "cs", "name": "客服"})
    doc["stores"][0]["revisit_owner"] = "left-the-company"
    assert org.parse(doc).revisit_owner("S1").staff_id == "cs"


def test_without_customer_service_the_store_manager_revisits():
    assert org.parse(minimal()).revisit_owner("S1").staff_id == "m1"


def test_every_store_has_a_revisit_owner():
    doc = minimal()
    doc["stores"][0]["staff"] = [{"staff_id": "s1", "name": "甲", "role": "store_staff"},
                                 {"staff_id": "v1", "name": "丙", "role": "supervisor"}]
    assert org.parse(doc).revisit_owner("S1") is not None


# -- refusals -------------------------------------------------------------------------

def test_an_unknown_role_is_refused():
    doc = minimal()
    doc["stores"][0]["staff"].append({"staff_id": "x", "name": "收银", "role": "cashier"})
    with pytest.raises(ValueError, match=r"S1.*cashier"):
        org.parse(doc)


def test_customer_service_is_not_a_store_role():
    doc = minimal()
    doc["stores"][0]["staff"].append({"staff_id": "x", "name": "X", "role": "customer_service"})
    with pytest.raises(ValueError, match="unknown roles"):
        org.parse(doc)


def test_a_general_manager_is_required():
    doc = minimal()
    del doc["company"]["general_manager"]
    with pytest.raises(ValueError, match="general_manager"):
        org.parse(doc)
    with pytest.raises(ValueError, match="general_manager"):
        org.parse({})


def test_company_people_get_their_company_role_whatever_the_file_says():
    doc = minimal(customer_service={"staff_id": "cs", "name": "客服", "role": "store_staff"})
    chart = org.parse(doc)
    assert chart.customer_service.role == "customer_service"
    assert chart.general_manager.role == "general_manager"
    assert chart.regional_managers["east"].role == "regional_manager"


def test_staff_as_dict():
    assert CHART.ladder("GZ-TH-003")[0].as_dict() == {
        "staff_id": "gz-th-s1", "name": "何芳", "role": "store_staff",
        "email": "he.fang@yueyan.example"}
    assert Staff("x", "无邮箱", "store_staff").as_dict()["email"] is None


def test_first_with_role():
    store = CHART.store("GZ-TH-003")
    assert store.first_with_role("store_manager").staff_id == "gz-th-mg"
    assert store.first_with_role("supervisor") is None
