"""services/routing/classification.py: category and severity from channel and words."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared.events import CATEGORIES, CHANNELS, SEVERITIES
from services.routing.classification import classify, severity

KEYWORD_CATEGORIES = (
    "service_quality", "hygiene", "product_efficacy", "staff_attitude", "price",
    "technician_skill", "equipment", "booking",
)


# -- classify -------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    ("房间里的毛巾有一股异味,床单上还有别人的头发,太不卫生了", "hygiene"),
    ("办了三个月的祛斑疗程,一点效果都没有,钱白花了", "product_efficacy"),
    ("用了店里推荐的精华,脸上开始长痘还脱皮", "product_efficacy"),
    ("美容师手法太重,按摩力度完全不对,一看就不专业", "technician_skill"),
    ("前台接待态度很差,一直给我推销办卡,不买就给脸色看", "staff_attitude"),
    ("结账时被多收了两百块,明明说好的价格,现在乱收费", "price"),
    ("做光子嫩肤的仪器用到一半坏了,房间空调也不制冷", "equipment"),
    ("提前一周预约了周六下午,到店后又让我排队等了一个多小时", "booking"),
    ("整个过程服务很敷衍,体验差,非常不满意", "service_quality"),
])
def test_chinese_complaints_map_to_their_category(content, expected):
    assert classify(content) == expected


@pytest.mark.parametrize("content, expected", [
    ("The towels were dirty and the room had a bad smell.", "hygiene"),
    ("The serum gave no result at all and I got a rash.", "product_efficacy"),
    ("The therapist was unprofessional and her technique was poor.", "technician_skill"),
    ("The receptionist was rude and very pushy.", "staff_attitude"),
    ("I was overcharged: the price on the bill was not the one I was quoted.", "price"),
    ("The machine was broken halfway through my facial.", "equipment"),
    ("My appointment was cancelled at the last minute and I waited an hour.", "booking"),
    ("The service was a poor experience overall.", "service_quality"),
])
def test_english_complaints_map_to_their_category(content, expected):
    assert classify(content) == expected


def test_english_keywords_match_whatever_the_case():
    assert classify("The TOWEL was DIRTY") == "hygiene"
    assert classify("RUDE and PUSHY staff") == "staff_attitude"


@pytest.mark.parametrize("content", [
    "停车场的指示牌不清楚,找了半天入口",
    "Where can I park my car?",
    "",
])
def test_text_without_keywords_is_other(content):
    assert classify(content) == "other"


def test_explicit_category_wins_over_keywords():
    # Every word here says technician_skill, but the sender chose price.
    assert classify("美容师手法太重,按摩力度完全不对,一看就不专业", "price") == "price"
    assert classify("房间里的毛巾很脏", "booking") == "booking"


@pytest.mark.parametrize("explicit", [None, ""])
def test_missing_explicit_category_falls_back_to_keywords(explicit):
    assert classify("房间里的毛巾很脏", explicit) == "hygiene"


def test_most_keyword_hits_wins():
    # hygiene: 毛巾, 脏 (2); equipment: 仪器, 坏了, 机器, 故障 (4)
    assert classify("毛巾有点脏,仪器坏了,机器还一直故障") == "equipment"


def test_a_tie_goes_to_the_earlier_category():
    # hygiene: 毛巾, 脏 (2); equipment: 仪器, 坏了 (2): hygiene is listed first.
    assert classify("毛巾很脏,仪器也坏了") == "hygiene"


def test_repeated_keywords_count_each_time():
    # staff_attitude: 态度 x3; price: 价格, 收费 (2)
    assert classify("态度差,态度冷,态度恶劣;价格和收费也有问题") == "staff_attitude"


@given(st.text(max_size=200))
def test_classify_always_returns_a_known_category(content):
    assert classify(content) in CATEGORIES


@given(st.text(max_size=200), st.sampled_from(CATEGORIES))
def test_any_explicit_category_is_returned_verbatim(content, explicit):
    assert classify(content, explicit) == explicit


# -- severity -------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["consumer_association", "media"])
@pytest.mark.parametrize("content", ["预约时间被改了", "脸上过敏红肿", "我要退款", "fine"])
def test_referrals_are_critical_whatever_they_say(channel, content):
    assert severity(channel, content) == "critical"


@pytest.mark.parametrize("content", [
    "做完果酸换肤后脸上过敏红肿,到现在还没消",
    "美容师操作不当,把我的手臂烫伤了",
    "拔罐后皮肤起泡,还有点感染",
    "I had an allergic reaction and my cheeks were swollen.",
    "The laser left a burn on my arm.",
    "I was injured during the massage.",
])
def test_possible_harm_is_high(content):
    assert severity("hotline", content) == "high"


def test_harm_outranks_threats():
    content = "脸被烫伤了,不给退款我就找媒体曝光"
    assert severity("wechat", content) == "high"


@pytest.mark.parametrize("content", [
    "收费和宣传的不一样,我要求退款",
    "再不处理我就打12315",
    "我已经咨询了律师,准备起诉你们",
    "这件事我会在网上曝光",
    "I want a REFUND for the whole course.",
    "My lawyer will contact you.",
])
def test_refund_demands_and_threats_are_medium(content):
    assert severity("web", content) == "medium"


@pytest.mark.parametrize("content", [
    "等了半小时才有人接待,体验很一般",
    "The room was a bit cold.",
])
def test_everything_else_is_low(content):
    assert severity("in_store", content) == "low"


@given(st.sampled_from(CHANNELS), st.text(max_size=100))
def test_only_referral_channels_are_critical(channel, content):
    level = severity(channel, content)
    assert level in SEVERITIES
    assert (level == "critical") == (channel in ("consumer_association", "media"))


@pytest.mark.parametrize("content", [
    "There was an issue with my booking time",
    "The tissue box in the room was empty",
])
def test_english_words_containing_sue_are_not_threats(content):
    assert severity("web", content) == "low"


@pytest.mark.parametrize("content", [
    "按摩时按得我脖子很疼",
    "The therapist hurt my neck during the massage",
    "Terrible pain in my back after the treatment",
    "做完脱毛后手臂起了水泡,还刺痛",
])
def test_common_harm_words_are_high(content):
    assert severity("hotline", content) == "high"
