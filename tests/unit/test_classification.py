"""services/routing/classification.py and triage/: the trained category model (with
confidence, runner-up, deciding words, model version) and the severity rules."""
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closeloop_shared.contract import Category, Severity
from closeloop_shared.events import CATEGORIES, CHANNELS, SEVERITIES
from services.routing import classification
from services.routing.classification import MODEL, SUBMITTER, classify, severity
from services.routing.triage import features, model, severity as rules

MODEL_CATEGORIES = tuple(c.value for c in Category if c is not Category.OTHER)


# -- the vocabularies -------------------------------------------------------------------

def test_the_event_vocabularies_are_the_contract_enums():
    assert CATEGORIES == tuple(c.value for c in Category)
    assert SEVERITIES == tuple(s.value for s in Severity)


def test_the_model_answers_exactly_the_eight_categories():
    assert set(classification.load().categories.labels) == set(MODEL_CATEGORIES)


# -- features ---------------------------------------------------------------------------

def test_chinese_gives_character_unigrams_and_bigrams_and_english_words_and_stems():
    found = features.features("烫伤了 Burned badly")
    assert {"烫", "烫伤", "伤了", "w:burned", "s:burne", "b:burned badly"} <= set(found)


def test_full_width_and_case_are_normalised():
    assert features.features("ＢＵＲＮ １２３１５") == features.features("burn 12315")


def test_domain_concepts_are_features_too():
    assert "k:money" in features.features("会员卡余额被扣了两次")


# -- classify ---------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    ("房间里的毛巾有一股异味,床单上还有别人的头发,太不卫生了", "hygiene"),
    ("办了三个月的祛斑疗程,一点效果都没有,钱白花了", "product_efficacy"),
    ("美容师手法太重,按摩力度完全不对,一看就不专业", "technician_skill"),
    ("前台接待态度很差,一直给我推销办卡,不买就给脸色看", "staff_attitude"),
    ("结账时被多收了两百块,明明说好的价格,现在乱收费", "price"),
    ("做光子嫩肤的仪器用到一半坏了,房间空调也不制冷", "equipment"),
    ("提前一周预约了周六下午,到店后又让我排队等了一个多小时", "booking"),
    ("The towels were dirty and the room had a bad smell.", "hygiene"),
    ("The receptionist was rude and very pushy.", "staff_attitude"),
    ("My appointment was cancelled at the last minute and I waited an hour.", "booking"),
])
def test_plain_complaints_get_their_category_with_confidence(content, expected):
    decision = classify(content)
    assert decision.category == expected and decision.source == MODEL
    assert decision.confidence > 0.5
    assert decision.runner_up != expected and decision.runner_up in MODEL_CATEGORIES
    assert 0 <= decision.runner_up_confidence <= decision.confidence


def test_every_decision_is_explained_and_versioned():
    decision = classify("会员卡余额被莫名扣了两次钱")
    assert decision.features and all(isinstance(f, str) for f in decision.features)
    assert decision.model_version == classification.load().version
    assert decision.model_version.startswith("triage-")
    view = decision.as_dict()
    assert [s["category"] for s in view["suggestions"]] == [decision.category, decision.runner_up]


def test_explicit_category_wins_over_the_model():
    decision = classify("美容师手法太重,按摩力度完全不对,一看就不专业", "price")
    assert (decision.category, decision.source, decision.confidence) == ("price", SUBMITTER, 1.0)
    assert decision.runner_up == "technician_skill"  # what the model would have said
    assert not decision.needs_triage(0.99)


@pytest.mark.parametrize("explicit", [None, ""])
def test_missing_explicit_category_falls_back_to_the_model(explicit):
    assert classify("房间里的毛巾很脏", explicit).source == MODEL


def test_text_with_nothing_to_go_on_is_unsure_and_so_triaged_not_other():
    decision = classify("")
    assert decision.category in MODEL_CATEGORIES
    assert decision.needs_triage(0.5)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gets_a_model_category_and_probabilities_that_add_up(content):
    scored = classification.load().categories.score(content)
    assert scored.ranking[0][0] in MODEL_CATEGORIES
    assert abs(sum(p for _, p in scored.ranking) - 1) < 1e-3
    assert [p for _, p in scored.ranking] == sorted((p for _, p in scored.ranking), reverse=True)


def test_the_artefact_loads_in_well_under_a_second_and_classifies_in_milliseconds():
    started = time.perf_counter()
    loaded = classification.from_artefact(model.read())
    assert time.perf_counter() - started < 1.0
    text = "做红外线理疗的时候灯头突然变得特别烫，把我腰上烫红了一块，起了水泡" * 3
    started = time.perf_counter()
    for _ in range(100):
        loaded.classify(text)
        loaded.severity("hotline", text)
    assert (time.perf_counter() - started) / 100 < 0.010


# -- severity ---------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["consumer_association", "media"])
def test_referrals_are_critical_whatever_they_say(channel):
    assert severity(channel, "想咨询一下营业时间") == "critical"
    assert "referral_channel" in rules.assess(channel, "").reasons


@pytest.mark.parametrize("content", [
    "做激光的时候能量调太高，脸上烧出好几个水泡",
    "红外线灯把我腰上烫红了一块",
    "射频仪器一直有焦味，做完脸上火辣辣的",
    "宝宝的黄疸值一直在升高，护理师每天说正常",
    "用了修复面霜，第二天整张脸又红又肿",
    "足浴盆漏电，脚一放进去就被电麻了",
    "The hot stones left two blisters on my back.",
    "I had an allergic reaction to the mask, hives all over my neck.",
])
def test_injuries_and_safety_incidents_are_high_or_above_whatever_the_category(content):
    assert severity("wechat", content) in ("high", "critical")


@pytest.mark.parametrize("content", [
    "不给说法我就打12315", "我要去消协投诉", "准备找媒体曝光你们", "已经联系了记者",
    "我会起诉你们", "我的律师会联系你们", "I'm speaking to my lawyer.",
])
def test_threats_of_legal_action_or_exposure_are_high(content):
    assert severity("hotline", content) == "high"


def test_harm_with_a_threat_or_a_hospital_stay_is_critical():
    assert severity("hotline", "宝宝脐带红肿流脓住院了") == "critical"
    assert severity("wechat", "做完脸上起了水泡，我要找律师") == "critical"


def test_a_demand_is_medium_and_the_rest_low():
    assert severity("hotline", "多收了我两百块，要求退款") == "medium"
    assert severity("survey", "价格有点贵，性价比不高") == "low"


def test_english_threat_words_match_only_where_a_word_starts():
    assert rules.assess("email", "There was an issue with the towels").level == "low"
    assert "threat" not in rules.assess("email", "she pressed hard on my shoulders").reasons


@pytest.mark.parametrize("content", [
    "美容师用刮痧板刮脸太用力，脸颊被刮破了皮",          # an injuring action and its result
    "汗蒸房里太热，我老婆晕过去了",                      # loss of consciousness
    "插座外壳裂了，手一碰就被电了一下",                  # electric shock
    "月嫂洗澡没托好，宝宝滑进水里呛了好几口",            # a newborn put at risk
    "剖腹产伤口渗液，后来又去医院清创",                  # a mother's wound
    "The wax was so hot it left my skin raw and peeling.",
])
def test_harm_is_found_by_kind_not_by_listed_example(content):
    assert rules.assess("wechat", content).level in ("high", "critical")


@pytest.mark.parametrize("content", [
    "做完检查没有过敏，也没有红肿，就是效果一般",
    "No rash, no burns, the facial just did nothing for my skin.",
])
def test_denied_harm_is_no_harm(content):
    assert "harm" not in rules.assess("survey", content).reasons


def test_feared_harm_or_a_hazard_is_high_but_never_critical():
    feared = rules.assess("hotline", "工具不消毒，担心交叉感染，我要去12315")
    assert feared.level == "high" and "感染" in feared.evidence
    stain = rules.assess("hotline", "毛巾上都是血，我要曝光你们")
    assert stain.level == "high"


def test_a_hospital_named_without_an_injury_never_makes_a_case_critical():
    # mothers come to a postpartum centre from hospital
    assert severity("hotline", "我在医院住院生完孩子，说好的接送车没来，我要发到网上") == "high"
    assert severity("hotline", "宝宝黄疸住院了") == "critical"


def test_discomfort_with_a_threat_is_high_an_injury_with_a_threat_critical():
    assert severity("hotline", "按完一直疼，不给说法我就找律师") == "high"
    assert severity("hotline", "按完腰扭伤了，不给说法我就找律师") == "critical"


@pytest.mark.parametrize("content", [
    "休息区的杯子上有口红印", "烫发的效果不好，一边卷一边直", "去红血丝的项目没效果", "退房时拎着大包小包没人帮",
])
def test_words_that_only_look_like_harm_are_not_harm(content):
    assert "harm" not in rules.assess("survey", content).reasons


@pytest.mark.parametrize("content", [
    "The stylist cut my hair far too short.", "They only had sparkling water.", "The numbers on my bill are wrong.",
])
def test_english_harm_words_match_whole_words_where_a_stem_would_mislead(content):
    assert "harm" not in rules.assess("email", content).reasons


@pytest.mark.parametrize("content, threat", [
    ("The pressure was far too hard and it hurt.", False),
    ("My exposed skin was left uncovered the whole time.", False),
    ("I will go to the press.", True),

    ("在大众点评上预约了，到店说没有预约", False),
    ("美甲师一边做一边刷抖音", False),
    ("光子仪做到一半就报警停机", False),
    ("再不退钱我就发到小红书上", True),
    ("再不解释我就报警", True),
])
def test_a_platform_or_an_alarm_is_no_threat_publishing_or_the_police_is(content, threat):
    assert ("threat" in rules.assess("wechat", content).reasons) is threat


def test_the_model_harm_head_catches_harm_the_lexicon_lacks():
    assessed = rules.assess("wechat", "一句没有伤害词的话", harm_probability=0.9)
    assert assessed.level == "high" and "harm" in assessed.reasons


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(CHANNELS), st.text(max_size=200))
def test_severity_is_always_one_of_the_four(channel, content):
    assert severity(channel, content) in SEVERITIES
