"""Integration clients (POS, CRM, WeChat front end, booking system) and their API keys.
Pure: no nameko, no pymongo.

A client belongs to one brand (optionally limited to some of its stores) and holds the
permissions it was issued with. It may have two active keys at once, so a key is
rotated without downtime: issue the new one, switch the integration, revoke the old."""
from datetime import timedelta

from closeloop_shared import tokens
from closeloop_shared.access import INTEGRATION_PERMISSIONS
from closeloop_shared.contract import Permission
from services.routing.organisation import OrgRefused

MAX_ACTIVE_KEYS = 2
DEFAULT_KEY_LIFETIME = timedelta(days=365)


def new_client(organisation, client_id, name, brand_id, store_ids, permissions, bus_user, now):
    if brand_id not in organisation.brands:
        raise OrgRefused(422, "unknown_brand", f"no brand {brand_id!r}", "brand_id")
    outside = sorted(set(store_ids) - organisation.stores_of_brand(brand_id))
    if outside:
        raise OrgRefused(422, "validation_failed", f"stores not in brand {brand_id}: {outside}",
                         "store_ids")
    wanted = {Permission(p) for p in permissions}
    if not wanted or wanted - INTEGRATION_PERMISSIONS:
        raise OrgRefused(422, "validation_failed",
                         "permissions must be some of " + ", ".join(sorted(p.value for p in INTEGRATION_PERMISSIONS)),
                         "permissions")
    return {"_id": client_id, "client_id": client_id, "name": name, "brand_id": brand_id,
            "store_ids": sorted(store_ids), "permissions": sorted(p.value for p in wanted),
            "bus_user": bus_user, "active": True, "keys": [], "version": 1, "created_at": now}


def active_keys(client, now):
    return [k for k in client["keys"]
            if not k.get("revoked_at") and not tokens.is_expired(k.get("expires_at"), now)]


def issue_key(client, now, lifetime=DEFAULT_KEY_LIFETIME):
    """(the client's new keys list, the ApiKey to show once)."""
    if not client["active"]:
        raise OrgRefused(409, "client_inactive", "this integration is deactivated")
    if len(active_keys(client, now)) >= MAX_ACTIVE_KEYS:
        raise OrgRefused(409, "too_many_keys",
                         f"{MAX_ACTIVE_KEYS} keys are active: revoke one before issuing another")
    key = tokens.new_api_key()
    record = {"key_id": key.key_id, "digest": key.digest, "created_at": now,
              "expires_at": now + lifetime, "revoked_at": None}
    return [*client["keys"], record], key


def revoke_key(client, key_id, now):
    if not any(k["key_id"] == key_id for k in client["keys"]):
        raise OrgRefused(404, "key_not_found", f"no key {key_id} for {client['client_id']}")
    return [dict(k, revoked_at=k.get("revoked_at") or now) if k["key_id"] == key_id else k
            for k in client["keys"]]


def view(client, now):
    """What admins see: never a digest."""
    return {**{k: v for k, v in client.items() if k not in ("_id", "keys", "outbox", "outbox_pending")},
            "keys": [{"key_id": k["key_id"], "created_at": k["created_at"],
                      "expires_at": k.get("expires_at"), "revoked_at": k.get("revoked_at"),
                      "active": k in active_keys(client, now)} for k in client["keys"]]}


def changed_event(client):
    """The integration_changed payload: the client as the services that check its keys
    keep it."""
    return {k: client[k] for k in ("client_id", "name", "brand_id", "store_ids", "permissions",
                                   "bus_user", "active", "keys", "version")}
