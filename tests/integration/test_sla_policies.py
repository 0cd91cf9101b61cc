"""SLA policies over HTTP against real RabbitMQ and the MongoDB-protocol server: create,
validate, change (a new version, the old one kept in the history), deactivate, and what
policy.choose then picks from the stored policies."""
import json

import pytest

from closeloop_shared import events as ev
from closeloop_shared.mongo import database_name
from services.routing import policy_flows
from services.routing.policy import CaseFacts, builtin_policies_from, choose
from services.routing.repository import PolicyRepository
# routing as test_routing runs it (its `heard` is this module's)
from tests.integration.test_routing import routing, routing_config  # noqa: F401

pytestmark = pytest.mark.integration

KEY_CUSTOMERS = {
    "policy_id": "key-customers-critical", "name": "重点客户 critical",
    "conditions": {"severities": ["high", "critical"], "tiers": ["key"]},
    "clocks": [
        {"name": "first_response", "basis": "wall", "duration_seconds": 2 * 3600, "warning_lead_seconds": 1800},
        {"name": "update", "basis": "business", "duration_seconds": 4 * 3600},
        {"name": "resolution", "basis": "business", "duration_seconds": 16 * 3600,
         "warning_lead_seconds": 4 * 3600}]}


@pytest.fixture
def heard(record_events):
    return record_events(ev.CASE_ROUTED)


def send(session, method, path, body, staff=None, token_keys=None):
    headers = {"Content-Type": "application/json"}
    if staff:
        headers.update(token_keys.headers(staff))
    return session.request(method, path, data=json.dumps(body, ensure_ascii=False).encode(), headers=headers)


@pytest.fixture
def as_gm(web_session, token_keys):
    return lambda method, path, body: send(web_session, method, path, body, "gm-001", token_keys)


@pytest.fixture
def stored(mongo_client, service_config):
    return PolicyRepository(mongo_client[database_name(service_config, ev.ROUTING)])


def test_a_policy_is_created_changed_in_versions_and_deactivated(routing, web_session, as_gm, stored,
                                                                 routing_config, token_keys):
    listed = web_session.get("/v1/sla-policies").json()["policies"]  # a store manager reads
    assert [(p["policy_id"], p["builtin"]) for p in listed] == [("default", True), ("default-referral", True)]
    assert send(web_session, "POST", "/v1/sla-policies", KEY_CUSTOMERS).status_code == 403

    created = as_gm("POST", "/v1/sla-policies", KEY_CUSTOMERS)
    assert created.status_code == 201, created.text
    policy = created.json()
    assert (policy["version"], policy["active"], policy["updated_by"]) == (1, True, "gm-001")
    assert policy["conditions"] == {"severities": ["critical", "high"], "tiers": ["key"],
                                    "categories": [], "channels": []}
    assert as_gm("POST", "/v1/sla-policies", KEY_CUSTOMERS).json()["error"]["code"] == "policy_exists"

    builtins = builtin_policies_from(routing_config)
    key_case = CaseFacts("critical", "hygiene", "hotline", "key")
    assert choose(policy_flows.active_policies(stored), key_case, builtins).policy_id == "key-customers-critical"
    assert choose(policy_flows.active_policies(stored), CaseFacts("critical", "hygiene", "hotline"),
                  builtins).policy_id == "default"  # tier unknown
    assert choose(policy_flows.active_policies(stored), CaseFacts("critical", "hygiene", "media", "key"),
                  builtins).policy_id == "default-referral"

    faster = dict(KEY_CUSTOMERS, version=1, name="重点客户 faster")
    del faster["policy_id"]
    faster["clocks"] = [dict(KEY_CUSTOMERS["clocks"][0], duration_seconds=3600)] + KEY_CUSTOMERS["clocks"][1:]
    changed = as_gm("PUT", "/v1/sla-policies/key-customers-critical", faster)
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2 and changed.json()["clocks"][0]["duration_seconds"] == 3600
    stale = as_gm("PUT", "/v1/sla-policies/key-customers-critical", faster)
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "version_conflict")
    history = stored.policies.find_one({"_id": "key-customers-critical"})["history"]
    assert [(h["version"], h["clocks"][0]["duration_seconds"]) for h in history] == [(1, 7200)]
    chosen = choose(policy_flows.active_policies(stored), key_case, builtins)
    assert (chosen.version, chosen.clock("first_response").duration.total_seconds()) == (2, 3600)

    stale = as_gm("POST", "/v1/sla-policies/key-customers-critical/deactivate", {"version": 1})
    assert stale.status_code == 409
    off = as_gm("POST", "/v1/sla-policies/key-customers-critical/deactivate", {"version": 2})
    assert off.status_code == 200 and (off.json()["version"], off.json()["active"]) == (3, False)
    assert as_gm("POST", "/v1/sla-policies/key-customers-critical/deactivate", {}).json()["error"]["code"] \
        == "already_inactive"
    assert choose(policy_flows.active_policies(stored), key_case, builtins).policy_id == "default"
    fetched = web_session.get("/v1/sla-policies/key-customers-critical").json()
    assert (fetched["version"], fetched["active"]) == (3, False)

    again = send(web_session, "PUT", "/v1/sla-policies/key-customers-critical", dict(faster, version=3),
                 "ops-admin", token_keys)  # the admin manages policies too; a change puts it back in force
    assert again.status_code == 200 and (again.json()["version"], again.json()["active"]) == (4, True)


@pytest.mark.parametrize("change, field", [
    ({"clocks": KEY_CUSTOMERS["clocks"] + [
        {"name": "report", "basis": "wall", "duration_seconds": 8 * 3600}]}, "clocks.3.name"),
    ({"clocks": [dict(KEY_CUSTOMERS["clocks"][0], warning_lead_seconds=2 * 3600)] + KEY_CUSTOMERS["clocks"][1:]},
     "clocks.0.warning_lead_seconds"),
    ({"clocks": KEY_CUSTOMERS["clocks"][:1] + KEY_CUSTOMERS["clocks"][:1] + KEY_CUSTOMERS["clocks"][2:]},
     "clocks.1.name"),
    ({"clocks": KEY_CUSTOMERS["clocks"][1:]}, "clocks"),
    ({"clocks": [dict(KEY_CUSTOMERS["clocks"][0], duration_seconds=0)]}, "clocks.0.duration_seconds"),
    ({"clocks": [dict(KEY_CUSTOMERS["clocks"][0], basis="lunar")]}, "clocks.0.basis"),
    ({"conditions": {"severities": ["urgent"]}}, "conditions.severities.0"),
    ({"conditions": {"channels": ["media", "hotline"]}}, "conditions.channels"),
    ({"conditions": {"channels": ["media"]}}, "clocks"),  # a referral policy owes the report
    ({"policy_id": "no spaces"}, "policy_id"),
    ({"actor": "gm-001"}, "actor"),
])
def test_invalid_policies_are_refused_with_the_field_at_fault(routing, as_gm, change, field):
    refused = as_gm("POST", "/v1/sla-policies", dict(KEY_CUSTOMERS, **change))
    assert refused.status_code == 422, refused.text
    assert field in refused.json()["error"]["fields"]


def test_builtin_policies_are_read_only_and_unknown_ones_not_found(routing, web_session, as_gm):
    default = web_session.get("/v1/sla-policies/default").json()
    assert [c["name"] for c in default["clocks"]] == ["first_response", "update", "resolution"]
    body = {k: v for k, v in KEY_CUSTOMERS.items() if k != "policy_id"}
    refused = as_gm("PUT", "/v1/sla-policies/default", dict(body, version=1))
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "builtin_policy")
    assert as_gm("POST", "/v1/sla-policies", dict(KEY_CUSTOMERS, policy_id="default-referral")).status_code == 409
    assert web_session.get("/v1/sla-policies/nothing-such").status_code == 404
    assert as_gm("PUT", "/v1/sla-policies/nothing-such", dict(body, version=1)).status_code == 404
