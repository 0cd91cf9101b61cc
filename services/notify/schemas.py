"""notify's HTTP contract (it takes no request bodies)."""
from closeloop_shared import openapi

OPENAPI = openapi.build("Closeloop notify", {
    "/v1/deliveries": {"get": {
        "summary": "What was sent about a case, to whom (for roles that may see it), and its status",
        "parameters": [dict(openapi.query_param("case_id", "case id"), required=True)],
        "responses": openapi.responses({200: "deliveries"}, 422, 503)}},
    "/v1/audit/personal-data-reads": openapi.AUDIT_OPERATION,
})
