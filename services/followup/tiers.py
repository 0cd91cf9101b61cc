"""Customer tiers (seed 002: 重点客户、常规客户、潜在客户和特殊客户) by configurable rules on
spend and visit frequency over a window; a manual override wins and is audited.
Pure: no nameko, no pymongo.

Rules come from config (FOLLOWUP_TIER_RULES, per chain): a customer is KEY when spend
or visits in the window reach the key thresholds, REGULAR when they reach the regular
ones, else POTENTIAL. Pregnant and postpartum customers are SPECIAL (they need
particular care, whatever they spend)."""
from dataclasses import dataclass
from datetime import datetime, timedelta

from closeloop_shared.contract import CustomerTier

SPECIAL_NEEDS_OF_CARE = frozenset({"pregnant", "postpartum"})


@dataclass(frozen=True)
class Visit:
    at: datetime
    spend_fen: int


@dataclass(frozen=True)
class TierRules:
    window_days: int = 365
    key_spend_fen: int = 2_000_000      # 20,000 yuan a year
    key_visits: int = 24                # twice a month
    regular_spend_fen: int = 300_000    # 3,000 yuan
    regular_visits: int = 4             # once a quarter

    @classmethod
    def from_config(cls, value):
        return cls(**{k: int(v) for k, v in (value or {}).items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Override:
    tier: CustomerTier
    by: str           # the staff member who set it
    reason: str
    at: datetime


def computed_tier(visits, special_needs, rules, now):
    if SPECIAL_NEEDS_OF_CARE & set(special_needs):
        return CustomerTier.SPECIAL
    since = now - timedelta(days=rules.window_days)
    recent = [v for v in visits if since < v.at <= now]
    spend, count = sum(v.spend_fen for v in recent), len(recent)
    if spend >= rules.key_spend_fen or count >= rules.key_visits:
        return CustomerTier.KEY
    if spend >= rules.regular_spend_fen or count >= rules.regular_visits:
        return CustomerTier.REGULAR
    return CustomerTier.POTENTIAL


def effective_tier(computed, override):
    """The manual override wins over the rules while it stands."""
    return override.tier if override is not None else computed


def audit_entry(previous, override):
    """The audit line of a manual override (kept with the profile, never overwritten)."""
    return {"from": previous.value, "to": override.tier.value, "by": override.by,
            "reason": override.reason, "at": override.at}
