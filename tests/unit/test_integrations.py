"""services/routing/integrations.py: integration clients and their API keys; and how a
presented key is checked (closeloop_shared.auth.integration_principal)."""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from closeloop_shared import events as ev
from closeloop_shared import org, tokens
from closeloop_shared.access import INTEGRATION_PERMISSIONS, scope_of
from closeloop_shared.auth import integration_principal
from closeloop_shared.contract import Permission, PrincipalKind
from services.routing import identity_flows, integrations
from services.routing.organisation import OrgRefused
from tests.unit.fakes import FakeIntegrations

CHART = org.load(Path(__file__).resolve().parents[2] / "deploy" / "seeds" / "org.yaml")
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


def client(brand_id="yueyan", store_ids=(), permissions=("feedback:submit", "case:read"), bus_user=None):
    return integrations.new_client(CHART, "pos", "门店收银系统", brand_id, list(store_ids), list(permissions),
                                   bus_user, NOW)


def refusal(change, *args, **kwargs):
    with pytest.raises(OrgRefused) as refused:
        change(*args, **kwargs)
    return refused.value.status, refused.value.code, refused.value.field


def with_keys(record, *keys):
    return dict(record, keys=list(keys))


def issued(record, now=NOW, **kwargs):
    keys, key = integrations.issue_key(record, now, **kwargs)
    return with_keys(record, *keys), key


# -- new clients ----------------------------------------------------------------------------

def test_a_new_client():
    record = client(store_ids=["HZ-XH-002", "SH-XH-001"], permissions=["case:read", "feedback:submit",
                                                                       "case:read"], bus_user="pos-bus")
    assert record == {
        "_id": "pos", "client_id": "pos", "name": "门店收银系统", "brand_id": "yueyan",
        "store_ids": ["HZ-XH-002", "SH-XH-001"], "permissions": ["case:read", "feedback:submit"],
        "bus_user": "pos-bus", "active": True, "keys": [], "version": 1, "created_at": NOW}


def test_an_unknown_brand_is_refused():
    assert refusal(client, brand_id="nope") == (422, "unknown_brand", "brand_id")


@pytest.mark.parametrize("store_ids", [["BJ-CY-101"], ["SH-XH-001", "BJ-CY-101"], ["NOPE"]])
def test_stores_outside_the_brand_are_refused(store_ids):
    assert refusal(client, store_ids=store_ids) == (422, "validation_failed", "store_ids")


@pytest.mark.parametrize("permissions", [
    ["org:manage"], ["feedback:submit", "personal_data:read"], ["case:respond"], ["keys:manage"], [],
])
def test_permissions_outside_the_integration_set_are_refused(permissions):
    assert refusal(client, permissions=permissions) == (422, "validation_failed", "permissions")


def test_every_integration_permission_may_be_issued():
    record = client(permissions=[p.value for p in INTEGRATION_PERMISSIONS])
    assert set(record["permissions"]) == {p.value for p in INTEGRATION_PERMISSIONS}


def test_the_principal_of_a_client_has_its_brand_stores_and_permissions():
    record = client(store_ids=["SH-XH-001"])
    key_record, key = issued(record)
    principal = integration_principal(key_record, tokens.parse_api_key(key.presented), NOW)
    assert (principal.kind, principal.subject, principal.brand_id, principal.store_ids) == (
        PrincipalKind.INTEGRATION, "pos", "yueyan", ("SH-XH-001",))
    assert principal.permissions == {Permission.FEEDBACK_SUBMIT, Permission.CASE_READ}
    assert scope_of(principal, CHART).stores == {"SH-XH-001"}


# -- keys ----------------------------------------------------------------------------------------

def test_issue_key_stores_only_a_digest():
    record, key = issued(client())
    [stored] = record["keys"]
    assert stored == {"key_id": key.key_id, "digest": key.digest, "created_at": NOW,
                      "expires_at": NOW + integrations.DEFAULT_KEY_LIFETIME, "revoked_at": None}
    assert key.secret not in repr(record)
    assert tokens.api_key_matches(tokens.parse_api_key(key.presented), stored["digest"])


def test_up_to_two_active_keys_then_too_many_keys():
    record, first = issued(client())
    record, second = issued(record, NOW + timedelta(minutes=1))
    assert first.key_id != second.key_id
    assert len(integrations.active_keys(record, NOW + timedelta(minutes=2))) == 2
    assert refusal(integrations.issue_key, record, NOW + timedelta(minutes=2))[:2] == (409, "too_many_keys")


def test_rotation_revoke_the_old_key_then_issue_another():
    record, old = issued(client())
    record, new = issued(record)
    record = with_keys(record, *integrations.revoke_key(record, old.key_id, NOW + timedelta(days=1)))
    assert [k["key_id"] for k in integrations.active_keys(record, NOW + timedelta(days=1))] == [new.key_id]
    record, newest = issued(record, NOW + timedelta(days=2))
    assert len(record["keys"]) == 3
    assert {k["key_id"] for k in integrations.active_keys(record, NOW + timedelta(days=2))} == {
        new.key_id, newest.key_id}


def test_revoking_keeps_the_first_revocation_time():
    record, key = issued(client())
    once = with_keys(record, *integrations.revoke_key(record, key.key_id, NOW + timedelta(hours=1)))
    twice = integrations.revoke_key(once, key.key_id, NOW + timedelta(hours=5))
    assert twice[0]["revoked_at"] == NOW + timedelta(hours=1)


def test_revoking_an_unknown_key_is_404():
    record, _ = issued(client())
    assert refusal(integrations.revoke_key, record, "nope", NOW)[:2] == (404, "key_not_found")


def test_expired_keys_are_not_active_and_free_a_place():
    record, short = issued(client(), lifetime=timedelta(days=1))
    record, _ = issued(record)
    later = NOW + timedelta(days=1)
    assert short.key_id not in {k["key_id"] for k in integrations.active_keys(record, later)}
    assert short.key_id in {k["key_id"] for k in integrations.active_keys(record, later - timedelta(seconds=1))}
    record, _ = issued(record, later)   # the expired one no longer counts
    assert len(integrations.active_keys(record, later)) == 2


def test_an_inactive_client_gets_no_key():
    assert refusal(integrations.issue_key, dict(client(), active=False), NOW)[:2] == (409, "client_inactive")


# -- a presented key ------------------------------------------------------------------------------

def test_a_revoked_expired_or_wrong_key_is_refused():
    record, key = issued(client(), lifetime=timedelta(days=1))
    presented = tokens.parse_api_key(key.presented)
    assert integration_principal(record, presented, NOW).subject == "pos"
    with pytest.raises(tokens.InvalidCredential):
        integration_principal(record, presented, NOW + timedelta(days=1))   # expired
    revoked = with_keys(record, *integrations.revoke_key(record, key.key_id, NOW))
    with pytest.raises(tokens.InvalidCredential):
        integration_principal(revoked, presented, NOW)
    with pytest.raises(tokens.InvalidCredential):
        integration_principal(record, tokens.ApiKey(key.key_id, key.secret + "x"), NOW)
    with pytest.raises(tokens.InvalidCredential):
        integration_principal(dict(record, active=False), presented, NOW)
    with pytest.raises(tokens.InvalidCredential):
        integration_principal(record, tokens.new_api_key(), NOW)


# -- what admins see, what the bus carries ----------------------------------------------------------

def test_view_never_shows_digests_or_secrets():
    record, first = issued(client(bus_user="pos-bus"))
    record, second = issued(record)
    record = with_keys(record, *integrations.revoke_key(record, first.key_id, NOW))
    record = dict(record, outbox=[{"x": 1}], outbox_pending=True)
    shown = integrations.view(record, NOW)
    text = repr(shown)
    for key in (first, second):
        assert key.digest not in text and key.secret not in text
    assert "digest" not in text and "outbox" not in text and "_id" not in shown
    assert shown["keys"] == [
        {"key_id": first.key_id, "created_at": NOW, "expires_at": NOW + integrations.DEFAULT_KEY_LIFETIME,
         "revoked_at": NOW, "active": False},
        {"key_id": second.key_id, "created_at": NOW, "expires_at": NOW + integrations.DEFAULT_KEY_LIFETIME,
         "revoked_at": None, "active": True}]
    assert (shown["client_id"], shown["brand_id"], shown["bus_user"]) == ("pos", "yueyan", "pos-bus")


def test_changed_event_validates_against_the_contract():
    record, key = issued(client(store_ids=["SH-XH-001"], bus_user="pos-bus"))
    record = dict(record, version=2)
    payload = integrations.changed_event(record)
    loaded = ev.load(ev.INTEGRATION_CHANGED, ev.dump(ev.INTEGRATION_CHANGED, payload))
    assert loaded == payload
    assert loaded["keys"][0]["digest"] == key.digest
    assert key.secret not in repr(loaded)
    assert set(payload) == set(ev.IntegrationChanged().fields)


def test_changed_event_of_a_new_client_without_keys():
    payload = integrations.changed_event(client())
    assert ev.load(ev.INTEGRATION_CHANGED, ev.dump(ev.INTEGRATION_CHANGED, payload))["keys"] == []


# -- identity_flows over an in-memory repository ---------------------------------------------------

SPEC = {"client_id": "pos", "name": "门店收银系统", "brand_id": "yueyan", "permissions": ["feedback:submit"]}


def test_create_issue_revoke_each_announce_the_next_version():
    repository = FakeIntegrations()
    created, events = identity_flows.create_client(repository, CHART, SPEC, NOW)
    assert created["version"] == 1 and [e["type"] for e in events] == [ev.INTEGRATION_CHANGED]
    updated, key, events = identity_flows.issue_key(repository, "pos", NOW)
    assert updated["version"] == 2 and updated["keys"][0]["key_id"] == key.key_id
    assert ev.load(ev.INTEGRATION_CHANGED, events[0]["payload"])["version"] == 2
    revoked, events = identity_flows.revoke_key(repository, "pos", key.key_id, NOW)
    assert revoked["version"] == 3 and revoked["keys"][0]["revoked_at"] == NOW
    assert [ev.load(ev.INTEGRATION_CHANGED, e["payload"])["version"] for e in repository.events] == [1, 2, 3]


def test_a_client_id_is_created_once():
    repository = FakeIntegrations()
    identity_flows.create_client(repository, CHART, SPEC, NOW)
    assert refusal(identity_flows.create_client, repository, CHART, dict(SPEC, name="另一个"), NOW) == (
        409, "already_exists", "client_id")


def test_keys_of_an_unknown_client_are_404():
    assert refusal(identity_flows.issue_key, FakeIntegrations(), "nope", NOW)[:2] == (404, "client_not_found")


def test_a_concurrent_change_is_not_overwritten():
    repository = FakeIntegrations()
    identity_flows.create_client(repository, CHART, SPEC, NOW)
    stale = repository.get("pos")
    identity_flows.issue_key(repository, "pos", NOW)
    with pytest.raises(identity_flows.ConcurrentChange):
        identity_flows._update_client(repository, stale, {"active": False}, NOW)
    assert repository.get("pos")["active"] is True
