"""The chain's org chart: stores, regions and staff with roles, read from the seed file
shipped in deploy/seeds/. Reference data: intake checks store ids against it, routing
assigns and escalates along it. Pure Python, no framework."""
from dataclasses import dataclass, field

import yaml

# The escalation ladder, bottom to top (the order of the store's complaint procedure).
LADDER = ("store_staff", "supervisor", "store_manager", "regional_manager", "general_manager")


@dataclass(frozen=True)
class Staff:
    staff_id: str
    name: str
    role: str
    email: str | None = None

    def as_dict(self):
        return {"staff_id": self.staff_id, "name": self.name, "role": self.role,
                "email": self.email}


@dataclass(frozen=True)
class Store:
    store_id: str
    name: str
    region_id: str
    staff: tuple = ()
    revisit_owner_id: str | None = None

    def first_with_role(self, role):
        return next((s for s in self.staff if s.role == role), None)


@dataclass
class OrgChart:
    stores: dict = field(default_factory=dict)
    regional_managers: dict = field(default_factory=dict)  # region_id -> Staff
    customer_service: Staff | None = None
    general_manager: Staff | None = None

    def store(self, store_id):
        return self.stores.get(store_id)

    def ladder(self, store_id):
        """The people on each rung of LADDER for this store; a missing rung falls back
        to the next one up, so every case always has an owner."""
        store = self.stores[store_id]
        people = [
            store.first_with_role("store_staff"),
            store.first_with_role("supervisor"),
            store.first_with_role("store_manager"),
            self.regional_managers.get(store.region_id) or self.customer_service,
            self.general_manager,
        ]
        for rung in range(len(people) - 2, -1, -1):
            if people[rung] is None:
                people[rung] = people[rung + 1]
        return people

    def revisit_owner(self, store_id):
        store = self.stores[store_id]
        owner = next((s for s in store.staff if s.staff_id == store.revisit_owner_id), None)
        # The ladder always ends with the general manager, so someone always owns it.
        return owner or self.customer_service or self.ladder(store_id)[LADDER.index("store_manager")]


def _staff(data, role=None):
    return Staff(staff_id=data["staff_id"], name=data["name"], role=role or data["role"],
                 email=data.get("email"))


def parse(document):
    chart = OrgChart()
    company = document.get("company", {})
    if company.get("general_manager"):
        chart.general_manager = _staff(company["general_manager"], "general_manager")
    if company.get("customer_service"):
        chart.customer_service = _staff(company["customer_service"], "customer_service")
    for region in document.get("regions", []):
        if region.get("regional_manager"):
            chart.regional_managers[region["region_id"]] = _staff(
                region["regional_manager"], "regional_manager")
    for store in document.get("stores", []):
        staff = tuple(_staff(s) for s in store.get("staff", []))
        unknown = {s.role for s in staff} - set(LADDER)
        if unknown:
            raise ValueError(f"store {store['store_id']}: unknown roles {sorted(unknown)}")
        chart.stores[store["store_id"]] = Store(
            store_id=store["store_id"], name=store["name"], region_id=store["region_id"],
            staff=staff, revisit_owner_id=store.get("revisit_owner"))
    if chart.general_manager is None:
        raise ValueError("the org chart needs company.general_manager (top of the ladder)")
    return chart


def load(path):
    with open(path, encoding="utf-8") as handle:
        return parse(yaml.safe_load(handle))
