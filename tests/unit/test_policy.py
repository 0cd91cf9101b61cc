"""services/routing/policy.py: choosing the most specific policy, validation, storage form."""
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closeloop_shared.config import (
    DEFAULTS, SLA_FIRST_RESPONSE_SECONDS, SLA_REPORT_SECONDS, SLA_RESOLUTION_SECONDS,
    SLA_UPDATE_SECONDS, SLA_WARNING_LEAD_SECONDS)
from closeloop_shared.contract import (
    REFERRAL_CHANNELS, Category, Channel, ClockBasis, ClockName, CustomerTier, Severity)
from services.routing.policy import (
    DEFAULT_BUILTINS, CaseFacts, ClockSpec, Conditions, PolicyInvalid, SlaPolicy,
    builtin_policies, builtin_policies_from, choose, validate)

HOUR = timedelta(hours=1)
ORDINARY = [c for c in Channel if c.value not in REFERRAL_CHANNELS]
REFERRALS = [c for c in Channel if c.value in REFERRAL_CHANNELS]


def spec(name, hours, basis=ClockBasis.WALL, lead=None):
    return ClockSpec(ClockName(name), hours * HOUR, basis, None if lead is None else lead * HOUR)


BASIC = (spec("first_response", 4, lead=1), spec("resolution", 24, ClockBasis.BUSINESS))


def policy(policy_id="p", clocks=BASIC, priority=0, active=True, **conditions):
    return SlaPolicy(policy_id, 1, "a policy", Conditions(**conditions), clocks, priority, active)


def subset(values):
    return st.frozensets(st.sampled_from(values), max_size=3)


@st.composite
def stored_policies(draw):
    channels = draw(draw(st.sampled_from([subset(ORDINARY), st.frozensets(st.sampled_from(REFERRALS), min_size=1)])))
    report = (spec("report", 8),) if channels and channels <= frozenset(REFERRALS) else ()
    return policy(draw(st.text("abcdef", min_size=1, max_size=4)), BASIC + report,
                  priority=draw(st.integers(-2, 2)),
                  active=draw(st.booleans()), severities=draw(subset(list(Severity))),
                  categories=draw(subset(list(Category))), channels=channels,
                  tiers=draw(subset(list(CustomerTier))))


facts = st.builds(CaseFacts, st.sampled_from(list(Severity)), st.sampled_from(list(Category)),
                  st.sampled_from(list(Channel)), st.none() | st.sampled_from(list(CustomerTier)))


@settings(max_examples=200)
@given(st.lists(stored_policies().map(validate), max_size=8), facts, st.randoms())
def test_choose_always_answers_with_the_most_specific_match_whatever_the_order(policies, case, rnd):
    chosen = choose(policies, case)
    assert chosen.active and chosen.conditions.matches(case)
    rivals = [p for p in (*policies, *DEFAULT_BUILTINS) if p.active and p.conditions.matches(case)]
    assert all(chosen.conditions.specificity >= p.conditions.specificity for p in rivals)
    assert chosen.builtin == all(p.builtin for p in rivals
                                 if p.conditions.specificity == chosen.conditions.specificity)
    shuffled = list(policies)
    rnd.shuffle(shuffled)
    assert choose(shuffled, case) == chosen
    assert (chosen.clock(ClockName.REPORT) is not None) == case.referral


def test_specific_beats_general_then_priority_then_policy_id():
    hotline = CaseFacts("critical", "hygiene", "hotline", "key")
    catch_all = policy("all")
    critical = policy("critical", severities=frozenset({Severity.CRITICAL}))
    severe = policy("severe", severities=frozenset({Severity.HIGH, Severity.CRITICAL}), priority=9)
    key_critical = policy("key", severities=frozenset({Severity.CRITICAL}),
                          tiers=frozenset({CustomerTier.KEY}))
    assert choose([catch_all], hotline) is catch_all  # a stored catch-all beats the built-in one
    assert choose([catch_all, severe, critical], hotline) is critical  # narrower, whatever the priority
    assert choose([critical, key_critical], hotline) is key_critical
    assert choose([critical, key_critical], CaseFacts("critical", "hygiene", "hotline")) is critical
    twin = policy("critical-b", severities=frozenset({Severity.CRITICAL}), priority=1)
    assert choose([critical, twin], hotline) is twin
    assert choose([critical, policy("a-critical", severities=frozenset({Severity.CRITICAL}))],
                  hotline).policy_id == "a-critical"
    inactive = policy("off", active=False, severities=frozenset({Severity.CRITICAL}))
    assert choose([inactive], hotline).policy_id == "default"


def test_referrals_are_chosen_only_by_policies_naming_their_channel():
    media = CaseFacts("high", "service_quality", "media")
    assert choose([policy("all"), policy("high", severities=frozenset({Severity.HIGH}))],
                  media).policy_id == "default-referral"
    own = policy("media", channels=frozenset({Channel.MEDIA}), clocks=BASIC + (spec("report", 4),))
    assert choose([own], media) is own
    assert choose([own], CaseFacts("high", "service_quality", "consumer_association")).policy_id \
        == "default-referral"


def test_builtin_policies_follow_the_config():
    default, referral = DEFAULT_BUILTINS
    assert default.clock("first_response") == spec("first_response", 24, lead=2)
    assert default.clock("resolution") == spec("resolution", 48, lead=2)
    assert default.clock("update") == spec("update", 8, ClockBasis.BUSINESS, lead=2)
    assert default.clock("report") is None
    assert referral.clock("report") == spec("report", 8, lead=2)
    assert referral.conditions.channels == frozenset(REFERRALS)
    shrunk = builtin_policies({**DEFAULTS, SLA_FIRST_RESPONSE_SECONDS: 2, SLA_RESOLUTION_SECONDS: 4,
                               SLA_REPORT_SECONDS: 1, SLA_UPDATE_SECONDS: 3, SLA_WARNING_LEAD_SECONDS: 7200})
    assert shrunk[1].clock("report").warning_lead == timedelta(seconds=0.25)  # a quarter of a short clock
    from_config = builtin_policies_from({SLA_UPDATE_SECONDS: "3600"})
    assert from_config[0].clock("update").duration == HOUR
    assert from_config[0].clock("first_response") == default.clock("first_response")


@pytest.mark.parametrize("broken, field", [
    (policy(clocks=BASIC + (spec("update", 0),)), "clocks.2.duration_seconds"),
    (policy(clocks=BASIC + (spec("update", 24 * 400),)), "clocks.2.duration_seconds"),
    (policy(clocks=BASIC + (spec("update", 2, lead=2),)), "clocks.2.warning_lead_seconds"),
    (policy(clocks=BASIC + (spec("update", 2, lead=-1),)), "clocks.2.warning_lead_seconds"),
    (policy(clocks=BASIC + (spec("first_response", 2),)), "clocks.2.name"),
    (policy(clocks=BASIC + (spec("report", 8),)), "clocks.2.name"),
    (policy(clocks=BASIC[:1]), "clocks"),
    (policy(channels=frozenset({Channel.MEDIA})), "clocks"),  # a referral policy owes the report
    (policy(channels=frozenset({Channel.MEDIA, Channel.HOTLINE}),
            clocks=BASIC + (spec("report", 8),)), "conditions.channels"),
    (SlaPolicy("p", 1, "  ", Conditions(), BASIC), "name"),
])
def test_validation_names_the_field_at_fault(broken, field):
    with pytest.raises(PolicyInvalid) as refused:
        validate(broken)
    assert refused.value.field == field


def test_a_valid_policy_passes_and_survives_storage():
    referral = policy("cs", channels=frozenset(REFERRALS), tiers=frozenset({CustomerTier.SPECIAL}),
                      clocks=BASIC + (spec("report", 6, lead=1), spec("update", 4, ClockBasis.BUSINESS)))
    assert validate(referral) is referral
    assert SlaPolicy.from_doc(referral.to_doc()) == referral


@pytest.mark.parametrize("doc, field", [
    ({"conditions": {"severities": ["urgent"]}}, "conditions.severities"),
    ({"conditions": {"tiers": ["gold"]}}, "conditions.tiers"),
    ({"clocks": [{"name": "first_response", "basis": "lunar", "duration_seconds": 60}]}, "clocks.0.basis"),
    ({"clocks": [{"name": "reply", "basis": "wall", "duration_seconds": 60}]}, "clocks.0.name"),
    ({"clocks": [{"name": "update", "basis": "wall", "duration_seconds": "soon"}]},
     "clocks.0.duration_seconds"),
])
def test_unknown_values_are_refused_with_their_field(doc, field):
    with pytest.raises(PolicyInvalid) as refused:
        SlaPolicy.from_doc({"policy_id": "p", "name": "n", **doc})
    assert refused.value.field == field


def test_case_facts_take_the_strings_a_case_holds():
    facts = CaseFacts("low", "booking", "wechat", None)
    assert (facts.severity, facts.channel, facts.tier, facts.referral) == \
        (Severity.LOW, Channel.WECHAT, None, False)
    assert CaseFacts("low", "booking", "consumer_association").referral
    with pytest.raises(ValueError):
        CaseFacts("low", "booking", "carrier_pigeon")
