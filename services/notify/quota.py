"""How many messages one customer address may receive a day: anyone can submit feedback
with someone else's address, so without a cap intake would become a mail bomb. Staff
alerts (assignments, escalations) are not capped: each is a real case that someone must
handle. Pure: no nameko, no pymongo."""
from datetime import datetime, time, timedelta

from closeloop_shared.clock import CHINA

# The kinds of message that go to customers (the rest go to staff).
CUSTOMER_KINDS = frozenset({"acknowledgement"})


def capped(kind):
    return kind.split(":")[0] in CUSTOMER_KINDS


def day_counter(recipient, now):
    """(the counter's key: recipient and China day, when the counter may be forgotten)."""
    day = now.astimezone(CHINA).date()
    end_of_day = datetime.combine(day + timedelta(days=1), time.min, tzinfo=CHINA)
    return f"{recipient.lower()}|{day.isoformat()}", end_of_day + timedelta(days=1)
