"""Polite replies for a blocked turn, by language, category and stage.

On input the customer hears why (kindly); on output the reply is neutral, because the customer did nothing
wrong: the bot's own draft was blocked.
"""

from __future__ import annotations

from bot.types import Language, Stage

_INPUT: dict[Language, dict[str, str]] = {
    "zh": {
        "abuse": "我们理解您可能有些不满，请文明用语，我会尽力帮您解决问题。",
        "violence": "抱歉，这个请求我无法协助。如果您或他人正面临危险，请立即拨打110报警。",
        "fraud": "抱歉，我无法协助这类请求。如有账户或交易安全问题，我可以帮您联系人工客服。",
        "politics": "抱歉，我只能回答与我们的产品和服务相关的问题。",
        "injection": "抱歉，我不能更改自己的设定或透露内部信息。请问有什么商品或订单问题可以帮您？",
        "privacy": "抱歉，为保护客户隐私，我不能提供他人的个人信息或订单信息。",
        "illegal": "抱歉，我不能协助违法违规的请求。请问有什么商品或订单问题可以帮您？",
        "sexual": "抱歉，这类内容我无法提供。请问有什么商品或订单问题可以帮您？",
        "": "抱歉，这个请求我无法协助。请问还有其他可以帮您的吗？",
    },
    "en": {
        "abuse": "I understand you may be frustrated. Let's keep it respectful and I'll do my best to help.",
        "violence": (
            "Sorry, I can't help with that. If you or someone else is in danger, please call your local "
            "emergency number right away."
        ),
        "fraud": (
            "Sorry, I can't help with that kind of request. If you have a concern about account or payment "
            "security, I can connect you with an agent."
        ),
        "politics": "Sorry, I can only help with questions about our products and services.",
        "injection": (
            "Sorry, I can't change my instructions or share internal details. How can I help with a product or order?"
        ),
        "privacy": "Sorry, to protect our customers' privacy I can't share anyone else's personal or order details.",
        "illegal": "Sorry, I can't help with anything illegal. Is there a product or order question I can help with?",
        "sexual": "Sorry, I can't help with that kind of content. Can I help with a product or an order?",
        "": "Sorry, I can't help with that request. Is there anything else I can do for you?",
    },
}

_OUTPUT: dict[Language, str] = {
    "zh": "抱歉，这个问题我暂时无法回答，已为您记录。",
    "en": "Sorry, I can't answer that right now. I've noted your question.",
}


_ESCALATE: dict[Language, dict[str, str]] = {
    "zh": {
        "self_harm": (
            "听起来你现在很难受，你并不孤单。我正在为你转接人工客服。如果你或身边的人有生命危险，请立即拨打120或110。"
        ),
        "abuse": "看来我没能帮到您，我正在为您转接人工客服，请稍候。",
        "": "这个问题需要人工客服来处理，正在为您转接，请稍候。",
    },
    "en": {
        "self_harm": (
            "It sounds like you're going through a lot, and you're not alone. I'm connecting you with a person now. "
            "If you or someone near you is in danger, please call your local emergency number right away."
        ),
        "abuse": "It seems I couldn't help you. I'm connecting you with an agent; please wait a moment.",
        "": "This needs one of our agents. I'm connecting you now; please wait a moment.",
    },
}

_COOLDOWN: dict[Language, str] = {
    "zh": "我们先暂停一下。请过几分钟再联系我们，我们会尽力帮您解决问题。",
    "en": "Let's take a short break. Please write again in a few minutes and we'll do our best to help.",
}


def escalation(language: Language, category: str) -> str:
    """What the customer hears when safety hands the conversation to a human."""
    texts = _ESCALATE["en" if language == "en" else "zh"]
    return texts.get(category, texts[""])


def cooldown(language: Language) -> str:
    """The reply while a conversation cools down after repeated abuse."""
    return _COOLDOWN["en" if language == "en" else "zh"]


def refusal(language: Language, category: str, *, stage: Stage = "input") -> str:
    """The reply for a turn blocked in `category`; unknown categories get a generic polite refusal."""
    lang: Language = "en" if language == "en" else "zh"
    if stage == "output":
        return _OUTPUT[lang]
    texts = _INPUT[lang]
    return texts.get(category, texts[""])
