"""routing's identity use cases: the organisation, logins and integration keys. Plain
functions over repositories; each returns what it wrote and the events it put in the
written document's outbox (for the caller to publish)."""
from datetime import timedelta

from closeloop_shared import events as ev
from closeloop_shared.events import new_event
from services.routing import accounts, integrations


class ConcurrentChange(Exception):
    pass


class LoginRefused(Exception):
    def __init__(self, retry_after=0.0):
        super().__init__("wrong staff id or password" if not retry_after else "account locked")
        self.retry_after = retry_after


def change_organisation(org_repository, organisation, change, now):
    """Apply `change` (organisation -> organisation, may raise OrgRefused) and store the
    result as the next version, announced by org_changed."""
    changed = change(organisation).with_version(organisation.version + 1)
    snapshot = changed.to_snapshot()
    event = new_event(ev.ORG_CHANGED, snapshot)
    if not org_repository.replace(organisation.version, snapshot, event, now):
        raise ConcurrentChange("the organisation changed meanwhile; retry")
    return changed, [event]


def login(account_repository, organisation, signer, staff_id, password, now, ttl_seconds):
    person = organisation.staff.get(staff_id)
    account = account_repository.get(staff_id) if person is not None and person.active else None
    verdict = accounts.check_login(account, password, now)
    if account is not None:
        account_repository.record(staff_id, verdict.changes)
    if not verdict.ok:
        raise LoginRefused(verdict.retry_after)
    ttl = timedelta(seconds=ttl_seconds)
    token = signer.sign({"sub": person.staff_id, "name": person.name, "role": person.role.value},
                        now, ttl)
    return {"token": token, "token_type": "Bearer", "expires_at": now + ttl,
            "staff": {"staff_id": person.staff_id, "name": person.name, "role": person.role.value}}


def set_password(account_repository, organisation, staff_id, password, now):
    """Raises KeyError for an unknown or inactive person, ValueError for a weak password."""
    person = organisation.staff.get(staff_id)
    if person is None or not person.active:
        raise KeyError(staff_id)
    account_repository.set_password(staff_id, accounts.hash_password(password), now)


def create_client(repository, organisation, spec, now):
    client = integrations.new_client(organisation, spec["client_id"], spec["name"], spec["brand_id"],
                                     spec.get("store_ids") or [], spec["permissions"],
                                     spec.get("bus_user"), now)
    event = new_event(ev.INTEGRATION_CHANGED, integrations.changed_event(client))
    if not repository.insert(client, event, now):
        raise integrations.OrgRefused(409, "already_exists", f"client {spec['client_id']!r} exists",
                                      "client_id")
    return client, [event]


def _update_client(repository, client, changes, now):
    changes = dict(changes, version=client["version"] + 1)
    event = new_event(ev.INTEGRATION_CHANGED, integrations.changed_event({**client, **changes}))
    updated = repository.update(client, changes, event, now)
    if updated is None:
        raise ConcurrentChange("the integration changed meanwhile; retry")
    return updated, [event]


def _client(repository, client_id):
    client = repository.get(client_id)
    if client is None:
        raise integrations.OrgRefused(404, "client_not_found", f"no integration {client_id}")
    return client


def issue_key(repository, client_id, now):
    """(client, the key to show once, events)."""
    client = _client(repository, client_id)
    keys, key = integrations.issue_key(client, now)
    updated, events = _update_client(repository, client, {"keys": keys}, now)
    return updated, key, events


def revoke_key(repository, client_id, key_id, now):
    client = _client(repository, client_id)
    return _update_client(repository, client, {"keys": integrations.revoke_key(client, key_id, now)}, now)
