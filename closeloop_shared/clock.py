"""One source of "now" (aware UTC) so tests and domain code agree on time zones."""
from datetime import datetime, timezone


def utcnow():
    return datetime.now(timezone.utc)
