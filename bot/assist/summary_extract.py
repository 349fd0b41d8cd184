"""What a summary takes from the conversation as it was: the customer's problem in their own words, the key
facts (slots, entities, amounts and dates), and what the bot answered or did. Every text is masked."""

from __future__ import annotations

import re

from bot.assist.summary_view import FormRun, SessionView, masked, trimmed
from bot.events import BotUttered, UserUttered
from bot.types import ACTION_CLARIFY, FALLBACK_INTENT, REQUESTED_SLOT, Domain, Entity, Language, SlotValue

PROBLEM_WIDTH = 120  # display columns per quoted message (60 Han characters)
REPLY_WIDTH = 80
MAX_FACTS = 8
MAX_TRIED = 6

# Messages that carry no problem of their own: greetings, yes and no, "a human please".
_SOCIAL = frozenset(
    {"greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "request_human", "cancel", "out_of_scope"}
)
# Informative maybe (a return reason), but never what the conversation is about.
_NOT_A_TOPIC = _SOCIAL | {FALLBACK_INTENT, "inform"}
_WORD = re.compile(r"[A-Za-z]{2,}")
_HAN = re.compile(r"[\u3400-\u9fff]")
_STOPWORDS = frozenset(
    ("the", "a", "an", "is", "are", "was", "it", "i", "my", "me", "you", "your", "to", "of", "and", "or", "for", "on",
     "in", "at", "this", "that", "please", "hi")
)  # fmt: skip
_AMOUNT = re.compile(r"[¥￥$]\s?\d+(?:\.\d+)?|\d+(?:\.\d+)?\s?(?:元|块钱|块|RMB|yuan|dollars?)", re.IGNORECASE)
_DATE = re.compile(r"\b20\d{2}-\d{1,2}-\d{1,2}\b|\d{1,2}月\d{1,2}[日号]")

_FACT_LABELS: dict[str, tuple[str, str]] = {  # slot or entity name -> (zh, en)
    "order_id": ("订单号", "Order number"), "product": ("商品", "Product"), "amount": ("金额", "Amount"),
    "return_reason": ("退货原因", "Return reason"), "return_id": ("退货单号", "Return number"),
    "price": ("价格", "Price"), "refund_amount": ("退款金额", "Refund amount"), "date": ("日期", "Date"),
    "tracking": ("运单号", "Tracking number"), "tracking_number": ("运单号", "Tracking number"),
    "quantity": ("数量", "Quantity"), "size": ("尺码", "Size"), "color": ("颜色", "Colour"),
    "address": ("地址", "Address"), "city": ("城市", "City"), "phone": ("电话", "Phone"),
    "email": ("邮箱", "E-mail"), "name": ("姓名", "Name"), "payment_method": ("付款方式", "Payment method"),
}  # fmt: skip
_YES_NO = {"zh": ("是", "否"), "en": ("yes", "no")}

_FORM_LABELS: dict[str, tuple[str, str]] = {
    "order_form": ("查询订单", "order lookup"),
    "return_form": ("退货申请", "return request"),
}
_FORM_STATUS = {
    "zh": {"in_progress": "进行中", "completed": "已完成", "cancelled": "已取消"},
    "en": {"in_progress": "in progress", "completed": "completed", "cancelled": "cancelled"},
}
_TRIED: dict[Language, dict[str, str]] = {
    "zh": {
        "faq": "用常见问题解答", "kg": "用商品知识库解答", "doc": "用文档解答", "api": "用业务系统数据解答",
        "generated": "生成了回答", "replied": "回复", "form": "引导填写“{}”：{}", "rejected": "（{} 次输入无效）",
        "suggested": "推荐了相近问题：{}", "clarify": "请顾客澄清：{}", "no_answer": "知识库中没有找到答案",
        "offer": "提出转接人工", "refused": "拒答了 {} 条违规消息", "fallback": "{} 条消息未能理解（已请顾客换个说法）",
        "failed": "处理出错 {} 次",
    },
    "en": {
        "faq": "Answered from the FAQ", "kg": "Answered from the product knowledge graph",
        "doc": "Answered from the documents", "api": "Answered from the order system",
        "generated": "Generated an answer", "replied": "Replied", "form": "Ran the {} form: {}",
        "rejected": " ({} invalid answer(s))", "suggested": "Suggested similar questions: {}",
        "clarify": "Asked the customer to choose: {}", "no_answer": "Found no answer in the knowledge base",
        "offer": "Offered a human agent", "refused": "Refused {} message(s) that broke the rules",
        "fallback": "Did not understand {} message(s) (asked to rephrase)", "failed": "Failed {} time(s) with an error",
    },
}  # fmt: skip

# Replies that are small talk, or that another line of the summary already reports.
_QUIET = re.compile(
    r"^(?:kefu:)?utter_(?:greet|goodbye|thank|iamabot|anything_else|affirm_ack|deny_ack|handoff|form_cancelled|"
    r"ask_rephrase|default|ask_\w+)$"
)


def problem_of(view: SessionView) -> tuple[str, str]:
    """(the customer's most informative message or two, masked and trimmed; the main intent)."""
    scored = [(_informative(m), i, m) for i, m in enumerate(view.user) if not m.text.startswith("/")]
    scored = [s for s in scored if s[0] > 0]
    if not scored:
        last = next((m for m in reversed(view.user) if not m.text.startswith("/")), None)
        return (trimmed(masked(last.text), PROBLEM_WIDTH) if last else ""), _main_intent(view, None)
    ranked = sorted(scored, key=lambda s: (-s[0], -s[1]))
    chosen = [ranked[0]] + [s for s in ranked[1:2] if s[0] >= 0.5 * ranked[0][0]]
    messages = [m for _, _, m in sorted(chosen, key=lambda s: s[1])]
    text = " / ".join(trimmed(masked(m.text), PROBLEM_WIDTH) for m in messages)
    return text, _main_intent(view, ranked[0][2])


def _informative(message: UserUttered) -> float:
    """Content in the message beyond entities (an order number alone says little), discounted for small talk."""
    nlu = message.nlu
    text = nlu.text if nlu is not None else message.text  # the entities' offsets index the NLU's text
    for entity in sorted(nlu.entities if nlu else (), key=lambda e: -e.start):
        if 0 <= entity.start < entity.end <= len(text):
            text = text[: entity.start] + text[entity.end :]
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOPWORDS]
    content = len(_HAN.findall(text)) / 1.5 + len(words)
    if nlu is not None and nlu.intent in _SOCIAL:
        content *= 0.3
    elif nlu is not None and nlu.intent == "complain":
        content *= 1.5  # the complaint usually is the problem
    return content


def _main_intent(view: SessionView, best: UserUttered | None) -> str:
    if best is not None and best.nlu is not None and best.nlu.intent not in _NOT_A_TOPIC:
        return best.nlu.intent
    substantive = [i for i in view.intents if i not in _NOT_A_TOPIC]
    return max(reversed(substantive), key=substantive.count) if substantive else ""


def fact_label(name: str, language: Language) -> str:
    zh, en = _FACT_LABELS.get(name, (name.replace("_", " "), name.replace("_", " ").capitalize()))
    return zh if language == "zh" else en


def key_facts_of(view: SessionView, domain: Domain, language: Language) -> tuple[tuple[str, str], ...]:
    """(label, masked value): slots in the domain's order, then entities no slot holds, then amounts and dates
    the customer wrote. Bookkeeping slots (language, requested_slot, `_private`) are left out."""
    order = {name: i for i, name in enumerate(domain.slots)}
    facts: dict[tuple[str, str], None] = {}
    for name, value in sorted(view.slots.items(), key=lambda kv: order.get(kv[0], len(order))):
        if name != REQUESTED_SLOT and not name.startswith("_"):
            facts[(name, _value(value, language))] = None
    held = {value for _, value in facts}
    for message in view.user:
        for entity in message.nlu.entities if message.nlu else ():
            value = masked(entity.value)
            if value not in held and (entity.name, entity.value) not in view.rejected and not _in_mask(entity, message):
                facts[(entity.name, value)] = None
                held.add(value)
    for message in view.user:
        text = masked(message.text)
        for name, pattern in (("amount", _AMOUNT), ("date", _DATE)):
            for found in pattern.findall(text):
                if not any(found in value for value in held):
                    facts[(name, found.strip())] = None
                    held.add(found.strip())
    return tuple((fact_label(name, language), trimmed(value, 60)) for name, value in list(facts)[:MAX_FACTS])


def _in_mask(entity: Entity, message: UserUttered) -> bool:
    """Whether the entity is a piece of masked personal data ("138" of "138****5678"): no fact, only noise."""
    text = message.nlu.text if message.nlu is not None else message.text
    return "*" in text[max(entity.start - 1, 0) : entity.end + 1]


def _value(value: SlotValue, language: Language) -> str:
    if isinstance(value, bool):
        return _YES_NO[language][0 if value else 1]
    if isinstance(value, list):
        return masked("、".join(value) if language == "zh" else ", ".join(value))
    return masked(str(value))


def bot_tried_of(view: SessionView, domain: Domain, language: Language) -> tuple[str, ...]:
    """What the bot answered or did, in order, each once: answers with their sources, forms and how they
    ended, suggestions and clarifications, refusals; then misunderstandings and errors as counts."""
    say = _TRIED[language]
    items: dict[str, None] = {}
    refused = 0
    for index, (action, reply) in enumerate([*view.replies, ("", None)]):
        for run in (r for r in view.forms if r.at == index):  # one line per form run, where it began
            items[_form_line(run, language)] = None
        if reply is None or action in domain.forms:  # the form's own questions: its line covers them
            continue
        line = _reply_line(action, reply, language)
        if line == "refused":
            refused += 1
        elif line:
            items[line] = None
    tried = list(items)[-MAX_TRIED:]
    if refused:
        tried.append(say["refused"].format(refused))
    if view.fallbacks:
        tried.append(say["fallback"].format(view.fallbacks))
    if view.failures:
        tried.append(say["failed"].format(view.failures))
    return tuple(tried)


def _form_line(run: FormRun, language: Language) -> str:
    say = _TRIED[language]
    name = run.name
    zh, en = _FORM_LABELS.get(name, (name.replace("_", " "), name.removesuffix("_form").replace("_", " ")))
    status = _FORM_STATUS[language][run.status]
    rejected = say["rejected"].format(run.rejected) if run.rejected else ""
    return say["form"].format(zh if language == "zh" else en, status) + rejected


def _reply_line(action: str, reply: BotUttered, language: Language) -> str:
    """One line for a bot message, "" for small talk, "refused" for a safety refusal (counted apart)."""
    say = _TRIED[language]
    template = reply.template or ""
    quote = _quote(reply.text, language)
    titles = " / ".join(trimmed(masked(b.title), 30) for b in reply.buttons)
    if template.startswith("refusal:"):
        return "refused"
    if template.startswith("knowledge:"):
        source = template.removeprefix("knowledge:")
        return f"{say.get(source, say['faq'])} [{', '.join(reply.fact_ids)}]{quote}"
    if template == "generated":
        return f"{say['generated']} [{', '.join(reply.fact_ids)}]{quote}"
    if template.endswith("did_you_mean"):
        return say["suggested"].format(titles)
    if action == ACTION_CLARIFY or template.endswith("utter_clarify"):
        return say["clarify"].format(titles).rstrip("：: ")
    if template.endswith("utter_no_answer"):
        return say["no_answer"]
    if template.endswith("utter_offer_human"):
        return say["offer"]
    if _QUIET.match(template):
        return ""
    return f"{say['replied']}{quote}"


def _quote(text: str, language: Language) -> str:
    said = trimmed(masked(text), REPLY_WIDTH)
    return f"：“{said}”" if language == "zh" else f": “{said}”"
