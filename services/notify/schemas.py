"""notify's HTTP contract (it takes no request bodies)."""
from closeloop_shared import openapi

OPENAPI = openapi.build("Closeloop notify", {
    "/v1/deliveries": {"get": {
        "summary": "The delivery log of a case: each notification's status history, channel and "
                   "attempts with the provider's answers and request ids; addresses only for roles "
                   "that may see personal data",
        "parameters": [dict(openapi.query_param("case_id", "case id"), required=True)],
        "responses": openapi.responses({200: "deliveries"}, 422, 503)}},
    "/v1/deliveries/by-customer": {"get": {
        "summary": "Every notification to one customer in the caller's stores, found by any of their "
                   "handles (phone, e-mail or WeChat openid)",
        "parameters": [dict(openapi.query_param("contact", "the customer's phone, e-mail or openid"),
                            required=True)],
        "responses": openapi.responses({200: "deliveries"}, 422, 503)}},
    "/v1/audit/personal-data-reads": openapi.AUDIT_OPERATION,
})
