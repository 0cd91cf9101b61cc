"""The tiered revisit programme (seed 002): cadence per tier, when in the customer's
contact hours a revisit is due, retries of an unreachable customer at other hours, the
one-survey-per-window throttle across programmes, and completion rates. Pure: no nameko,
no pymongo; times are arguments, datetimes are aware.

Cadence defaults (重点客户每月一次、普通客户每季度一次、潜在客户每半年一次; special customers,
pregnant or postpartum, monthly) are configurable per chain (FOLLOWUP_CADENCE_MONTHS)."""
import uuid
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from closeloop_shared.contract import CustomerTier, RevisitPurpose, RevisitTaskStatus
from services.followup.opening import OpeningHours, call_time

DEFAULT_CADENCE_MONTHS = {CustomerTier.KEY: 1, CustomerTier.REGULAR: 3, CustomerTier.POTENTIAL: 6,
                          CustomerTier.SPECIAL: 1}
OPEN = (RevisitTaskStatus.SCHEDULED.value, RevisitTaskStatus.DUE.value)
# Counted in completion: what was due and either done, given up, or still owed.
COUNTED = (RevisitTaskStatus.COMPLETED.value, RevisitTaskStatus.UNREACHABLE.value,
           RevisitTaskStatus.DUE.value)


@dataclass(frozen=True)
class Cadence:
    """Months between revisits per tier: the deployment's (seed 002's defaults, changed
    by FOLLOWUP_CADENCE_MONTHS's tier keys) and a chain's own (a brand id's key there),
    e.g. {"regular": 2, "yueyan": {"potential": 4}}."""
    months: dict                                  # CustomerTier -> months
    brands: dict = field(default_factory=dict)    # brand id -> {CustomerTier: months}

    @classmethod
    def from_config(cls, value):
        value, tiers = value or {}, {t.value for t in CustomerTier}
        months = {**DEFAULT_CADENCE_MONTHS, **_months(v for v in value.items() if v[0] in tiers)}
        return cls(months, {brand: {**months, **_months(own.items())}
                            for brand, own in value.items() if brand not in tiers})

    def next_after(self, last, tier, brand_id=None):
        return add_months(last, self.brands.get(brand_id, self.months)[tier])


def _months(items):
    """{CustomerTier: months} of configured (tier, months) pairs (ValueError if not)."""
    months = {CustomerTier(tier): int(n) for tier, n in items}
    if any(n < 1 for n in months.values()):
        raise ValueError("a cadence is at least one month")
    return months


def add_months(day, months):
    """The same day `months` later, the month's last day when it has no such day (31
    January + 1 month: 28 or 29 February), as dateutil's relativedelta, ten times faster
    (planning a year for a million customers adds months five million times)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, monthrange(year, month)[1]))


# What successive cadence revisits are for (seed 002: 了解客户满意度、服务提醒、优惠信息、
# 客户关怀); a special customer (pregnant, postpartum) is never called with an offer.
PURPOSE_CYCLE = (RevisitPurpose.CARE, RevisitPurpose.SATISFACTION, RevisitPurpose.SERVICE_REMINDER,
                 RevisitPurpose.OFFER)
SPECIAL_CYCLE = (RevisitPurpose.CARE, RevisitPurpose.SATISFACTION)


def purpose_for(number, tier):
    """The purpose of a customer's `number`-th cadence revisit (0-based)."""
    cycle = SPECIAL_CYCLE if tier is CustomerTier.SPECIAL else PURPOSE_CYCLE
    return cycle[number % len(cycle)]


@dataclass(frozen=True)
class AttemptPolicy:
    max_attempts: int = 3
    # a retry is made the next day at another hour of the contact window
    retry_gap_days: int = 1


def slot(day, hours, attempt, tz, opening=None):
    """The moment (UTC) of attempt `attempt` (0-based) planned for store-local `day`,
    inside the customer's contact hours and the store's open hours (`opening`, routing's
    calendar as followup knows it; None: not announced, open all day): the first at the
    start of that common time, each retry at another hour of it (so a customer who is
    busy mornings is tried later); a day the store is closed to them (a closure, a
    holiday) moves to its next open day (opening.call_time)."""
    return call_time(day, hours, attempt, opening or OpeningHours.always_open(tz))


def plan(member_id, tier, cadence, start, until, hours, tz, opening=None):
    """The moments of a customer's cadence revisits after `start` up to `until` (both
    store-local dates), each at the start of their contact hours the store is open in."""
    due, day = [], cadence.next_after(start, tier)
    while day <= until:
        due.append(slot(day, hours, 0, tz, opening))
        day = cadence.next_after(day, tier)
    return due


def new_task(profile, tier, owner, purpose, due_at, now, case_id=None):
    return {
        "_id": uuid.uuid4().hex,
        "member_id": profile.member_id,
        "store_id": profile.home_store_id,
        "owner": owner,
        "owner_id": owner["staff_id"],
        "tier": tier.value,
        "purpose": purpose.value,
        "script": f"{purpose.value}.txt",  # services/followup/scripts/
        "customer": profile.contact(),
        "case_id": case_id,
        "due_at": due_at,
        "planned_at": due_at,
        "status": RevisitTaskStatus.SCHEDULED.value,
        "attempts": [],
        "created_at": now,
        "updated_at": now,
        "outbox": [],
        "outbox_pending": False,
    }


@dataclass(frozen=True)
class AttemptResult:
    status: RevisitTaskStatus
    due_at: datetime | None  # the retry's moment, None when no retry follows


def after_unreached(attempts_made, hours, tz, now, policy, opening=None):
    """After `attempts_made` failed attempts (this one included): a retry the next day
    (the next the store is open) at another hour, or UNREACHABLE once the policy's
    attempts are spent."""
    if attempts_made >= policy.max_attempts:
        return AttemptResult(RevisitTaskStatus.UNREACHABLE, None)
    local_day = now.astimezone(ZoneInfo(tz)).date() + timedelta(days=policy.retry_gap_days)
    return AttemptResult(RevisitTaskStatus.SCHEDULED, slot(local_day, hours, attempts_made, tz, opening))


def survey_allowed(last_survey_at, now, window):
    """One satisfaction survey per customer within `window`, across every programme."""
    return last_survey_at is None or now - last_survey_at >= window


def is_survey(purpose):
    return RevisitPurpose(purpose) is RevisitPurpose.SATISFACTION


@dataclass(frozen=True)
class Completion:
    store_id: str
    owner_id: str
    due: int
    completed: int
    unreachable: int

    @property
    def rate(self):
        return round(self.completed / self.due, 4) if self.due else None


def completion(counts):
    """回访完成率 per (store, owner) from task counts [(store_id, owner_id, status, n)]:
    completed over everything that fell due (completed, unreachable, or still owed), so an
    unreachable customer lowers the rate."""
    totals = {}
    for store_id, owner_id, status, n in counts:
        if status not in COUNTED:
            continue
        due, done, unreached = totals.get((store_id, owner_id), (0, 0, 0))
        totals[(store_id, owner_id)] = (due + n, done + n * (status == RevisitTaskStatus.COMPLETED.value),
                                        unreached + n * (status == RevisitTaskStatus.UNREACHABLE.value))
    return [Completion(store, owner, *figures) for (store, owner), figures in sorted(totals.items())]


def local_day_bounds(day, tz):
    """[start, end) of a store-local day, in UTC."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    return start.astimezone(ZoneInfo("UTC")), (start + timedelta(days=1)).astimezone(ZoneInfo("UTC"))
