"""The console's settings, read from the environment once (defaults in one place).

The console is a client of the five services: it needs their base URLs (compose: the
service names on the compose network; `make run`: the local ports) and nothing of their
storage. Cookies are marked Secure when CONSOLE_SECURE_COOKIES is true (behind HTTPS)."""
import json
import os
from dataclasses import dataclass

DEFAULTS = {
    "CONSOLE_INTAKE_URL": "http://127.0.0.1:8001",
    "CONSOLE_ROUTING_URL": "http://127.0.0.1:8010",
    "CONSOLE_FOLLOWUP_URL": "http://127.0.0.1:8003",
    "CONSOLE_NOTIFY_URL": "http://127.0.0.1:8004",
    "CONSOLE_REPORTING_URL": "http://127.0.0.1:8005",
    "CONSOLE_API_TIMEOUT_SECONDS": "8",
    "CONSOLE_SECURE_COOKIES": "false",
    "CONSOLE_POLL_SECONDS": "15",
    # the most each role approves on its own, in fen: routing's REMEDY_APPROVAL_LIMITS_FEN
    # (deploy both with the same value); the console only shows the path, routing decides
    "REMEDY_APPROVAL_LIMITS_FEN": "",
}


@dataclass(frozen=True)
class Settings:
    urls: dict
    timeout: float
    secure_cookies: bool
    poll_seconds: int
    approval_limits_fen: dict | None


def from_environment(environ=None):
    environ = os.environ if environ is None else environ

    def get(key):
        return environ.get(key) or DEFAULTS[key]

    limits = get("REMEDY_APPROVAL_LIMITS_FEN")
    if limits:
        limits = json.loads(limits)
    return Settings(
        urls={name: get(f"CONSOLE_{name.upper()}_URL").rstrip("/")
              for name in ("intake", "routing", "followup", "notify", "reporting")},
        timeout=float(get("CONSOLE_API_TIMEOUT_SECONDS")),
        secure_cookies=get("CONSOLE_SECURE_COOKIES").lower() == "true",
        poll_seconds=int(get("CONSOLE_POLL_SECONDS")),
        approval_limits_fen=limits or None)
