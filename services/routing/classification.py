"""Category and severity of a complaint from its channel and words (zh-CN first)."""
import re

# Keywords per category, Chinese then English. Order matters only for ties: the
# earlier category wins.
KEYWORDS = {
    "hygiene": ("卫生", "不干净", "脏", "消毒", "毛巾", "床单", "异味", "头发", "蟑螂",
                "hygiene", "dirty", "unclean", "towel", "smell", "sanit"),
    "product_efficacy": ("效果", "没效果", "没有效果", "无效", "过敏", "红肿", "长痘", "刺痛", "脱皮", "产品",
                         "effect", "no result", "allerg", "rash", "product"),
    "technician_skill": ("手法", "技术", "技师", "美容师", "调理师", "弄伤", "烫伤", "不专业", "力度",
                         "technique", "technician", "therapist", "unprofessional", "hurt"),
    "staff_attitude": ("态度", "不耐烦", "冷淡", "推销", "强买", "骂", "脸色", "不理",
                       "attitude", "rude", "impolite", "pushy", "upsell"),
    # A refund demand is a remedy the customer asks for, not what went wrong: no
    # refund words here.
    "price": ("价格", "太贵", "乱收费", "多收", "扣费", "收费", "办卡", "价钱",
              "price", "expensive", "overcharg", "charge"),
    "equipment": ("仪器", "设备", "机器", "故障", "坏了", "空调", "热水",
                  "equipment", "machine", "device", "broken"),
    "booking": ("预约", "改期", "排队", "等了", "爽约", "取消", "到店没人", "时间冲突",
                "booking", "appointment", "reschedul", "waited", "cancel"),
    "service_quality": ("服务", "怠慢", "敷衍", "体验差", "不满意", "环境",
                        "service", "experience", "neglect"),
}
FALLBACK_CATEGORY = "other"

# Words that mean the customer may be hurt: such a complaint is never routine.
HARM_WORDS = ("过敏", "红肿", "烫伤", "弄伤", "感染", "出血", "疼", "受伤", "起泡", "刺痛",
              "allerg", "burn", "injur", "infection", "bleed", "swollen", "hurt", "pain",
              "blister")
ANGER_WORDS = ("投诉", "曝光", "12315", "消协", "律师", "起诉", "退款", "媒体",
               "lawyer", "sue ", "lawsuit", "expose", "refund")
REFERRAL_CHANNELS = ("consumer_association", "media")


def _hits(word, text):
    """Chinese words count wherever they stand; an English word (or stem, like
    "allerg") only where a word starts, so "sue" never fires inside "issue"."""
    if word.isascii() and word[0].isalpha():
        return len(re.findall(r"\b" + re.escape(word), text))
    return text.count(word)


def _any(words, text):
    return any(_hits(word, text) for word in words)


def classify(content, explicit=None):
    """The sender's category wins; otherwise the category with most keyword hits."""
    if explicit:
        return explicit
    text = content.lower()
    best, best_hits = FALLBACK_CATEGORY, 0
    for category, words in KEYWORDS.items():
        hits = sum(_hits(word, text) for word in words)
        if hits > best_hits:
            best, best_hits = category, hits
    return best


def severity(channel, content):
    """critical: consumer-association or media referral; high: possible harm to the
    customer; medium: a threat to go public or a refund demand; low: the rest."""
    if channel in REFERRAL_CHANNELS:
        return "critical"
    text = content.lower() + " "
    if _any(HARM_WORDS, text):
        return "high"
    if _any(ANGER_WORDS, text):
        return "medium"
    return "low"
