"""The console's settings, read once from the container's config (deploy/nameko.yml);
their keys and defaults are in closeloop_shared/config.py with every other service's.

The console is a client of the five services: it needs their base URLs (compose: the
service names on the compose network; `make run`: the local ports) and nothing of their
storage. Cookies are marked Secure when CONSOLE_SECURE_COOKIES is true (behind HTTPS)."""
from dataclasses import dataclass

from closeloop_shared import config as keys
from closeloop_shared.config import setting

SERVICE_URLS = {"intake": keys.CONSOLE_INTAKE_URL, "routing": keys.CONSOLE_ROUTING_URL,
                "followup": keys.CONSOLE_FOLLOWUP_URL, "notify": keys.CONSOLE_NOTIFY_URL,
                "reporting": keys.CONSOLE_REPORTING_URL}


@dataclass(frozen=True)
class Settings:
    urls: dict
    timeout: float
    secure_cookies: bool
    poll_seconds: int


def from_config(config):
    return Settings(
        urls={name: str(setting(config, key)).rstrip("/") for name, key in SERVICE_URLS.items()},
        timeout=float(setting(config, keys.CONSOLE_API_TIMEOUT_SECONDS)),
        secure_cookies=str(setting(config, keys.CONSOLE_SECURE_COOKIES)).lower() == "true",
        poll_seconds=int(setting(config, keys.CONSOLE_POLL_SECONDS)))
