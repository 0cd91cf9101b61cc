"""Who may do what to which objects, and which personal data they see.

- Function level: each role has a set of permissions (ROLE_PERMISSIONS, the table in
  the README); an integration key has the permissions it was issued with, out of
  INTEGRATION_PERMISSIONS. Every HTTP route declares the permission it needs
  (closeloop_shared.http: `access=`).
- Object level: a principal's Scope is the set of stores whose objects it may see and
  act on, resolved from the organisation: its store for store roles, its region's
  stores for a regional manager, its brand's for customer service and the general
  manager, every store for an admin; an integration its brand's (or the stores it was
  limited to), and of cases only those it submitted itself.
- Personal data: phones are masked and e-mails hidden unless the role needs them
  (Permission.PERSONAL_DATA); health data (allergies, pregnancy, postpartum status)
  only for the store's own roles (Permission.HEALTH_DATA).

Pure: no nameko, no pymongo.
"""
from dataclasses import dataclass

from closeloop_shared.contract import Permission as P
from closeloop_shared.contract import PrincipalKind, Role

_STORE_STAFF = frozenset({
    P.FEEDBACK_SUBMIT, P.FEEDBACK_READ, P.CASE_READ, P.CASE_RESPOND, P.CASE_RESOLVE,
    P.CASE_ACKNOWLEDGE, P.REVISIT_READ, P.REVISIT_RECORD, P.PERSONAL_DATA, P.ORG_READ,
    # health data: the store's own people treat and call the customer; managers above
    # the store, customer service and operations never need a customer's pregnancy or allergies
    P.HEALTH_DATA})
_SUPERVISOR = _STORE_STAFF | {P.CASE_REOPEN, P.CASE_RECLASSIFY, P.CASE_ROOT_CAUSE, P.CASE_CLOSE,
                              P.CASE_MERGE, P.DELIVERY_READ, P.REPORT_READ, P.CASE_REASSIGN,
                              P.ROSTER_MANAGE}
_STORE_MANAGER = _SUPERVISOR | {P.CASE_REPORT, P.CASE_REFUND, P.CASE_CLOSE_REFERRAL,
                                P.CASE_REMEDY_APPROVE, P.CASE_ARCHIVE, P.CALENDAR_MANAGE,
                                P.CUSTOMER_MANAGE}
_MANAGEMENT = frozenset({
    P.FEEDBACK_READ, P.CASE_READ, P.CASE_RESPOND, P.CASE_REPORT, P.CASE_RESOLVE, P.CASE_REFUND,
    P.CASE_CLOSE_REFERRAL, P.CASE_REOPEN, P.CASE_RECLASSIFY, P.REVISIT_READ, P.DELIVERY_READ,
    P.REPORT_READ, P.ORG_READ, P.CASE_ACKNOWLEDGE, P.CASE_REMEDY_APPROVE, P.CASE_ROOT_CAUSE,
    P.CASE_CLOSE, P.CASE_MERGE, P.CASE_ARCHIVE, P.CASE_REASSIGN})

ROLE_PERMISSIONS = {
    Role.STORE_STAFF: _STORE_STAFF,
    Role.SUPERVISOR: _SUPERVISOR,
    Role.STORE_MANAGER: _STORE_MANAGER,
    # Managers above the store steer and approve; the store and customer service call
    # the customer, so managers see contact details masked.
    Role.REGIONAL_MANAGER: _MANAGEMENT | {P.ROSTER_MANAGE, P.CALENDAR_MANAGE},
    # SLA policies, with the admin; signs off referral reports (seed 004)
    Role.GENERAL_MANAGER: _MANAGEMENT | {P.SLA_MANAGE, P.CASE_REPORT_SIGN_OFF, P.ROSTER_MANAGE,
                                         P.CALENDAR_MANAGE, P.CALENDAR_ADMIN},
    Role.CUSTOMER_SERVICE: _MANAGEMENT | {P.FEEDBACK_SUBMIT, P.REVISIT_RECORD, P.PERSONAL_DATA,
                                          P.CUSTOMER_MANAGE},
    # Operations run the system, not the complaints: they read (masked), never act.
    Role.ADMIN: frozenset({P.ORG_READ, P.ORG_MANAGE, P.KEYS_MANAGE, P.AUDIT_READ, P.SLA_MANAGE, P.CASE_READ,
                           P.ROSTER_MANAGE, P.CALENDAR_MANAGE, P.CALENDAR_ADMIN,
                           P.FEEDBACK_READ, P.REVISIT_READ, P.DELIVERY_READ, P.REPORT_READ}),
}

# What an integration key may be issued with. CASE_READ lets it read the cases it
# submitted itself, nothing else.
INTEGRATION_PERMISSIONS = frozenset({P.FEEDBACK_SUBMIT, P.FEEDBACK_READ, P.CASE_READ,
                                     P.BOOKING_PUBLISH})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a staff member (from a signed token, role and unit as
    the organisation has them now) or an integration (from an API key)."""
    subject: str               # staff id, or the integration's client id
    kind: PrincipalKind
    name: str
    permissions: frozenset
    role: Role | None = None
    store_id: str | None = None
    region_id: str | None = None
    brand_id: str | None = None
    store_ids: tuple = ()      # an integration limited to some of its brand's stores

    def can(self, permission):
        return permission in self.permissions

    @property
    def actor(self):
        """How the timeline names who did it."""
        return self.subject if self.kind is PrincipalKind.STAFF else f"integration:{self.subject}"

    @classmethod
    def for_staff(cls, person, brand_id):
        return cls(subject=person.staff_id, kind=PrincipalKind.STAFF, name=person.name,
                   permissions=ROLE_PERMISSIONS[person.role], role=person.role,
                   store_id=person.store_id, region_id=person.region_id, brand_id=brand_id)

    @classmethod
    def for_integration(cls, client):
        """client: {client_id, name, brand_id, store_ids, permissions}."""
        return cls(subject=client["client_id"], kind=PrincipalKind.INTEGRATION,
                   name=client["name"],
                   permissions=frozenset(P(p) for p in client["permissions"]) & INTEGRATION_PERMISSIONS,
                   brand_id=client["brand_id"], store_ids=tuple(client.get("store_ids") or ()))


@dataclass(frozen=True)
class Scope:
    """The stores whose objects a principal may see (None: every store), and for an
    integration the client whose submissions alone it may read."""
    stores: frozenset | None
    client_id: str | None = None

    def covers(self, store_id):
        """Whether the principal works for this store (may submit or act for it)."""
        return self.stores is None or store_id in self.stores

    def allows(self, store_id, submitted_by=None):
        """Whether the principal may see an object of this store handed in by
        `submitted_by` (integrations see only what they submitted)."""
        if not self.covers(store_id):
            return False
        return self.client_id is None or (submitted_by or {}).get("client_id") == self.client_id


def scope_of(principal, organisation):
    if principal.kind is PrincipalKind.INTEGRATION:
        stores = organisation.stores_of_brand(principal.brand_id)
        if principal.store_ids:
            stores &= frozenset(principal.store_ids)
        return Scope(stores, client_id=principal.subject)
    if principal.role is Role.ADMIN:
        return Scope(None)
    if principal.store_id:
        return Scope(frozenset({principal.store_id}))
    if principal.region_id:
        return Scope(organisation.stores_of_region(principal.region_id))
    return Scope(organisation.stores_of_brand(principal.brand_id))


# -- personal data ------------------------------------------------------------------

def mask_phone(phone):
    """+8613812345678 -> 138****5678, +862161234567 -> ****4567: enough to recognise,
    not to call."""
    if not phone:
        return phone
    digits = phone[3:] if phone.startswith("+86") else phone.lstrip("+")
    if len(digits) >= 11:  # a mainland mobile, or longer: the usual 3 + 4
        return f"{digits[:3]}****{digits[-4:]}"
    return f"****{digits[-4:]}" if len(digits) >= 8 else "****"  # landlines: only the end


def contact_view(contact, principal):
    """A customer's contact as this principal may see it: in full for roles that call
    customers, else the phone masked and the e-mail hidden."""
    if contact is None or principal.can(P.PERSONAL_DATA):
        return contact
    return {**contact, "phone": mask_phone(contact.get("phone")), "email": None}


def sees_personal_data(principal):
    return principal.can(P.PERSONAL_DATA)
