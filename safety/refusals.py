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
        "": "Sorry, I can't help with that request. Is there anything else I can do for you?",
    },
}

_OUTPUT: dict[Language, str] = {
    "zh": "抱歉，这个问题我暂时无法回答，已为您记录。",
    "en": "Sorry, I can't answer that right now. I've noted your question.",
}


def refusal(language: Language, category: str, *, stage: Stage = "input") -> str:
    """The reply for a turn blocked in `category`; unknown categories get a generic polite refusal."""
    lang: Language = "en" if language == "en" else "zh"
    if stage == "output":
        return _OUTPUT[lang]
    texts = _INPUT[lang]
    return texts.get(category, texts[""])
