"""services/notify/views.py: what the delivery log shows, to whom."""
import pytest

from closeloop_shared.access import Principal
from closeloop_shared.contract import Role
from closeloop_shared.org import Staff
from services.notify.views import delivery_view

DELIVERY = {
    "_id": "d1", "case_id": "c42", "kind": "acknowledgement", "template": "acknowledgement", "audience": "customer",
    "store_id": "SH-XH-001", "status": "sent", "recipient": "customer:2ebd", "route_index": 1,
    "route": [{"channel": "wecom", "address": "robot-secret-key"}, {"channel": "sms", "address": "+8613812345678"}],
    "contents": {"sms": {"text": "【悦颜】尊敬的刘女士..."}},
    "attempt_log": [{"channel": "sms", "outcome": "sent", "request_id": "req-1", "by": "host:1:abc",
                     "provider_message_id": "biz-1", "response": "{}"}],
}


def principal_with(role):
    return Principal.for_staff(Staff("p1", "某人", role, store_id="SH-XH-001"), "yueyan")


@pytest.mark.parametrize("role, sees", [
    (Role.STORE_STAFF, True), (Role.STORE_MANAGER, True), (Role.CUSTOMER_SERVICE, True),
    (Role.REGIONAL_MANAGER, False), (Role.GENERAL_MANAGER, False), (Role.ADMIN, False),
])
def test_addresses_only_for_roles_that_call_customers_and_never_the_message(role, sees):
    shown = delivery_view(dict(DELIVERY), principal_with(role))
    assert "contents" not in shown and "_id" not in shown and "body" not in shown
    assert shown["recipient"] == ("+8613812345678" if sees else None)
    assert [step["address"] for step in shown["route"]] == [None, "+8613812345678" if sees else None]
    assert shown["attempt_log"] == [{"channel": "sms", "started_at": None, "finished_at": None, "outcome": "sent",
                                     "code": None, "request_id": "req-1", "provider_message_id": "biz-1",
                                     "response": "{}"}]


def test_a_robot_key_is_never_shown_and_a_webhook_endpoint_always():
    robot = dict(DELIVERY, route_index=0)
    assert delivery_view(robot, principal_with(Role.STORE_MANAGER))["recipient"] is None
    hook = dict(DELIVERY, route=[{"channel": "webhook", "address": "crm"}], route_index=0)
    assert delivery_view(hook, principal_with(Role.GENERAL_MANAGER))["recipient"] == "crm"
