"""Logins, lockout, key rotation and revocation, token expiry and signing-key rollover,
against running routing and intake containers (the real HTTP path)."""
import json
from datetime import timedelta

import pytest
import requests

from closeloop_shared.clock import utcnow
from closeloop_shared.standins import free_port
from closeloop_shared.tokens import Signer, new_signing_key, write_key_pair
from services.intake.service import IntakeService
from services.routing.service import RoutingService
from tests.fixtures import feedback_body, wait_for

pytestmark = pytest.mark.integration


class Running:
    def __init__(self, container_factory, service_config, **overrides):
        self.urls = {}
        for name, service in (("routing", RoutingService), ("intake", IntakeService)):
            address = f"127.0.0.1:{free_port()}"
            container_factory(service, dict(service_config, WEB_SERVER_ADDRESS=address,
                                            OUTBOX_RELAY_INTERVAL_SECONDS=1, **overrides)).start()
            self.urls[name] = f"http://{address}"

    def call(self, service, method, path, credential=None, **kwargs):
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return requests.request(method, self.urls[service] + path, headers=headers, timeout=10, **kwargs)


@pytest.fixture
def running(container_factory, service_config):
    return Running(container_factory, service_config)


def admin(token_keys):
    return token_keys.token("ops-admin")


def login(running, staff_id, password):
    return running.call("routing", "POST", "/v1/auth/login", json={"staff_id": staff_id, "password": password})


def test_login_gives_a_token_every_service_accepts_and_repeated_failures_lock(running, token_keys):
    assert running.call("routing", "POST", "/v1/org/staff/sh-xh-s1/password", admin(token_keys),
                        json={"password": "correct horse battery"}).status_code == 204
    session = login(running, "sh-xh-s1", "correct horse battery")
    assert session.status_code == 200 and session.json()["staff"]["role"] == "store_staff"
    token = session.json()["token"]
    assert running.call("intake", "POST", "/v1/feedback", token, json=feedback_body()).status_code == 201
    assert running.call("routing", "GET", "/v1/cases", token).status_code == 200

    statuses = [login(running, "sh-xh-s1", "wrong password").status_code for _ in range(4)]
    assert statuses[:3] == [401, 401, 401]  # the 4th failure starts the slow-down
    locked = login(running, "sh-xh-s1", "correct horse battery")  # even the right one waits
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "account_locked"
    assert int(locked.headers["Retry-After"]) >= 1
    assert login(running, "nobody", "whatever-it-is").json()["error"]["code"] == "invalid_credentials"


def test_a_deactivated_person_is_refused_at_once_and_their_cases_move_on(running, token_keys):
    token = token_keys.token("sh-xh-s1")
    minor = feedback_body(content="前台预约时间搞错了,到店等了一个小时")  # low: stays with store staff
    case = running.call("intake", "POST", "/v1/feedback", token, json=minor).json()
    manager = token_keys.token("sh-xh-mg")
    routed = wait_for(lambda: (lambda r: r.status_code == 200 and r.json())(
        running.call("routing", "GET", f"/v1/cases/{case['case_id']}", manager)), what="routed")
    owner = routed["assignee"]["staff_id"]  # one of the store's two store staff (fewest open cases)
    other = ({"sh-xh-s1", "sh-xh-rv"} - {owner}).pop()
    owner_token = token_keys.token(owner)
    deactivated = running.call("routing", "POST", f"/v1/org/staff/{owner}/deactivate", admin(token_keys))
    assert deactivated.status_code == 200 and case["case_number"] in deactivated.json()["cases_handed_over"]
    assert running.call("routing", "GET", "/v1/cases", owner_token).status_code == 401
    wait_for(lambda: running.call("intake", "POST", "/v1/feedback", owner_token,
                                  json=feedback_body()).status_code == 401,
             what="intake's copy of the organisation")
    moved = running.call("routing", "GET", f"/v1/cases/{case['case_id']}", manager).json()
    assert moved["assignee"]["staff_id"] == other  # the next store staff on that rung
    assert moved["timeline"][-1]["action"] == "reassigned"


def test_integration_keys_rotate_with_two_active_and_revoke_at_once(running, token_keys):
    created = running.call("routing", "POST", "/v1/integrations", admin(token_keys), json={
        "client_id": "crm", "name": "CRM", "brand_id": "yueyan", "permissions": ["feedback:submit"]})
    assert created.status_code == 201
    first = running.call("routing", "POST", "/v1/integrations/crm/keys", admin(token_keys)).json()
    second = running.call("routing", "POST", "/v1/integrations/crm/keys", admin(token_keys)).json()
    third = running.call("routing", "POST", "/v1/integrations/crm/keys", admin(token_keys))
    assert third.status_code == 409 and third.json()["error"]["code"] == "too_many_keys"
    listed = running.call("routing", "GET", "/v1/integrations", admin(token_keys)).text
    assert first["api_key"] not in listed and "digest" not in listed

    submit = lambda key, **ref: running.call("intake", "POST", "/v1/feedback", key,  # noqa: E731
                                             json=feedback_body(**ref))
    wait_for(lambda: submit(first["api_key"]).status_code == 201, what="intake knows the key")
    assert submit(second["api_key"]).status_code == 201
    other_brand = running.call("intake", "POST", "/v1/feedback", first["api_key"],
                               json=feedback_body(store_id="BJ-CY-101"))
    assert other_brand.status_code == 422 and other_brand.json()["error"]["code"] == "unknown_store"

    revoked = running.call("routing", "DELETE", f"/v1/integrations/crm/keys/{first['key_id']}", admin(token_keys))
    assert revoked.status_code == 200
    wait_for(lambda: submit(first["api_key"]).status_code == 401, what="revocation reaches intake")
    assert submit(second["api_key"]).status_code == 201
    tampered = second["api_key"][:-2] + ("AA" if not second["api_key"].endswith("AA") else "BB")
    assert submit(tampered).status_code == 401


def test_expired_tokens_are_refused_and_a_rolled_over_key_keeps_old_tokens_valid(
        container_factory, service_config, token_keys, tmp_path):
    expired = token_keys.token("sh-xh-s1", ttl=timedelta(minutes=15), now=utcnow() - timedelta(minutes=20))
    # Rollover: a new signing key is added beside the old one in the published key set.
    jwks = tmp_path / "public.jwks.json"
    jwks.write_text(token_keys.jwks_path.read_text())
    write_key_pair(tmp_path / "new.pem", jwks)
    assert len(json.loads(jwks.read_text())["keys"]) == 2
    running = Running(container_factory, service_config, AUTH_PUBLIC_KEYS_FILE=str(jwks),
                      AUTH_SIGNING_KEY_FILE=str(tmp_path / "new.pem"))
    assert running.call("routing", "GET", "/v1/cases", expired).status_code == 401
    old = token_keys.token("sh-xh-s1")
    new = Signer.from_file(tmp_path / "new.pem").sign({"sub": "sh-xh-s1"}, utcnow(), timedelta(minutes=5))
    assert running.call("routing", "GET", "/v1/cases", old).status_code == 200
    assert running.call("intake", "GET", "/v1/feedback/none", new).status_code == 404  # authenticated
    stranger = Signer.from_pem(new_signing_key()[0]).sign({"sub": "gm-001"}, utcnow(), timedelta(minutes=5))
    assert running.call("routing", "GET", "/v1/cases", stranger).status_code == 401
