"""How fast one client may submit: a token bucket per client (an integration key, a
staff member), in each intake replica. Pure: no nameko, no pymongo."""
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float       # tokens per second
    capacity: float   # the burst
    tokens: float
    updated: float    # monotonic seconds

    def take(self, now):
        """0 if a request may go now, else the seconds until it may."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, per_minute, burst, max_clients=10_000):
        self.rate, self.burst, self.max_clients = per_minute / 60.0, burst, max_clients
        self.buckets = {}

    def wait(self, client, now):
        """0 if `client` may submit now, else the seconds to wait (Retry-After)."""
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.max_clients:  # bounded memory: start afresh
                self.buckets.clear()
            bucket = self.buckets[client] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take(now)
