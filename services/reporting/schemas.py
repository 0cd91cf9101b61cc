"""reporting's HTTP contract (it takes no request bodies)."""
from closeloop_shared import openapi

OPENAPI = openapi.build("Closeloop reporting", {
    "/v1/reports/summary": {"get": {
        "summary": "KPIs of the cases submitted in a period, within the caller's stores",
        "parameters": [openapi.query_param("from", "China date or datetime; default 7 days before to"),
                       openapi.query_param("to", "China date (inclusive) or datetime; default now"),
                       openapi.query_param("store", "one store of the caller's scope")],
        "responses": openapi.responses({200: "counts, on-time rates, satisfaction, reopened rate; corrections: "
                                             "per model version, the cases it classified by category, how "
                                             "many staff corrected, the rate and to which category"},
                                       404, 422, 503)}},
})
