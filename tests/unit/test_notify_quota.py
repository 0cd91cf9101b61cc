"""services/notify/quota.py: the customer's daily counter."""
from datetime import datetime, timezone

from services.notify import quota


def test_the_counter_is_per_address_and_china_day():
    late_evening = datetime(2026, 11, 24, 15, 59, tzinfo=timezone.utc)  # 23:59 in China
    after_midnight = datetime(2026, 11, 24, 16, 1, tzinfo=timezone.utc)
    key1, forget1 = quota.day_counter("Liu@Example.com", late_evening)
    key2, _ = quota.day_counter("liu@example.com", after_midnight)
    assert key1 == "liu@example.com|2026-11-24" and key2 == "liu@example.com|2026-11-25"
    assert forget1 > late_evening and (forget1 - late_evening).days >= 1
