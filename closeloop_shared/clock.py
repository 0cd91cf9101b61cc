"""Time as Closeloop keeps it: aware UTC in storage and on the bus; China time
(Asia/Shanghai) where people read or type it."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def utcnow():
    return datetime.now(timezone.utc)
