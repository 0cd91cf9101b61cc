"""Authentication for every service, with no call to another service per request.

- Staff tokens are verified against the public keys (AUTH_PUBLIC_KEYS_FILE); the person
  must still be active in this service's copy of the organisation, and their role and
  unit are read from it, so a deactivation or a role change counts at once.
- Integration API keys are looked up in this service's `integrations` collection (routing
  owns it; intake keeps a copy from `integration_changed`); elsewhere there is none and a
  key is refused.
- The organisation copy (`org` collection, one snapshot document) is seeded from the
  YAML seed when empty, replaced by newer `org_changed` snapshots, and cached in memory,
  re-read only when its version moved (checked at most every ORG_REFRESH seconds).
"""
import logging
import time

from nameko.extensions import DependencyProvider, SharedExtension
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from closeloop_shared import org, tokens
from closeloop_shared.access import Principal
from closeloop_shared.clock import utcnow
from closeloop_shared.config import AUTH_PUBLIC_KEYS_FILE, ORG_SEED_PATH, setting
from closeloop_shared.mongo import connect_service_db, migrate_indexes

log = logging.getLogger(__name__)
ORG_REFRESH_SECONDS = 1.0
SNAPSHOT_ID = "current"


class OrgStore:
    """A service's `org` collection: one snapshot document of the organisation."""

    def __init__(self, db):
        self.collection = db["org"]

    def load(self):
        return self.collection.find_one({"_id": SNAPSHOT_ID}, {"outbox": 0})

    def version(self):
        found = self.collection.find_one({"_id": SNAPSHOT_ID}, {"version": 1})
        return None if found is None else found["version"]

    def seed(self, organisation):
        """Store the seed unless an organisation is already there."""
        try:
            self.collection.insert_one({"_id": SNAPSHOT_ID, **organisation.to_snapshot(),
                                        "outbox": [], "outbox_pending": False, "updated_at": utcnow()})
        except DuplicateKeyError:
            pass

    def apply(self, snapshot):
        """Keep a copy of a newer snapshot (org_changed may arrive late or twice)."""
        try:
            return self.collection.update_one(
                {"_id": SNAPSHOT_ID, "version": {"$lt": snapshot["version"]}},
                {"$set": {**snapshot, "updated_at": utcnow()}}, upsert=True).modified_count > 0
        except DuplicateKeyError:  # ours is newer or the same: nothing to do
            return False


class IntegrationStore:
    """`integrations`: one document per client with its keys (digests only)."""

    def __init__(self, db):
        self.collection = db["integrations"]

    @staticmethod
    def ensure_indexes(db):
        db["integrations"].create_index([("keys.key_id", ASCENDING)])
        db["integrations"].create_index([("bus_user", ASCENDING)])

    def by_key_id(self, key_id):
        return self.collection.find_one({"keys.key_id": key_id})

    def by_bus_user(self, user):
        return self.collection.find_one({"bus_user": user, "active": True})

    def apply(self, client):
        """Keep a copy of a newer version of a client (from integration_changed)."""
        try:
            return self.collection.update_one(
                {"_id": client["client_id"], "version": {"$lt": client["version"]}},
                {"$set": client}, upsert=True).modified_count > 0
        except DuplicateKeyError:
            return False


def integration_principal(client, presented, now):
    """The principal of a presented API key, or InvalidCredential."""
    key = next((k for k in client.get("keys", []) if k["key_id"] == presented.key_id), None)
    if key is None or not client.get("active", True) or key.get("revoked_at") \
            or tokens.is_expired(key.get("expires_at"), now) \
            or not tokens.api_key_matches(presented, key["digest"]):
        raise tokens.InvalidCredential("unknown, revoked or expired API key")
    return Principal.for_integration(client)


class Identity(SharedExtension):
    """One per container: the key ring, the organisation copy and the integrations,
    shared by every HTTP entrypoint (to authenticate) and the Organisation provider."""

    def setup(self):
        config = self.container.config
        self.client, self.db = connect_service_db(config, self.container.service_name)
        self.org_store = OrgStore(self.db)
        self.integrations = IntegrationStore(self.db)
        migrate_indexes(self.db, "IntegrationStore", IntegrationStore.ensure_indexes)
        self.org_store.seed(org.load(setting(config, ORG_SEED_PATH)))
        keys_file = setting(config, AUTH_PUBLIC_KEYS_FILE)
        self.key_ring = tokens.KeyRing.from_file(keys_file) if keys_file else None
        if self.key_ring is None:
            log.warning("AUTH_PUBLIC_KEYS_FILE is not set: no staff token will be accepted")
        self._organisation, self._checked_at = None, 0.0

    def stop(self):
        self.client.close()

    def kill(self):
        self.client.close()

    def organisation(self):
        if self._organisation is None or time.monotonic() - self._checked_at > ORG_REFRESH_SECONDS:
            if self._organisation is None or self.org_store.version() != self._organisation.version:
                self._organisation = org.Organisation.from_snapshot(self.org_store.load())
            self._checked_at = time.monotonic()
        return self._organisation

    def refresh(self):
        """Forget the cache: the next look sees the stored snapshot (after a write)."""
        self._organisation = None

    def authenticate(self, credential, now):
        """The principal for a bearer credential, or tokens.InvalidCredential."""
        if tokens.looks_like_api_key(credential):
            presented = tokens.parse_api_key(credential)
            client = self.integrations.by_key_id(presented.key_id)
            if client is None:
                raise tokens.InvalidCredential("unknown API key")
            return integration_principal(client, presented, now)
        if self.key_ring is None:
            raise tokens.InvalidCredential("this service accepts no staff tokens")
        claims = self.key_ring.verify(credential, now)
        organisation = self.organisation()
        person = organisation.staff.get(claims["sub"])
        if person is None or not person.active:
            raise tokens.InvalidCredential("this staff member is not active")
        return Principal.for_staff(person, organisation.brand_of(person))


class CurrentOrganisation(DependencyProvider):
    """The organisation as this service knows it now (closeloop_shared.org.Organisation),
    for a worker."""

    identity = Identity()

    def get_dependency(self, worker_ctx):
        return self.identity.organisation()
