"""What a summary infers rather than extracts: the customer's sentiment (with its evidence), why the bot
handed off, and a suggested next step. Small bilingual lexicons and ordered rules an operator can read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.assist.summary_view import Labels, SessionView, joined, label_of, masked, terms_of
from bot.types import Language

SentimentLabel = Literal["negative", "neutral", "positive"]
SENTIMENT_LABELS: tuple[SentimentLabel, ...] = ("negative", "neutral", "positive")
THRESHOLD = 0.3  # |score| at which a conversation stops being neutral

# Chinese has no word boundaries: terms match as substrings, the longer negative ones ("不满意") first and
# blanked out so that the positive term inside them ("满意") does not count as well.
_NEGATIVE_ZH = (
    "不满意", "不满", "太慢", "慢死", "失望", "生气", "愤怒", "投诉", "差评", "糟糕", "垃圾", "骗", "坑人", "离谱",
    "无语", "烦死", "太差", "差劲", "破损", "坏了", "还没到", "没收到", "怎么还", "不好", "退钱", "受够", "气死",
)  # fmt: skip
_POSITIVE_ZH = ("谢谢", "感谢", "太好了", "满意", "不错", "很好", "很棒", "给力", "好评", "解决了", "辛苦了")
_NEGATIVE_EN = (
    "terrible", "awful", "horrible", "worst", "disappointed", "disappointing", "angry", "upset", "unacceptable",
    "ridiculous", "useless", "broken", "damaged", "late", "still not", "never arrived", "hasn't arrived",
    "not arrived", "complain", "complaint", "scam", "frustrated", "frustrating", "annoyed", "bad", "poor", "slow",
    "furious", "waste",
)  # fmt: skip
_POSITIVE_EN = (
    "thanks", "thank you", "great", "perfect", "awesome", "helpful", "excellent", "appreciate", "love", "resolved",
    "wonderful", "brilliant",
)  # fmt: skip
_NEGATED = re.compile(r"(?:\bnot|\bnever|\bno|n't)\s+(?:\w+\s+)?$")  # "not helpful", "wasn't very helpful"

# Latin terms match whole words; a trailing "*" matches any ending ("deliver*": delivered, delivery).
_SELF_HARM = ("不想活", "自杀", "轻生", "suicid*", "kill myself", "end my life")
_LEGAL = (
    "起诉", "律师", "法院", "12315", "消协", "消费者协会", "工商", "市场监管", "曝光", "报警", "lawyer*", "sue",
    "suing", "lawsuit*", "legal action", "court", "regulator*", "ombudsman", "police", "the press", "the media",
    "trading standards",
)  # fmt: skip
_DELIVERY = (
    "物流", "快递", "配送", "发货", "到货", "没到", "送到", "运单", "签收", "派送", "deliver*", "shipping", "shipped",
    "arriv*", "courier*", "parcel*", "package*", "tracking", "shipment*", "dispatch*",
)  # fmt: skip
_REFUND = ("退款", "退钱", "refund*", "money back")


@dataclass(frozen=True, slots=True)
class Sentiment:
    label: SentimentLabel = "neutral"
    score: float = 0.0  # -1 (angry) .. 1 (delighted)
    evidence: tuple[str, ...] = ()


_EVIDENCE: dict[Language, dict[str, str]] = {
    "zh": {
        "anger": "愤怒标记：{}", "risk": "风险标记：{}", "blocked": "有 {} 条消息因不当内容被拦截",
        "negative": "负面用语：{}", "positive": "正面用语：{}", "down": "点踩 {} 次", "up": "点赞 {} 次",
        "csat": "满意度评分 {}/5", "fallback": "{} 条消息未被理解",
    },
    "en": {
        "anger": "flagged angry: {}", "risk": "flagged risk: {}", "blocked": "{} message(s) blocked as abusive",
        "negative": "negative words: {}", "positive": "positive words: {}", "down": "{} thumbs down",
        "up": "{} thumbs up", "csat": "CSAT {}/5", "fallback": "{} message(s) not understood",
    },
}  # fmt: skip


def mentions(text: str, terms: tuple[str, ...]) -> bool:
    """Whether lower-cased `text` holds one of `terms` (Chinese as substrings, Latin as words or stems)."""
    for term in terms:
        if not term.isascii():
            if term in text:
                return True
        elif re.search(rf"\b{re.escape(term.rstrip('*'))}" + ("" if term.endswith("*") else r"\b"), text):
            return True
    return False


def lexicon_terms(text: str) -> tuple[list[str], list[str]]:
    """(negative, positive) lexicon terms in lower-cased `text`, each once, in the order the customer used
    them; a negated positive ("not helpful") is negative."""
    found: dict[str, tuple[int, bool]] = {}  # term -> (first position, negative)
    for term in _NEGATIVE_ZH:
        if (at := text.find(term)) >= 0:
            found.setdefault(term, (at, True))
            text = text.replace(term, " " * len(term))  # same length: positions stay valid
    for term in _POSITIVE_ZH:
        if (at := text.find(term)) >= 0:
            found.setdefault(term, (at, False))
    for term in (*_NEGATIVE_EN, *_POSITIVE_EN):
        for match in re.finditer(rf"\b{re.escape(term)}\b", text):
            negated = term in _POSITIVE_EN and _NEGATED.search(text[: match.start()]) is not None
            found.setdefault(f"not {term}" if negated else term, (match.start(), term in _NEGATIVE_EN or negated))
    ordered = sorted(found.items(), key=lambda item: item[1][0])
    return [t for t, (_, neg) in ordered if neg], [t for t, (_, neg) in ordered if not neg]


def sentiment_of(view: SessionView, language: Language) -> Sentiment:
    """A score from the flags, the lexicons, feedback and misunderstandings; each reason is kept as evidence."""
    say = _EVIDENCE[language]
    score, evidence = 0.0, []

    def add(points: float, key: str, detail: object) -> None:
        nonlocal score
        score += points
        evidence.append(say[key].format(detail))

    for category, points in (("anger", -0.5), ("risk", -0.4)):
        terms = [t for f in view.flags if f.category == category for t in terms_of(f)]
        if any(f.category == category for f in view.flags):
            add(points, category, joined(dict.fromkeys(terms), language) or category)
    if blocked := sum(1 for b in view.blocked if b.stage == "input"):
        add(-0.3, "blocked", blocked)
    negative, positive = lexicon_terms(view.customer_text())
    if negative:
        add(-min(0.15 * len(negative), 0.45), "negative", joined(negative[:4], language))
    if positive:
        add(min(0.15 * len(positive), 0.45), "positive", joined(positive[:4], language))
    thumbs = [f.rating for f in view.feedback if f.kind == "thumbs"]
    if down := thumbs.count(-1):
        add(-min(0.25 * down, 0.5), "down", down)
    if up := thumbs.count(1):
        add(min(0.15 * up, 0.3), "up", up)
    if view.fallbacks >= 2:  # being misunderstood again and again frustrates, whatever the words
        add(-0.15, "fallback", view.fallbacks)
    csat = [f.rating for f in view.feedback if f.kind == "csat"]
    if csat:
        add((csat[-1] - 3) * 0.25, "csat", csat[-1])
    score = round(max(-1.0, min(1.0, score)), 2)
    label: SentimentLabel = "negative" if score <= -THRESHOLD else "positive" if score >= THRESHOLD else "neutral"
    return Sentiment(label, score, tuple(evidence))


_REASONS: dict[Language, dict[str, str]] = {
    "zh": {
        "human": "顾客要求转人工", "requested": "“{}”类问题按规则转人工", "risk": "风险提示：{}",
        "anger": "顾客情绪激动：{}",
        "fallback": "机器人连续多次未能理解顾客", "safety": "安全检查触发转人工（{}）",
        "paused": "动作 {} 暂停了机器人",
    },
    "en": {
        "human": "The customer asked for a human agent", "requested": "“{}” questions go to a human agent",
        "risk": "Risk flagged: {}", "anger": "The customer is angry: {}",
        "fallback": "The bot failed to understand the customer several times in a row",
        "safety": "A safety check escalated ({})", "paused": "The action {} paused the bot",
    },
}  # fmt: skip


def handoff_text(view: SessionView, labels: Labels, language: Language) -> str:
    """Why the conversation went to a human, readable; empty when it did not."""
    if view.handoff is None:
        return ""
    say = _REASONS[language]
    kind, _, detail = view.handoff.partition(":")
    if kind == "requested":
        return (
            say["human"]
            if "human" in detail or "agent" in detail
            else say["requested"].format(label_of(detail, labels, language))
        )
    if kind in ("risk", "anger"):
        terms = [t for f in view.flags if f.category == kind for t in terms_of(f)]
        return say[kind].format(joined(dict.fromkeys(terms), language) or detail)
    if kind == "repeated_fallback":
        return say["fallback"]
    if kind == "safety":
        return say["safety"].format(detail)
    if view.handoff.startswith("paused by action "):
        return say["paused"].format(view.handoff.removeprefix("paused by action "))
    return masked(view.handoff)


_STEPS: dict[Language, dict[str, str]] = {
    "zh": {
        "self_harm": "紧急：顾客流露轻生念头，请立即按危机处理流程关怀回应，并通知主管。",
        "legal": "升级给主管处理：顾客提到法律途径、监管部门或媒体，请谨慎答复并保留记录。",
        "return": "与顾客确认{order}的退货申请{reason}，并告知退款到账时间。",
        "returned": "跟进{order}已提交的退货，确认取件进度并告知退款到账时间。",
        "delivery": "查询{order}的物流状态并联系快递公司，然后告知顾客预计送达时间。",
        "refund": "查询{order}的退款进度，并告知顾客到账时间。",
        "misunderstood": "机器人没能理解顾客的消息：请阅读上面的原话，确认顾客的具体需求。",
        "done": "无需跟进：顾客对答复表示满意。",
        "soothe": "先向顾客致歉并安抚情绪，再询问还需要什么帮助。",
        "default": "询问顾客还需要什么帮助。",
        "order": "订单 {} ", "no_order": "订单（请先向顾客索取订单号）", "reason": "（原因：{}）",
    },
    "en": {
        "self_harm": "Urgent: the customer may be at risk of self-harm; respond with care now, follow the crisis "
        "procedure and alert a supervisor.",
        "legal": "Escalate to a supervisor: the customer mentions legal action, a regulator or the press; answer "
        "carefully and keep a record.",
        "return": "Confirm the return of {order}{reason} with the customer and tell them when the refund arrives.",
        "returned": "Follow up on the return filed for {order}: confirm the pick-up and tell the customer when the "
        "refund arrives.",
        "delivery": "Check the logistics status of {order} and contact the courier, then tell the customer when to "
        "expect the parcel.",
        "refund": "Check the refund status of {order} and tell the customer when the money arrives.",
        "misunderstood": "The bot did not understand the customer: read their messages above and confirm what "
        "they need.",
        "done": "No follow-up needed: the customer was satisfied with the answers.",
        "soothe": "Apologise and acknowledge the frustration, then ask what the customer still needs.",
        "default": "Ask what the customer still needs.",
        "order": "order {}", "no_order": "the order (ask for the order number first)", "reason": " (reason: {})",
    },
}  # fmt: skip


def next_step_of(view: SessionView, sentiment: Sentiment, language: Language) -> str:
    """The first rule that applies, from the most urgent (a risk) to the default question."""
    say = _STEPS[language]
    text = view.customer_text() + " " + " ".join(t for f in view.flags for t in terms_of(f)).lower()
    order_id = view.slots.get("order_id")
    order = say["order"].format(masked(str(order_id))) if order_id else say["no_order"]
    intents = set(view.intents)
    returns = [run for run in view.forms if "return" in run.name]
    if mentions(text, _SELF_HARM):
        return say["self_harm"]
    if any(f.category == "risk" for f in view.flags) or mentions(text, _LEGAL):
        return say["legal"]
    if returns and returns[-1].status == "completed":
        return say["returned"].format(order=order)
    if returns or "request_return" in intents:
        reason = view.slots.get("return_reason")
        return say["return"].format(order=order, reason=say["reason"].format(masked(str(reason))) if reason else "")
    unhappy = "complain" in intents or sentiment.score < 0  # "快递怎么还没到" is unhappy enough
    if unhappy and (mentions(text, _DELIVERY) or "check_order_status" in intents):
        return say["delivery"].format(order=order)
    if "ask_refund" in intents or mentions(text, _REFUND):
        return say["refund"].format(order=order)
    if view.handoff == "repeated_fallback":
        return say["misunderstood"]
    if view.handoff is None and sentiment.label == "positive":
        return say["done"]
    return say["soothe"] if sentiment.label == "negative" else say["default"]
