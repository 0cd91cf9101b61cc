"""Quiet hours: the daily window (store-local) in which no customer is contacted. One
parser of NOTIFY_QUIET_HOURS for every service that plans contact with customers
(notify defers messages into the window's end, followup plans reminders outside it)."""
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text):
        """"21:00-09:00"; "" or "off": none."""
        if not text or text.strip().lower() == "off":
            return None
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        return cls(start, end)

    def contains(self, moment):
        now = moment.timetz().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # across midnight

    def opens_at(self, now, zone):
        """None if `now` is outside the quiet hours in `zone`, else when they end (UTC)."""
        local = now.astimezone(zone)
        if not self.contains(local):
            return None
        opening = datetime.combine(local.date(), self.end, tzinfo=zone)
        if opening <= local:
            opening += timedelta(days=1)
        return opening.astimezone(timezone.utc)
