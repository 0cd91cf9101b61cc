"""Severity rules: who must be woken up. Pure: no nameko, no pymongo.

  critical  a consumer-association or media referral (whatever it says), or an injury
            together with a threat to go to court, the authorities or the press, or an
            injury that put someone in hospital
  high      harm to a person (injury, burn, allergic reaction, infection, a newborn or a
            mother put at risk, an electrical or fire hazard), a hazard or a feared harm,
            or a threat of legal action or exposure (12315, 消协, 媒体, 记者, 曝光, 起诉, 律师 ...)
  medium    a demand: refund, compensation, an apology, "给个说法", a formal complaint
  low       the rest

Harm is found two ways, and either suffices: a lexicon of harm written by kind of harm
(below), and the trained harm head of the model (probability >= HARM_THRESHOLD), which
catches the ways of saying it the lexicon lacks. Critical needs an injury in the
lexicon's words: not the model's hunch alone, not a hazard, a feared harm or discomfort
(those make a case high). A harm word that is denied does not count. Recall matters more
than precision here: a needlessly high case costs a supervisor a look, a missed burn
costs a customer.
"""
import re
from dataclasses import dataclass
from functools import lru_cache

from closeloop_shared.contract import Severity
from services.routing.triage.features import normalise

REFERRAL_CHANNELS = ("consumer_association", "media")
HARM_THRESHOLD = 0.15  # 5-fold CV on the training part (1,532): the highest with harm recall 1.0 (9.7% false alarms)

# Harm to a person, by what happened (Chinese, and English word starts: "burn" matches
# burned, burns, burning). Written from a taxonomy of harms, not from examples: what a
# body suffers (burns, wounds, bruises, skin reactions, infection, systemic symptoms),
# what befalls a newborn or a mother, accidents (falls, blows, electric shocks, fire),
# and the care that follows (doctor, hospital, medicine).
_BURNS = ("烫伤", "烫红", "烫出", "烫掉", "烫得", "烫到", "烫破", "被烫", "烧伤", "烧到", "灼伤", "灼热", "灼痛",
          "灼烧", "烫手", "起泡", "水泡", "水疱", "血泡", "起了泡", "火辣辣", "发烫", "焦了", "烤伤")
_WOUNDS = ("受伤", "弄伤", "伤口", "伤到", "裂开", "撕裂", "流血", "出血", "流了血", "出了血", "渗血", "好多血", "很多血", "都是血", "见血",
           "血流", "破皮", "掉皮", "掉一块皮", "掉了一块皮", "留疤", "疤痕", "结痂", "骨折", "扭伤", "拉伤",
           "扭到", "扯到", "崴", "脱臼", "缝针", "缝了", "剪到肉", "见肉", "硬结", "硬块", "毁容", "烂脸",
           "脸烂了", "激素脸", "失明", "睁不开", "麻木", "没知觉", "失去知觉")
# an injuring action and what it left: 刮破, 擦伤, 撞青, 砸肿... (every pairing)
_ACTIONS = "烫烧灼刮划割擦磨抓蹭扎刺夹砸撞磕摔碰掐扯勒咬"
_RESULTS = ("伤", "破", "肿", "青", "紫", "出血", "出泡")
_MARKS = ("淤", "瘀", "青紫", "紫印", "紫痕", "紫了", "青一块", "红印", "红斑", "红疙瘩", "红了一",
          "眼睛红", "眼睛肿", "眼睛疼", "进了眼睛", "进眼睛", "弄进我眼睛", "眼泪直流")
_SKIN = ("过敏", "皮炎", "疹", "风团", "瘙痒", "痒得", "又痒", "发痒", "刺痛", "剧痛", "疼得", "痛得", "疼痛",
         "还疼", "还在疼", "一直疼", "疼了好", "疼到", "作痛", "好疼", "很疼", "特别疼", "疼死",
         "痛死", "红肿", "肿了", "肿成", "肿起", "肿得", "大包", "鼓包",
         "溃烂", "坏死", "脱皮", "蜕皮", "色沉", "返黑", "下垂", "面瘫")
_INFECTION = ("感染", "发炎", "炎症", "化脓", "流脓", "脓包", "脓", "渗液", "毛囊炎", "甲沟炎", "乳腺炎")
_BODY = ("晕倒", "昏倒", "晕厥", "晕过去", "昏过去", "昏迷", "休克", "虚脱", "头晕", "眼前发黑", "抽搐", "抽了一下",
         "呼吸困难", "喘不过气", "喘不上气", "透不过气", "胸闷", "心慌", "窒息", "吞咽困难", "栓塞", "腹泻",
         "拉肚子", "吃坏", "肠胃炎", "肚子疼", "胃疼", "发烧", "发热", "高烧", "呕吐", "中毒", "抽筋", "惊厥",
         "便血", "血丝")
_NEWBORN_MOTHER = ("呛奶", "呛水", "呛到", "呛了", "呛进", "脸发紫", "脸都紫", "发紫", "嘴唇紫", "黄疸", "蓝光",
                   "没托住", "没托好", "滑进水", "掉下来", "掉下去", "坠床", "摔下", "喂错", "红屁股", "尿布疹",
                   "着凉", "感冒", "肺炎", "侧切", "恶露", "大出血", "血崩", "堵奶", "翻下", "滚下",
                   "坠落", "轻生", "自杀", "想不开")
_ACCIDENTS = ("摔倒", "摔伤", "摔了一跤", "摔在", "摔到", "跌倒", "跌伤", "滑倒", "绊倒", "砸到", "砸在", "撞到",
              "夹住", "夹到", "卡住手", "卡进", "推倒", "推了我一", "推搡", "动手打", "打了我一", "扇了我")
_ELECTRIC_FIRE = ("漏电", "触电", "电到", "电麻", "麻手", "被电", "电了一下", "电击", "电流突然", "火花", "打火", "冒烟",
                  "焦味", "烧焦", "着火", "起火", "短路", "裸露", "电线外露", "跳闸")
_CARE = ("抢救", "急诊", "住院", "送医", "就医", "医院", "看医生", "看病", "医生说", "皮肤科", "骨科", "诊断", "拍片", "拍了片",
         "清创", "消炎药", "抗生素", "药膏", "输液", "吊水", "打点滴", "救护车", "打120")
_ENGLISH = ("burn", "blister", "scald", "injur", "hurt", "bleed", "blood", "bruis", "fractur", "sprain", "gash",
            "graze", "welt", "cut my skin", "cut my finger", "cut my scalp", "cut my ear", "cut my toe", "got cut ",
            "a cut on", "scratched my", "infect", "inflam", "allerg", "rash", "hives",
            "itch", "swell", "swollen", "pus ", "pustule", "oozing", "weeping", "abrasion", "scar ", "scars",
            "scarring", "peeling", "raw skin", "painful", "in pain", "agony", "numb ", "numbness", "bump on", "fever", "vomit", "diarrh", "food poisoning", "faint", "dizzy",
            "passed out", "collapsed", "couldn't breathe", "could not breathe", "chok", "fell ", "slipped",
            "tripped", "electric shock", "a shock", "shocked me", "got shocked", "electrocut", "spark ", "sparks", "sparked", "smoke", "caught fire", "on fire", "hospital", "a&e", "doctor", "gp ", "dermatolog", "antibiotic", "antihistamin", "stitches",
            "folliculitis", "jaundice", "ambulance")
HARM = (_BURNS + _WOUNDS + tuple(a + r for a in _ACTIONS for r in _RESULTS if a + r != "刺青") + _MARKS + _SKIN + _INFECTION
        + _BODY + _NEWBORN_MOTHER + _ACCIDENTS + _ELECTRIC_FIRE + _CARE + _ENGLISH)
# Discomfort rather than injury (pain, itching, redness, a cold): harm enough for high,
# not enough, even with a threat, to wake someone up (critical needs another harm word).
MILD = ("刺痛", "疼得", "痛得", "疼痛", "还疼", "还在疼", "一直疼", "疼了好", "疼到", "作痛", "好疼", "很疼", "特别疼",
        "疼死", "痛死", "火辣辣", "发烫", "灼热", "烫手", "瘙痒", "痒得", "又痒", "发痒", "红印", "红斑", "红了一",
        "眼睛红", "眼睛疼", "眼泪直流", "着凉", "感冒", "头晕", "胸闷", "心慌", "肚子疼", "胃疼", "麻木", "hurt",
        "itch", "painful", "in pain", "numb ", "numbness", "a shock", "bump on")
_MILD_WORDS = {word.strip() for word in MILD}  # as the hits name them
# Blood on a thing (a towel, the sheets, a tool) is a stain: a hazard, not an injury.
STAINABLE = ("毛巾", "浴巾", "床单", "被子", "被套", "枕", "床上", "地上", "地板", "墙上", "工具", "剪刀", "刀片", "针头",
             "盆", "towel", "sheet", "pillow", "robe", "floor", "tool")
_CLAUSE = re.compile(r"[^，。,.!！?？；;]*")  # up to the end of a clause
# Words that contain a harm word but say something else (口红印 is lipstick, 烫发 a
# perm, 红血丝 a skin condition, 大包小包 luggage): blanked out before the harm words are looked for.
HOMOGRAPHS = ("口红", "红血丝", "大包小包", "烫发", "烫头", "烫染", "烫卷", "烫直", "刺青", "吐槽")
# A risk rather than an injury (a hazard, a stain, "担心感染"): high, never critical.
HAZARD = ("危险", "安全隐患", "隐患", "血迹", "血渍", "血印", "有血", "变质", "发霉的食", "unsafe", "danger", "hazard", "risk")
# Said of a harm word, these mean it did not happen ("没有过敏", "no rash") ...
NEGATION = re.compile(r"(没有|没|未|无|不|并无|并没有|从没|no|not|never|without|didn't|wasn't|weren't)\W{0,1}$")
# ... or is only feared ("担心感染", "交叉感染风险", "risk of infection").
FEARED_BEFORE = re.compile(r"(担心|害怕|怕|万一|以防|会不会|容易|可能会|交叉|risk of|chance of|could)\W{0,1}$")
FEARED_AFTER = re.compile(r"^\W{0,1}(的?风险|的?隐患|的可能|怎么办)")
# Threats to go to court, the authorities or the press. A platform named alone (小红书,
# 大众点评: where people also book and read) is no threat; publishing on it is; a
# device's 报警 is an alarm, a customer's 报警 a call to the police.
_PLATFORMS = ("网上", "抖音", "微博", "小红书", "大众点评", "点评", "朋友圈", "黑猫投诉")
_PUBLISH = ("发到", "发在", "发上", "发", "挂到", "挂在", "晒到", "写到")
THREAT = (
    "12315", "12345", "消协", "消费者协会", "市场监管", "工商局", "卫生监督", "卫生局", "卫健委", "药监",
    "举报", "要报警", "会报警", "我就报警", "去报警", "已经报警", "报了警", "打110", "警察", "派出所", "律师", "起诉",
    "法院", "法庭", "告你们", "打官司", "诉讼", "媒体", "记者", "电视台", "报社", "曝光", "黑猫投诉", "写差评",
    *(verb + platform for verb in _PUBLISH for platform in _PLATFORMS),
    "lawyer", "solicitor", "sue ", "suing", "lawsuit", "legal action", "in court ", "to court ", "police",
    "authorities", "health department", "consumer association", "journalist",
    "the press ", "the media", "on social media", "expose ", "report your", "report the",
)
# Harm that put someone in hospital.
# (Not 入院: a 月子会所 calls entering it 入院; not "admitted" alone: she admitted the mistake.)
SERIOUS = ("住院", "抢救", "icu", "重症", "hospitalised", "hospitalized", "admitted to hospital",
           "emergency room")
# What a customer asks for.
DEMAND = (
    "退款", "退钱", "退费", "退卡", "退货", "退还", "赔偿", "补偿", "赔", "说法", "解释", "道歉", "投诉",
    "给个交代", "负责", "要求", "不认", "不付", "必须",
    "refund", "compensat", "apolog", "reimburs", "complain", "explain", "unacceptable", "demand",
    "credit me", "reverse", "i expect", "i want", "i'd like",
)


@lru_cache(maxsize=None)
def _pattern(word):
    """Where `word` occurs. An English entry matches where a word starts ("burn" in
    burned); one ending in a space only as a whole word ("the press " is not "the
    pressure", "numb " not "numbers"). Chinese anywhere."""
    stem = word.rstrip()
    if not (word.isascii() and word[0].isalpha()):
        return re.compile(re.escape(word))
    return re.compile(r"\b" + re.escape(stem) + (r"(?![a-z])" if stem != word else ""))


def _hits(words, text):
    return [word.strip() for word in words if word.rstrip() in text and _pattern(word).search(text)]


def _on_a_thing(text, at):
    """Whether the clause around position `at` names something that can be stained."""
    start = max(text.rfind(mark, 0, at) for mark in "，。,.!！?？；;") + 1
    clause = _CLAUSE.match(text, start).group()
    return any(thing in clause for thing in STAINABLE)


def _harm_hits(text):
    """(harm words said to have happened, harm words denied or only feared). A word
    counts as happened if at least one of its mentions is neither negated nor feared."""
    happened, feared = [], []
    for homograph in HOMOGRAPHS:
        text = text.replace(homograph, " " * len(homograph))
    for word in HARM:
        if word.rstrip() not in text:  # the cheap test first: most words are absent
            continue
        starts = [m.start() for m in _pattern(word).finditer(text)]
        if not starts:
            continue
        affirmed = [i for i in starts if not NEGATION.search(text[max(0, i - 12):i])]
        real = [i for i in affirmed if not FEARED_BEFORE.search(text[max(0, i - 12):i])
                and not FEARED_AFTER.search(text[i + len(word.rstrip()):i + len(word.rstrip()) + 6])
                and not (("血" in word or "blood" in word) and _on_a_thing(text, i))]
        if real:
            happened.append(word.strip())
        elif affirmed:
            feared.append(word.strip())
    return happened, feared


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
    harm_words, feared_words = _harm_hits(text)
    hazard_words = _hits(HAZARD, text) + feared_words
    threat_words = _hits(THREAT, text)
    serious_words, demand_words = _hits(SERIOUS, text), _hits(DEMAND, text)
    harmed = bool(harm_words or hazard_words) or (
        harm_probability is not None and harm_probability >= HARM_THRESHOLD)
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
    # critical wakes people up: it needs an injury in so many words, not only the model's
    # hunch, a hazard or discomfort
    # the care itself (医院, 住院) is no injury: in a postpartum centre most mothers come
    # from hospital; critical needs the injury named besides it
    injured = [word for word in harm_words if word not in _MILD_WORDS and word not in _CARE]
    if "referral_channel" in reasons or (injured and (threat_words or serious_words)):
        level = Severity.CRITICAL
    elif harmed or threat_words:
        level = Severity.HIGH
    elif demand_words:
        level = Severity.MEDIUM
    else:
        level = Severity.LOW
    evidence = tuple(dict.fromkeys(harm_words + hazard_words + threat_words + serious_words
                                   + demand_words))[:8]
    return SeverityAssessment(level.value, tuple(reasons), evidence,
                              None if harm_probability is None else round(harm_probability, 4))
