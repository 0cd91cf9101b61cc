"""What the delivery log shows, to whom. Pure: no nameko, no pymongo.

Never the message itself (it quotes the customer); addresses only to roles that may see
personal data, and a WeCom robot key never (it is a credential)."""
from closeloop_shared.access import sees_personal_data
from closeloop_shared.contract import NotifyChannel as C

SHOWN = ("case_id", "case_number", "store_id", "kind", "template", "audience", "locale", "urgent",
         "status", "reason", "channel", "attempts", "possible_repeat", "created_at", "updated_at",
         "sent_at", "next_attempt_at", "status_history")
ATTEMPT_FIELDS = ("channel", "started_at", "finished_at", "outcome", "code", "request_id",
                  "provider_message_id", "response")
SECRET_ADDRESSES = frozenset({C.WECOM.value})


def _address(step, personal):
    if step["channel"] in SECRET_ADDRESSES:
        return None
    if step["channel"] == C.WEBHOOK.value or personal:
        return step["address"]
    return None


def delivery_view(delivery, principal):
    personal = sees_personal_data(principal)
    route = delivery.get("route") or []
    current = route[delivery.get("route_index", 0)] if route else None
    return {
        **{name: delivery.get(name) for name in SHOWN},
        "recipient": _address(current, personal) if current else None,
        "route": [{"channel": step["channel"], "address": _address(step, personal)} for step in route],
        "attempt_log": [{name: entry.get(name) for name in ATTEMPT_FIELDS}
                        for entry in delivery.get("attempt_log") or []],
    }
