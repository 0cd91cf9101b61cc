"""Managing the organisation: each change is checked against the whole organisation
and yields the next one (or an OrgRefused saying which field is at fault). Pure: no
nameko, no pymongo; routing's flows store the result and announce it (org_changed)."""
from dataclasses import replace

from closeloop_shared.contract import Role, StoreStatus
from closeloop_shared.org import BRAND_ROLES, REGION_ROLES, STORE_ROLES, Brand, Region, Staff, Store


class OrgRefused(Exception):
    """status 404 (unknown object), 409 (conflicts with the organisation) or 422."""

    def __init__(self, status, code, message, field=None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _with(organisation, **tables):
    return replace(organisation, **{name: {**getattr(organisation, name), **items}
                                    for name, items in tables.items()})


def _new_id(table, key, value, what):
    if value in table:
        raise OrgRefused(409, "already_exists", f"{what} {value!r} already exists", key)


def _known(table, key, value, what, status=422):
    if value not in table:
        code = f"unknown_{what}" if status == 422 else f"{what}_not_found"
        raise OrgRefused(status, code, f"no {what} {value!r}", key)
    return table[value]


def add_brand(organisation, brand_id, name):
    _new_id(organisation.brands, "brand_id", brand_id, "brand")
    return _with(organisation, brands={brand_id: Brand(brand_id, name)})


def add_region(organisation, region_id, name, brand_id):
    _new_id(organisation.regions, "region_id", region_id, "region")
    _known(organisation.brands, "brand_id", brand_id, "brand")
    return _with(organisation, regions={region_id: Region(region_id, name, brand_id)})


def add_store(organisation, store_id, name, region_id, timezone):
    """A new store starts closed: it opens (takes feedback) once it has a manager."""
    _new_id(organisation.stores, "store_id", store_id, "store")
    _known(organisation.regions, "region_id", region_id, "region")
    store = Store(store_id, name, region_id, timezone, StoreStatus.CLOSED)
    return _with(organisation, stores={store_id: store})


def update_store(organisation, store_id, changes):
    """changes: name, timezone, status, revisit_owner_id."""
    store = _known(organisation.stores, "store_id", store_id, "store", status=404)
    if "status" in changes:
        changes = dict(changes, status=StoreStatus(changes["status"]))
    owner_id = changes.get("revisit_owner_id")
    if owner_id is not None:
        owner = organisation.staff.get(owner_id)
        if owner is None or not owner.active or owner.store_id != store_id:
            raise OrgRefused(422, "validation_failed",
                             "the revisit owner must be an active member of this store",
                             "revisit_owner_id")
    updated = replace(store, **changes)
    result = _with(organisation, stores={store_id: updated})
    if updated.is_open:
        _check_can_open(result, store_id)
    return result


def _check_can_open(organisation, store_id):
    if organisation.first_active(Role.STORE_MANAGER, store_id=store_id) is None:
        raise OrgRefused(409, "store_needs_manager",
                         f"store {store_id} has no active store manager; it cannot take feedback",
                         "status")
    brand_id = organisation.brand_of_store(store_id)
    if organisation.first_active(Role.GENERAL_MANAGER, brand_id=brand_id) is None:
        raise OrgRefused(409, "brand_needs_general_manager",
                         f"brand {brand_id} has no active general manager (top of the ladder)",
                         "status")


def _unit_for(organisation, role, unit_id):
    """The unit fields a staff member of `role` needs, checked."""
    if role is Role.ADMIN:
        if unit_id:
            raise OrgRefused(422, "validation_failed", "an admin belongs to no unit", "unit_id")
        return {}
    if role in STORE_ROLES:
        _known(organisation.stores, "unit_id", unit_id, "store")
        return {"store_id": unit_id}
    if role in REGION_ROLES:
        _known(organisation.regions, "unit_id", unit_id, "region")
        return {"region_id": unit_id}
    assert role in BRAND_ROLES
    _known(organisation.brands, "unit_id", unit_id, "brand")
    return {"brand_id": unit_id}


def add_staff(organisation, staff_id, name, role, unit_id, email):
    """`unit_id`: a store for store roles, a region for a regional manager, a brand for
    customer service and the general manager, none for an admin."""
    _new_id(organisation.staff, "staff_id", staff_id, "staff member")
    role = Role(role)
    person = Staff(staff_id, name, role, email, **_unit_for(organisation, role, unit_id))
    return _with(organisation, staff={staff_id: person})


def update_staff(organisation, staff_id, changes):
    """changes: name, email, and role with unit_id (a move to another store or role)."""
    person = _known(organisation.staff, "staff_id", staff_id, "staff", status=404)
    if not person.active:
        raise OrgRefused(409, "staff_inactive", f"{staff_id} is deactivated")
    fields = {k: v for k, v in changes.items() if k in ("name", "email")}
    if "role" in changes or "unit_id" in changes:
        role = Role(changes.get("role", person.role))
        unit = _unit_for(organisation, role, changes.get("unit_id"))
        fields.update({"role": role, "store_id": None, "region_id": None, "brand_id": None, **unit})
    result = _with(organisation, staff={staff_id: replace(person, **fields)})
    _check_stores_still_run(organisation, result, person)
    return _without_stale_revisit_owners(result)


def deactivate_staff(organisation, staff_id):
    """The person keeps their history (and their id) but can no longer log in or be
    assigned; routing hands their open cases to the next person on the ladder."""
    person = _known(organisation.staff, "staff_id", staff_id, "staff", status=404)
    if not person.active:
        raise OrgRefused(409, "staff_inactive", f"{staff_id} is already deactivated")
    result = _with(organisation, staff={staff_id: replace(person, active=False)})
    _check_stores_still_run(organisation, result, person)
    return _without_stale_revisit_owners(result)


def _without_stale_revisit_owners(organisation):
    """A store's revisit owner must be an active member of it: one who left (or moved,
    or changed role to one outside the store) stops owning its revisits."""
    stale = {s.store_id: replace(s, revisit_owner_id=None) for s in organisation.stores.values()
             if s.revisit_owner_id and not _member_of(organisation.staff.get(s.revisit_owner_id), s.store_id)}
    return _with(organisation, stores=stale) if stale else organisation


def _member_of(person, store_id):
    return person is not None and person.active and person.store_id == store_id


def _check_stores_still_run(before, after, person):
    """An open store keeps a manager; a brand with stores (open or closed: a closed
    store's open cases still climb its ladder) keeps a general manager."""
    if person.store_id and after.stores[person.store_id].is_open:
        _check_can_open(after, person.store_id)
    if person.role is Role.GENERAL_MANAGER and before.stores_of_brand(person.brand_id) \
            and after.first_active(Role.GENERAL_MANAGER, brand_id=person.brand_id) is None:
        raise OrgRefused(409, "brand_needs_general_manager",
                         f"brand {person.brand_id} has stores and needs an active general manager "
                         "(top of the ladder)", "staff_id")


def left_post(before, after, staff_id):
    """Whether a change took the person off the post their cases were assigned to
    (deactivated, or another role or unit): then those cases pass to someone else."""
    old, new = before.staff[staff_id], after.staff[staff_id]
    return not new.active or (old.role, old.store_id, old.region_id, old.brand_id) != \
        (new.role, new.store_id, new.region_id, new.brand_id)


def public_view(organisation, scope):
    """What GET /v1/org shows a principal: the units and people of its scope."""
    stores = [s for s in organisation.stores.values() if scope.allows(s.store_id)]
    regions = {s.region_id for s in stores}
    brands = {organisation.regions[r].brand_id for r in regions}
    everything = scope.stores is None
    snapshot = organisation.to_snapshot()
    return {
        "version": organisation.version,
        "brands": [b for b in snapshot["brands"] if everything or b["brand_id"] in brands],
        "regions": [r for r in snapshot["regions"] if everything or r["region_id"] in regions],
        "stores": [s.to_record() for s in stores],
        "staff": [p.to_record() for p in organisation.staff.values() if everything
                  or p.store_id in {s.store_id for s in stores} or p.region_id in regions
                  or p.brand_id in brands],
    }
