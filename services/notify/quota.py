"""How many messages one customer address may receive a day: anyone can submit feedback
with someone else's address, so without a cap intake would become a mail bomb. Staff
alerts are not capped by day: each is a real case that someone must handle (they have
an hourly limit instead, services/notify/policy.py). Pure: no nameko, no pymongo."""
from datetime import datetime, time, timedelta

from closeloop_shared.clock import CHINA


def day_counter(recipient, now):
    """(the counter's key: recipient and China day, when the counter may be forgotten)."""
    day = now.astimezone(CHINA).date()
    end_of_day = datetime.combine(day + timedelta(days=1), time.min, tzinfo=CHINA)
    return f"{recipient.lower()}|{day.isoformat()}", end_of_day + timedelta(days=1)
