"""reporting's HTTP contract (it takes no request bodies)."""
from closeloop_shared import openapi

OPENAPI = openapi.build("Closeloop reporting", {
    "/v1/reports/summary": {"get": {
        "summary": "KPIs of the cases submitted in a period (whole China days), within the caller's stores; "
                   "read from the pre-aggregated facts, so it costs the same at any number of cases",
        "parameters": [openapi.query_param("from", "China date or datetime (counts its whole day); "
                                                   "default 7 days before to"),
                       openapi.query_param("to", "China date (inclusive) or datetime (counts its whole day); "
                                                 "default now"),
                       openapi.query_param("store", "one store of the caller's scope")],
        "responses": openapi.responses({200: "from, to (the China days counted), store; cases; by_category, "
                                             "by_status (now), by_channel, by_root_cause; remedies_fen; open; "
                                             "escalated; first_response and resolution: counted (met, or breached "
                                             "unmet), on_time, late_or_overdue, rate; satisfaction (revisits, "
                                             "satisfied, rate, target); reopened (cases, rate over those ever "
                                             "resolved); corrections: per model version, the cases it classified "
                                             "by category, how many staff corrected, the rate and to which category"},
                                       404, 422, 503)}},
    "/v1/reports/kpis": {"get": {
        "summary": "KPIs of the cases submitted in a period (whole China days) by store, region, brand, "
                   "category or staff, within the caller's stores; read from pre-aggregated facts",
        "parameters": [openapi.query_param("from", "China date; default 7 days before to"),
                       openapi.query_param("to", "China date (inclusive); default today"),
                       openapi.query_param("store", "one store of the caller's scope"),
                       openapi.query_param("by", "none (default), store, region, brand, category or staff"),
                       openapi.query_param("format", "json (default) or csv")],
        "responses": openapi.responses({200: "per group: cases; on-time first response, resolution and written "
                                             "report (met or breached unmet; overdue counts late); breaches by "
                                             "clock and rung; revisit satisfaction; repeat problems within 30/90 "
                                             "days with the change against the previous period; remedies by "
                                             "option A-D in fen; a Pareto of root causes; the revisit programme's "
                                             "completion (unreachable apart) and satisfaction. by=staff: each handler's "
                                             "assigned, resolved, on-time rate and satisfaction"},
                                       404, 422, 503)}},
    "/v1/reports/weekly": {"get": {
        "summary": "The weekly category summary (seed 000) of the week holding `week`, within the caller's stores",
        "parameters": [openapi.query_param("week", "any China date of the week; default: a week ago"),
                       openapi.query_param("store", "one store of the caller's scope")],
        "responses": openapi.responses({200: "KPIs by category; a Pareto of root causes per store and per region; "
                                             "week-over-week and month-over-month changes of cases, on-time first "
                                             "response and resolution, satisfaction and 30-day repeat rates"},
                                       404, 422, 503)}},
})
