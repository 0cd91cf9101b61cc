"""SLA policies: which clocks a case owes, chosen by what the case is. Pure (no nameko,
no pymongo).

A policy names the conditions it applies to (severities, categories, channels, customer
tiers; an empty set means any) and its clocks (first response, keep-in-loop update,
resolution, and for referrals the written report), each counting wall time (the promise
to the customer) or the store's business time (the staff standard).

`choose` picks the most specific active policy that matches a case; the built-in
defaults (from config, `builtin_policies`) always take part, so every case gets one.
A referral (consumer association, media) is matched only by policies naming its
channel: only those carry the written-report clock it owes (seed 004: 8 hours), so a
general policy can never leave a referral without it.

Policies are versioned: a change is a new version, and a case keeps the clock specs it
was armed with (services/routing/clocks.py copies them, with the policy id and version,
onto each clock).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable, Mapping

from closeloop_shared.config import (
    DEFAULTS, SLA_FIRST_RESPONSE_SECONDS, SLA_REPORT_SECONDS, SLA_RESOLUTION_SECONDS,
    SLA_UPDATE_SECONDS, SLA_WARNING_LEAD_SECONDS, setting)
from closeloop_shared.contract import (
    REFERRAL_CHANNELS, Category, Channel, ClockBasis, ClockName, CustomerTier, Severity)

# Longer than any promise a chain makes; keeps deadline arithmetic far from overflow.
MAX_DURATION = timedelta(days=366)
# Every case owes these whatever the policy; a referral also owes the report.
REQUIRED_CLOCKS = (ClockName.FIRST_RESPONSE, ClockName.RESOLUTION)
DEFAULT_POLICY_ID = "default"
REFERRAL_POLICY_ID = "default-referral"
BUILTIN_VERSION = 0
# The built-in warning comes this long before each clock is due, or at a quarter of the
# clock's duration for clocks shorter than four times that (tests shrink durations to seconds).
WARNING_SHARE = 4


class PolicyInvalid(ValueError):
    """A policy that cannot be used: `field` is the body field at fault (HTTP 422)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field, self.message = field_name, message


def _enum(kind, value, field_name):
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise PolicyInvalid(field_name, f"unknown value {value!r}; must be one of: {allowed}") from None


def _enum_set(kind, values, field_name):
    return frozenset(_enum(kind, value, field_name) for value in values or ())


def _seconds(value: timedelta | None):
    return None if value is None else value.total_seconds()


def _duration(seconds, field_name):
    if seconds is None:
        return None
    try:
        return timedelta(seconds=float(seconds))
    except (TypeError, ValueError, OverflowError):
        raise PolicyInvalid(field_name, "must be a number of seconds") from None


@dataclass(frozen=True)
class CaseFacts:
    """What a policy can be chosen by. The tier is None when intake does not know the
    customer; a policy asking for tiers then does not match."""
    severity: Severity
    category: Category
    channel: Channel
    tier: CustomerTier | None = None

    def __post_init__(self):  # the case document holds plain strings
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "category", Category(self.category))
        object.__setattr__(self, "channel", Channel(self.channel))
        if self.tier is not None:
            object.__setattr__(self, "tier", CustomerTier(self.tier))

    @property
    def referral(self) -> bool:
        return self.channel.value in REFERRAL_CHANNELS


@dataclass(frozen=True)
class ClockSpec:
    """One deadline a policy sets: due `duration` after the case starts, counted as
    `basis` says; a warning `warning_lead` before it is due (None: no warning)."""
    name: ClockName
    duration: timedelta
    basis: ClockBasis
    warning_lead: timedelta | None = None

    def to_doc(self) -> dict:
        return {"name": self.name.value, "duration_seconds": self.duration.total_seconds(),
                "basis": self.basis.value, "warning_lead_seconds": _seconds(self.warning_lead)}

    @classmethod
    def from_doc(cls, doc: Mapping, field_name: str = "clocks") -> ClockSpec:
        return cls(name=_enum(ClockName, doc["name"], f"{field_name}.name"),
                   duration=_duration(doc["duration_seconds"], f"{field_name}.duration_seconds"),
                   basis=_enum(ClockBasis, doc["basis"], f"{field_name}.basis"),
                   warning_lead=_duration(doc.get("warning_lead_seconds"),
                                          f"{field_name}.warning_lead_seconds"))


@dataclass(frozen=True)
class Conditions:
    """Which cases a policy applies to: each set constrains one fact, empty = any.
    An empty channel set means any channel but the referral ones (see the module doc)."""
    severities: frozenset[Severity] = frozenset()
    categories: frozenset[Category] = frozenset()
    channels: frozenset[Channel] = frozenset()
    tiers: frozenset[CustomerTier] = frozenset()

    def _sets(self):
        return (self.severities, self.categories, self.channels, self.tiers)

    def matches(self, facts: CaseFacts) -> bool:
        if self.channels:
            if facts.channel not in self.channels:
                return False
        elif facts.referral:
            return False
        return ((not self.severities or facts.severity in self.severities)
                and (not self.categories or facts.category in self.categories)
                and (not self.tiers or facts.tier in self.tiers))

    @property
    def specificity(self) -> tuple[int, int]:
        """Larger is more specific: more facts constrained first, then fewer values
        allowed in all ({critical} is narrower than {high, critical})."""
        constrained = [values for values in self._sets() if values]
        return len(constrained), -sum(len(values) for values in constrained)

    @property
    def referral(self) -> bool:
        """Whether this applies to referral cases (only then may it set a report clock)."""
        return bool(self.channels) and all(c.value in REFERRAL_CHANNELS for c in self.channels)

    def to_doc(self) -> dict:
        return {name: sorted(member.value for member in values) for name, values in (
            ("severities", self.severities), ("categories", self.categories),
            ("channels", self.channels), ("tiers", self.tiers))}

    @classmethod
    def from_doc(cls, doc: Mapping | None) -> Conditions:
        doc = doc or {}
        return cls(severities=_enum_set(Severity, doc.get("severities"), "conditions.severities"),
                   categories=_enum_set(Category, doc.get("categories"), "conditions.categories"),
                   channels=_enum_set(Channel, doc.get("channels"), "conditions.channels"),
                   tiers=_enum_set(CustomerTier, doc.get("tiers"), "conditions.tiers"))


@dataclass(frozen=True)
class SlaPolicy:
    """One version of a policy. `priority` breaks ties between equally specific
    policies (higher wins, then the smaller policy_id); built-in defaults lose every
    tie to a stored policy."""
    policy_id: str
    version: int
    name: str
    conditions: Conditions
    clocks: tuple[ClockSpec, ...]
    priority: int = 0
    active: bool = True
    builtin: bool = False

    def clock(self, name: ClockName) -> ClockSpec | None:
        return next((spec for spec in self.clocks if spec.name is ClockName(name)), None)

    def to_doc(self) -> dict:
        return {"policy_id": self.policy_id, "version": self.version, "name": self.name,
                "conditions": self.conditions.to_doc(),
                "clocks": [spec.to_doc() for spec in self.clocks],
                "priority": self.priority, "active": self.active, "builtin": self.builtin}

    @classmethod
    def from_doc(cls, doc: Mapping) -> SlaPolicy:
        """A policy from storage or a validated request body (enum values checked here
        too, with the field at fault); not yet checked as a whole: see `validate`."""
        return cls(policy_id=doc["policy_id"], version=int(doc.get("version", 1)), name=doc["name"],
                   conditions=Conditions.from_doc(doc.get("conditions")),
                   clocks=tuple(ClockSpec.from_doc(spec, f"clocks.{index}")
                                for index, spec in enumerate(doc.get("clocks") or ())),
                   priority=int(doc.get("priority", 0)), active=bool(doc.get("active", True)),
                   builtin=bool(doc.get("builtin", False)))


def validate(policy: SlaPolicy) -> SlaPolicy:
    """The policy if it can be used, else PolicyInvalid naming the field at fault."""
    if not policy.name.strip():
        raise PolicyInvalid("name", "must not be blank")
    conditions = policy.conditions
    if conditions.channels and not conditions.referral and any(
            c.value in REFERRAL_CHANNELS for c in conditions.channels):
        raise PolicyInvalid("conditions.channels",
                            "referral channels (consumer_association, media) need a policy of "
                            "their own: they owe a written report the other channels do not")
    seen = set()
    for index, spec in enumerate(policy.clocks):
        where = f"clocks.{index}"
        if spec.name in seen:
            raise PolicyInvalid(f"{where}.name", f"clock {spec.name.value} appears twice")
        seen.add(spec.name)
        if not timedelta(0) < spec.duration <= MAX_DURATION:
            raise PolicyInvalid(f"{where}.duration_seconds",
                                f"must be positive and at most {MAX_DURATION.days} days")
        if spec.warning_lead is not None and not timedelta(0) < spec.warning_lead < spec.duration:
            raise PolicyInvalid(f"{where}.warning_lead_seconds",
                                "must be positive and shorter than the clock's duration")
        if spec.name is ClockName.REPORT and not conditions.referral:
            raise PolicyInvalid(f"{where}.name", "a report clock applies only to a policy for "
                                "referral channels (consumer_association, media)")
    for name in REQUIRED_CLOCKS + ((ClockName.REPORT,) if conditions.referral else ()):
        if name not in seen:
            raise PolicyInvalid("clocks", f"a {name.value} clock is required"
                                + (" on a referral policy" if name is ClockName.REPORT else ""))
    return policy


def _rank(policy: SlaPolicy):
    """Sort key, best first: most specific, stored before built-in, highest priority,
    then policy_id (deterministic whatever order the policies come in)."""
    constrained, breadth = policy.conditions.specificity
    return -constrained, -breadth, policy.builtin, -policy.priority, policy.policy_id


def choose(policies: Iterable[SlaPolicy], facts: CaseFacts,
           defaults: tuple[SlaPolicy, ...] | None = None) -> SlaPolicy:
    """The most specific active policy matching `facts`. `defaults` (the built-in
    policies from config; those of DEFAULTS if None) take part too and between them
    match every case, so there is always an answer."""
    candidates = [p for p in (*policies, *(defaults or DEFAULT_BUILTINS))
                  if p.active and p.conditions.matches(facts)]
    return min(candidates, key=_rank)


def _spec(name, seconds, basis, lead_seconds):
    duration = timedelta(seconds=float(seconds))
    lead = min(timedelta(seconds=float(lead_seconds)), duration / WARNING_SHARE)
    return ClockSpec(name, duration, basis, lead if lead > timedelta(0) else None)


def builtin_policies(settings: Mapping) -> tuple[SlaPolicy, SlaPolicy]:
    """The policies every case falls back to, from config (`settings` maps config keys
    to values; closeloop_shared.config DEFAULTS for the defaults):
    - default: first response within SLA_FIRST_RESPONSE_SECONDS (24 h) and resolution
      within SLA_RESOLUTION_SECONDS (48 h), wall time: the promise to the customer; a
      keep-in-loop update every SLA_UPDATE_SECONDS (8 h) of the store's open time: the
      staff standard;
    - default-referral, the same plus the written report within SLA_REPORT_SECONDS
      (8 h, wall) for consumer-association and media referrals.
    Each warns SLA_WARNING_LEAD_SECONDS (2 h) before it is due (a quarter of a shorter clock)."""
    lead = settings[SLA_WARNING_LEAD_SECONDS]
    common = (
        _spec(ClockName.FIRST_RESPONSE, settings[SLA_FIRST_RESPONSE_SECONDS], ClockBasis.WALL, lead),
        _spec(ClockName.UPDATE, settings[SLA_UPDATE_SECONDS], ClockBasis.BUSINESS, lead),
        _spec(ClockName.RESOLUTION, settings[SLA_RESOLUTION_SECONDS], ClockBasis.WALL, lead))
    referral = Conditions(channels=frozenset(Channel(c) for c in REFERRAL_CHANNELS))
    return (
        validate(SlaPolicy(DEFAULT_POLICY_ID, BUILTIN_VERSION, "Default", Conditions(), common,
                           builtin=True)),
        validate(SlaPolicy(REFERRAL_POLICY_ID, BUILTIN_VERSION, "Consumer-association and media referrals",
                           referral, common + (_spec(ClockName.REPORT, settings[SLA_REPORT_SECONDS],
                                                     ClockBasis.WALL, lead),), builtin=True)))


def builtin_policies_from(config: Mapping) -> tuple[SlaPolicy, SlaPolicy]:
    """builtin_policies for a nameko config (unset keys take their DEFAULTS)."""
    return builtin_policies({key: setting(config, key) for key in (
        SLA_FIRST_RESPONSE_SECONDS, SLA_RESOLUTION_SECONDS, SLA_REPORT_SECONDS,
        SLA_UPDATE_SECONDS, SLA_WARNING_LEAD_SECONDS)})


DEFAULT_BUILTINS = builtin_policies(DEFAULTS)
