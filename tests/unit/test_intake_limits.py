"""services/intake/limits.py: a token bucket per client."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.limits import RateLimiter, TokenBucket

T = 1000.0  # monotonic seconds


def test_a_burst_then_waiting():
    limiter = RateLimiter(per_minute=60, burst=3)
    assert [limiter.wait("pos", T) for _ in range(3)] == [0, 0, 0]
    assert limiter.wait("pos", T) == pytest.approx(1.0)   # one token a second


def test_retry_after_is_the_time_to_the_next_token():
    limiter = RateLimiter(per_minute=30, burst=1)         # one token every 2 s
    assert limiter.wait("pos", T) == 0
    assert limiter.wait("pos", T + 0.5) == pytest.approx(1.5)
    assert limiter.wait("pos", T + 1.5) == pytest.approx(0.5)
    assert limiter.wait("pos", T + 2.0) == 0              # exactly when it said


def test_a_refused_request_costs_nothing():
    limiter = RateLimiter(per_minute=60, burst=1)
    limiter.wait("pos", T)
    for _ in range(10):                                   # hammering does not push the wait out
        assert limiter.wait("pos", T + 0.25) == pytest.approx(0.75)
    assert limiter.wait("pos", T + 1.0) == 0


def test_refill_never_exceeds_the_burst():
    limiter = RateLimiter(per_minute=60, burst=2)
    limiter.wait("pos", T)
    later = T + 3600                                       # an hour idle: still only the burst
    assert [limiter.wait("pos", later) for _ in range(3)] == [0, 0, pytest.approx(1.0)]


def test_clients_are_isolated():
    limiter = RateLimiter(per_minute=60, burst=1)
    assert limiter.wait("pos", T) == 0
    assert limiter.wait("pos", T) > 0
    assert limiter.wait("crm", T) == 0                     # another client's bucket is full
    assert limiter.wait("sh-xh-s1", T) == 0
    assert limiter.wait("pos", T) > 0


def test_memory_is_bounded():
    limiter = RateLimiter(per_minute=60, burst=1, max_clients=3)
    for client in ("a", "b", "c", "d", "e"):
        limiter.wait(client, T)
    assert len(limiter.buckets) <= 3


def test_the_bucket_alone():
    bucket = TokenBucket(rate=2.0, capacity=2, tokens=0.0, updated=T)
    assert bucket.take(T) == pytest.approx(0.5)
    assert bucket.take(T + 0.5) == 0
    assert bucket.tokens == pytest.approx(0.0)


@given(per_minute=st.integers(min_value=1, max_value=600), burst=st.integers(min_value=1, max_value=20),
       gaps=st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=60))
def test_never_more_than_the_burst_plus_the_refill(per_minute, burst, gaps):
    """Over any stretch of time, the requests let through are at most the burst plus
    what refilled meanwhile; and a refused request is told a positive wait that, once
    waited, lets it through."""
    limiter = RateLimiter(per_minute=per_minute, burst=burst)
    now, allowed = T, 0
    for gap in gaps:
        now += gap
        wait = limiter.wait("pos", now)
        if wait == 0:
            allowed += 1
        else:
            assert wait > 0 and wait <= 60 / per_minute + 1e-9
            retry = limiter.wait("pos", now + wait + 1e-9)
            assert retry == 0
            allowed += 1
            now += wait + 1e-9
    assert allowed <= burst + math.floor((now - T) * per_minute / 60 + 1e-6)
