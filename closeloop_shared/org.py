"""The chain's organisation: brands -> regions -> stores -> staff, with roles.

Routing owns it and manages it over HTTP; every other service keeps its own copy from
the `org_changed` event (a full snapshot with a version), never reading routing's
collections. The YAML seed (deploy/seeds/org.yaml) only initialises an empty
organisation. The escalation ladder and every access scope are resolved from here.
Pure Python, no framework."""
from dataclasses import asdict, dataclass, field, replace

import yaml

from closeloop_shared.contract import Role, StoreStatus

# The escalation ladder, bottom to top (the order of the store's complaint procedure).
# The customer-service department stands in for a region without a regional manager.
LADDER = (Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER, Role.REGIONAL_MANAGER,
          Role.GENERAL_MANAGER)
STORE_ROLES = (Role.STORE_STAFF, Role.SUPERVISOR, Role.STORE_MANAGER)
REGION_ROLES = (Role.REGIONAL_MANAGER,)
BRAND_ROLES = (Role.CUSTOMER_SERVICE, Role.GENERAL_MANAGER)
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Staff:
    staff_id: str
    name: str
    role: Role
    email: str | None = None
    # Exactly one unit, by the role's level: a store role works in a store, a regional
    # manager in a region, customer service and the general manager in a brand; an
    # admin in none (the whole deployment).
    store_id: str | None = None
    region_id: str | None = None
    brand_id: str | None = None
    active: bool = True

    def as_dict(self):
        """The person as events carry them (assignee, revisit owner)."""
        return {"staff_id": self.staff_id, "name": self.name, "role": self.role.value,
                "email": self.email}

    def to_record(self):
        return {**asdict(self), "role": self.role.value}

    @classmethod
    def from_record(cls, record):
        return cls(**{**record, "role": Role(record["role"])})


@dataclass(frozen=True)
class Store:
    store_id: str
    name: str
    region_id: str
    timezone: str = DEFAULT_TIMEZONE
    status: StoreStatus = StoreStatus.OPEN
    revisit_owner_id: str | None = None

    @property
    def is_open(self):
        return self.status is StoreStatus.OPEN

    def to_record(self):
        return {**asdict(self), "status": self.status.value}

    @classmethod
    def from_record(cls, record):
        return cls(**{**record, "status": StoreStatus(record["status"])})


@dataclass(frozen=True)
class Region:
    region_id: str
    name: str
    brand_id: str


@dataclass(frozen=True)
class Brand:
    brand_id: str
    name: str


@dataclass(frozen=True)
class Organisation:
    brands: dict = field(default_factory=dict)    # brand_id -> Brand
    regions: dict = field(default_factory=dict)   # region_id -> Region
    stores: dict = field(default_factory=dict)    # store_id -> Store
    staff: dict = field(default_factory=dict)     # staff_id -> Staff
    version: int = 0

    # -- lookups ----------------------------------------------------------------------

    def store(self, store_id):
        return self.stores.get(store_id)

    def open_store(self, store_id):
        """The store if it exists and takes feedback, else None."""
        store = self.stores.get(store_id)
        return store if store is not None and store.is_open else None

    def brand_of_store(self, store_id):
        return self.regions[self.stores[store_id].region_id].brand_id

    def brand_of(self, person):
        if person.store_id:
            return self.brand_of_store(person.store_id)
        if person.region_id:
            return self.regions[person.region_id].brand_id
        return person.brand_id

    def stores_of_region(self, region_id):
        return frozenset(s.store_id for s in self.stores.values() if s.region_id == region_id)

    def stores_of_brand(self, brand_id):
        return frozenset(s.store_id for s in self.stores.values()
                         if self.regions[s.region_id].brand_id == brand_id)

    def active_staff(self):
        return (person for person in self.staff.values() if person.active)

    def first_active(self, role, **unit):
        """The first active person of `role` in the given unit (store_id=, region_id=
        or brand_id=), or None."""
        return next(iter(self.all_active(role, **unit)), None)

    def all_active(self, role, **unit):
        """Every active person of `role` in the given unit, in the organisation's order."""
        key, value = next(iter(unit.items()))
        return tuple(p for p in self.active_staff() if p.role is role and getattr(p, key) == value)

    # -- the ladder -------------------------------------------------------------------

    def ladder(self, store_id):
        """The people on each rung of LADDER for this store; a missing rung falls back
        to the next one up, so every case always has an owner."""
        store = self.stores[store_id]
        brand_id = self.brand_of_store(store_id)
        people = [
            self.first_active(Role.STORE_STAFF, store_id=store_id),
            self.first_active(Role.SUPERVISOR, store_id=store_id),
            self.first_active(Role.STORE_MANAGER, store_id=store_id),
            self.first_active(Role.REGIONAL_MANAGER, region_id=store.region_id)
            or self.first_active(Role.CUSTOMER_SERVICE, brand_id=brand_id),
            self.first_active(Role.GENERAL_MANAGER, brand_id=brand_id),
        ]
        if people[-1] is None:
            raise ValueError(f"brand {brand_id} has no active general manager (top of the ladder)")
        for rung in range(len(people) - 2, -1, -1):
            if people[rung] is None:
                people[rung] = people[rung + 1]
        return people

    def revisit_owner(self, store_id):
        store = self.stores[store_id]
        owner = self.staff.get(store.revisit_owner_id)
        if owner is not None and owner.active and owner.store_id == store_id:
            return owner
        brand_id = self.brand_of_store(store_id)
        return self.first_active(Role.CUSTOMER_SERVICE, brand_id=brand_id) \
            or self.ladder(store_id)[LADDER.index(Role.STORE_MANAGER)]

    # -- snapshots (the org_changed payload and every service's stored copy) -----------

    def to_snapshot(self):
        return {
            "version": self.version,
            "brands": [asdict(b) for b in self.brands.values()],
            "regions": [asdict(r) for r in self.regions.values()],
            "stores": [s.to_record() for s in self.stores.values()],
            "staff": [p.to_record() for p in self.staff.values()],
        }

    @classmethod
    def from_snapshot(cls, snapshot):
        return cls(
            brands={b["brand_id"]: Brand(**b) for b in snapshot["brands"]},
            regions={r["region_id"]: Region(**r) for r in snapshot["regions"]},
            stores={s["store_id"]: Store.from_record(s) for s in snapshot["stores"]},
            staff={p["staff_id"]: Staff.from_record(p) for p in snapshot["staff"]},
            version=snapshot["version"])

    def with_version(self, version):
        return replace(self, version=version)


def _person(data, role, **unit):
    return Staff(staff_id=data["staff_id"], name=data["name"], role=Role(role),
                 email=data.get("email"), **unit)


def parse(document):
    """The seed's nested form (brands > regions > stores > staff; admins at the top)."""
    brands, regions, stores, staff = {}, {}, {}, {}

    def add(person):
        if person.staff_id in staff:
            raise ValueError(f"duplicate staff id {person.staff_id!r}")
        staff[person.staff_id] = person

    def unique(table, unit_id, what):
        if unit_id in table:
            raise ValueError(f"duplicate {what} id {unit_id!r}")
        return unit_id

    for admin in document.get("admins", []):
        add(_person(admin, Role.ADMIN))
    for brand in document.get("brands", []):
        brand_id = unique(brands, brand["brand_id"], "brand")
        brands[brand_id] = Brand(brand_id, brand["name"])
        for person in brand.get("staff", []):
            if Role(person["role"]) not in BRAND_ROLES:
                raise ValueError(f"brand {brand_id}: {person['role']} is not a brand role")
            add(_person(person, person["role"], brand_id=brand_id))
        for region in brand.get("regions", []):
            region_id = unique(regions, region["region_id"], "region")
            regions[region_id] = Region(region_id, region["name"], brand_id)
            for person in region.get("staff", []):
                if Role(person["role"]) not in REGION_ROLES:
                    raise ValueError(f"region {region_id}: {person['role']} is not a region role")
                add(_person(person, person["role"], region_id=region_id))
            for store in region.get("stores", []):
                store_id = unique(stores, store["store_id"], "store")
                for person in store.get("staff", []):
                    if Role(person["role"]) not in STORE_ROLES:
                        raise ValueError(f"store {store_id}: {person['role']} is not a store role")
                    add(_person(person, person["role"], store_id=store_id))
                stores[store_id] = Store(
                    store_id=store_id, name=store["name"], region_id=region_id,
                    timezone=store.get("timezone", DEFAULT_TIMEZONE),
                    status=StoreStatus(store.get("status", StoreStatus.OPEN.value)),
                    revisit_owner_id=store.get("revisit_owner"))
    organisation = Organisation(brands, regions, stores, staff)
    for store_id in stores:
        organisation.ladder(store_id)  # every brand with a store has its general manager
    return organisation


def load(path):
    with open(path, encoding="utf-8") as handle:
        return parse(yaml.safe_load(handle))
