"""Notify: tells customers and staff what happened to a case, once per (case, kind, recipient)."""
