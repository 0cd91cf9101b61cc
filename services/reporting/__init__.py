"""Reporting: its own read model of every case, built from events; KPIs and summaries."""
