"""Routing: classify, set severity, assign from the org chart, run SLA clocks and climb the escalation ladder."""
