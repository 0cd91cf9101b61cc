"""Whom reporting's weekly digest is for (services/reporting/flows.recipients): a region's
regional managers (the brand's service department where it has none), a brand's general
manager and service department; only a region's digest names a store (notify's WeCom group)."""
from closeloop_shared.contract import Role
from closeloop_shared.org import Brand, Organisation, Region, Staff, Store
from services.reporting.flows import recipients

ORG = Organisation(
    brands={"meili": Brand("meili", "美丽")},
    regions={"east": Region("east", "华东", "meili"), "south": Region("south", "华南", "meili")},
    stores={"SH-2": Store("SH-2", "上海二店", "east"), "SH-1": Store("SH-1", "上海一店", "east"),
            "GZ-1": Store("GZ-1", "广州店", "south")},
    staff={person.staff_id: person for person in (
        Staff("rm-east", "陈立华", Role.REGIONAL_MANAGER, "rm@meili.example", region_id="east"),
        Staff("rm-old", "离职", Role.REGIONAL_MANAGER, "old@meili.example", region_id="east", active=False),
        Staff("gm", "周慧敏", Role.GENERAL_MANAGER, "gm@meili.example", brand_id="meili"),
        Staff("cs", "林静", Role.CUSTOMER_SERVICE, None, brand_id="meili"),
        Staff("sh-mg", "张丽", Role.STORE_MANAGER, "zl@meili.example", store_id="SH-1"))})


def test_a_regions_digest_is_for_its_active_regional_managers_in_its_first_store():
    assert recipients(ORG, "region", "east") == {
        "unit_name": "华东", "store_id": "SH-1",
        "managers": [{"staff_id": "rm-east", "name": "陈立华", "role": "regional_manager",
                      "email": "rm@meili.example"}]}


def test_a_region_without_a_regional_manager_falls_to_the_brands_service_department():
    assert [m["staff_id"] for m in recipients(ORG, "region", "south")["managers"]] == ["cs"]


def test_a_brands_digest_is_for_its_general_manager_and_service_department_and_names_no_store():
    found = recipients(ORG, "brand", "meili")
    assert [m["staff_id"] for m in found["managers"]] == ["gm", "cs"]
    assert (found["unit_name"], found["store_id"]) == ("美丽", None)


def test_a_unit_the_organisation_no_longer_has_is_for_nobody():
    assert recipients(ORG, "region", "gone") == {"unit_name": "gone", "store_id": None, "managers": []}
