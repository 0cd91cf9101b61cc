"""Severity rules: who must be woken up. Pure: no nameko, no pymongo.

  critical  a consumer-association or media referral (whatever it says), or harm to a
            person together with a threat to go to court, the authorities or the press,
            or harm that put someone in hospital
  high      harm to a person (injury, burn, allergic reaction, infection, a newborn or a
            mother put at risk, an electrical or fire hazard), or a threat of legal
            action or exposure (12315, 消协, 媒体, 记者, 曝光, 起诉, 律师 ...)
  medium    a demand: refund, compensation, an apology, "给个说法", a formal complaint
  low       the rest

Harm is found two ways, and either suffices: a broad lexicon of harm words (below), and
the trained harm head of the model (probability >= HARM_THRESHOLD), which catches the
ways of saying it the lexicon lacks. Critical needs the harm in the lexicon's words
(the model's hunch alone makes a case high, not critical). Recall matters more than precision here: a
needlessly high case costs a supervisor a look, a missed burn costs a customer.
"""
import re
from dataclasses import dataclass

from closeloop_shared.contract import Severity
from services.routing.triage.features import normalise

REFERRAL_CHANNELS = ("consumer_association", "media")
HARM_THRESHOLD = 0.25  # 5-fold CV on the training part: harm recall 0.975 at 6% false alarms

# Harm to a person: what happened to the body, and safety hazards. Chinese and English
# (English entries are word starts: "burn" matches burned, burns, burning).
HARM = (
    # injuries and burns
    "烫伤", "烫红", "烫出", "烫掉", "烫得", "烧伤", "灼伤", "灼热", "起泡", "水泡", "血泡", "起了泡",
    "受伤", "弄伤", "刺伤", "划伤", "割伤", "擦伤", "骨折", "扭伤", "拉伤", "淤青", "瘀青", "青紫",
    "流血", "出血", "渗血", "血迹斑斑", "好多血", "很多血", "流了血", "出了血", "都是血", "见血",
    "淤", "紫印", "紫了", "烫到", "烫手", "扯到", "夹住", "夹伤", "伤口", "裂开", "留疤", "疤痕增生", "破皮", "掉一块皮", "掉了一块皮",
    "晕倒", "昏倒", "晕厥", "头晕", "呼吸困难", "吞咽困难", "抽搐", "面瘫", "下垂",
    "坏死", "栓塞", "感染", "发炎", "化脓", "流脓", "脓包", "红肿", "肿了", "肿成", "过敏", "皮炎",
    "疹", "风团", "荨麻疹", "瘙痒难忍", "刺痛", "剧痛", "疼得", "疼痛", "火辣辣", "发烫", "溃烂",
    "腹泻", "拉肚子", "发烧", "发热", "呕吐", "中毒", "甲沟炎", "毛囊炎",
    # newborns and mothers
    "呛奶", "呛水", "呛到", "脸发紫", "脸都紫", "发紫", "黄疸", "蓝光", "摔倒", "摔伤", "摔下", "跌倒", "滑倒", "坠床",
    "抢救", "急诊", "住院", "送医", "就医", "医院", "骨科", "皮肤科", "看病", "医生说", "诊断",
    # hazards
    "漏电", "触电", "电到", "电麻", "麻手", "火花", "打火", "冒烟", "焦味", "烧焦", "着火", "起火", "跳闸",
    "砸到", "砸伤", "危险", "安全隐患",
    "burn", "blister", "scald", "injur", "hurt", "bleed", "blood", "bruis", "fractur", "infect",
    "inflam", "allerg", "rash", "hives", "swell", "swollen", "pus ", "pustule", "oozing", "weeping", "abrasion",
    "scar ", "scars", "scarring", "hospital", "doctor", "gp ", "dermatolog", "antibiotic", "antihistamin", "folliculitis",
    "faint", "dizzy", "spark", "smoke", "shock", "electrocut", "collapsed", "unsafe", "danger",
)
# Threats to go to court, the authorities or the press.
THREAT = (
    "12315", "12345", "消协", "消费者协会", "市场监管", "工商", "卫生监督", "卫生局", "卫健委", "药监",
    "举报", "报警", "警察", "派出所", "律师", "起诉", "法院", "法庭", "告你们", "打官司", "诉讼",
    "媒体", "记者", "电视台", "报社", "曝光", "发到网上", "发网上", "发抖音", "发微博", "小红书", "微博",
    "抖音", "大众点评", "黑猫投诉",
    "lawyer", "solicitor", "sue ", "suing", "lawsuit", "legal action", "in court", "to court", "police",
    "authorities", "health department", "consumer association", "journalist",
    "the press", "media", "expose", "report your", "report the",
)
# Harm that put someone in hospital.
SERIOUS = ("住院", "抢救", "入院", "icu", "重症", "hospitalised", "hospitalized", "admitted", "emergency room")
# What a customer asks for.
DEMAND = (
    "退款", "退钱", "退费", "退卡", "退货", "退还", "赔偿", "补偿", "赔", "说法", "解释", "道歉", "投诉",
    "给个交代", "负责", "要求", "不认", "不付", "必须",
    "refund", "compensat", "apolog", "reimburs", "complain", "explain", "unacceptable", "demand",
    "credit me", "reverse", "i expect", "i want", "i'd like",
)


def _hits(words, text):
    found = []
    for word in words:
        if word.isascii() and word[0].isalpha():
            if re.search(r"\b" + re.escape(word), text):
                found.append(word.strip())
        elif word in text:
            found.append(word)
    return found


@dataclass(frozen=True)
class SeverityAssessment:
    level: str                  # closeloop_shared.contract.Severity value
    reasons: tuple              # ("referral_channel" | "harm" | "threat" | "hospital" | "demand", ...)
    evidence: tuple             # the words that fired
    harm_probability: float | None = None

    def as_dict(self):
        return {"level": self.level, "reasons": list(self.reasons), "evidence": list(self.evidence),
                "harm_probability": self.harm_probability}


def assess(channel, content, harm_probability=None):
    """The severity of a complaint from its channel and words (and the model's harm
    probability, when there is a model)."""
    text = normalise(content) + " "
    harm_words, threat_words = _hits(HARM, text), _hits(THREAT, text)
    serious_words, demand_words = _hits(SERIOUS, text), _hits(DEMAND, text)
    harmed = bool(harm_words) or (harm_probability is not None and harm_probability >= HARM_THRESHOLD)
    reasons = []
    if channel in REFERRAL_CHANNELS:
        reasons.append("referral_channel")
    if harmed:
        reasons.append("harm")
    if threat_words:
        reasons.append("threat")
    if harm_words and serious_words:
        reasons.append("hospital")
    if demand_words:
        reasons.append("demand")
    # critical wakes people up: it needs the harm in so many words, not only the model's hunch
    if "referral_channel" in reasons or (harm_words and (threat_words or serious_words)):
        level = Severity.CRITICAL
    elif harmed or threat_words:
        level = Severity.HIGH
    elif demand_words:
        level = Severity.MEDIUM
    else:
        level = Severity.LOW
    evidence = tuple(dict.fromkeys(harm_words + threat_words + serious_words + demand_words))[:8]
    return SeverityAssessment(level.value, tuple(reasons), evidence,
                              None if harm_probability is None else round(harm_probability, 4))
