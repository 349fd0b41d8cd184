"""kefu's built-in actions: fallbacks, clarification, cancelling a form, offering and handing off to a human.

Each says a domain response when the project defines it (so a project sets its own voice) and a built-in
Chinese or English sentence otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from bot.actions.responses import ResponseRenderer
from bot.events import BotUttered, Event, FormCompleted, HandedOff, Session, SlotSet
from bot.protocols import TraceSink
from bot.types import (
    ACTION_ASK_REPHRASE,
    ACTION_CANCEL_FORM,
    ACTION_CLARIFY,
    ACTION_DEFAULT_FALLBACK,
    ACTION_HANDOFF,
    ACTION_OFFER_HUMAN,
    LANGUAGE_SLOT,
    REQUESTED_SLOT,
    Button,
    Domain,
    IntentScore,
    Language,
)

_TEXTS: dict[str, dict[Language, str]] = {
    "utter_ask_rephrase": {
        "zh": "抱歉，我没太明白您的意思，能换个说法再说一次吗？",
        "en": "Sorry, I didn't quite get that. Could you rephrase it?",
    },
    "utter_default": {
        "zh": "抱歉，我还是没能理解。您可以换个问法，或者说“转人工”。",
        "en": "Sorry, I still couldn't understand. You can put it another way, or ask for a human agent.",
    },
    "utter_offer_human": {
        "zh": "看来我没能帮上忙。需要为您转接人工客服吗？",
        "en": "It seems I can't help with this. Would you like me to connect you with a human agent?",
    },
    "utter_handoff": {
        "zh": "正在为您转接人工客服，请稍候。",
        "en": "I'm transferring you to a human agent. Please wait a moment.",
    },
    "utter_form_cancelled": {"zh": "好的，已为您取消。", "en": "OK, I've cancelled that."},
    "utter_clarify": {"zh": "请问您想咨询的是哪一个？", "en": "Which of these did you mean?"},
}
_OFFER_BUTTONS: dict[Language, tuple[Button, ...]] = {
    "zh": (Button("转人工客服", "/request_human"), Button("不用了", "/deny")),
    "en": (Button("Talk to a human", "/request_human"), Button("No, thanks", "/deny")),
}


def language_of(session: Session) -> Language:
    return "en" if session.slots.get(LANGUAGE_SLOT) == "en" else "zh"


class _Say:
    """Says `response` from the domain, else kefu's own text for it."""

    name = ""
    response = ""

    def __init__(self, renderer: ResponseRenderer) -> None:
        self._renderer = renderer

    def say(self, session: Session, response: str | None = None, buttons: Sequence[Button] = ()) -> BotUttered:
        name = response or self.response
        if self._renderer.has(name):
            said = self._renderer.render(name, session.slots)
            return dataclasses.replace(said, buttons=tuple(buttons)) if buttons and not said.buttons else said
        return BotUttered(text=_TEXTS[name][language_of(session)], buttons=tuple(buttons), template=f"kefu:{name}")

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        return [self.say(session)]


class AskRephraseAction(_Say):
    """The first stage of the two-stage fallback."""

    name = ACTION_ASK_REPHRASE
    response = "utter_ask_rephrase"


class DefaultFallbackAction(_Say):
    """`action_default_fallback`: the second stage (and the last resort when no policy is sure)."""

    name = ACTION_DEFAULT_FALLBACK
    response = "utter_default"


class OfferHumanAction(_Say):
    """Asks whether the customer wants a human, with buttons for yes and no."""

    name = ACTION_OFFER_HUMAN
    response = "utter_offer_human"

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        return [self.say(session, buttons=_OFFER_BUTTONS[language_of(session)])]


class CancelFormAction(_Say):
    """Confirms that the form the policy cancelled is cancelled."""

    name = ACTION_CANCEL_FORM
    response = "utter_form_cancelled"


class HandoffAction(_Say):
    """`action_handoff`: hands the conversation to a human (cancelling any form); the bot stays silent
    until handed back. The handoff policy records its reason; a rule's handoff records the intent."""

    name = ACTION_HANDOFF
    response = "utter_handoff"

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        events: list[Event] = []
        if not session.state.handed_off:
            message = session.latest_message()
            intent = message.nlu.intent if message is not None and message.nlu is not None else "unknown"
            events.append(HandedOff(reason=f"requested:{intent}"))
        if session.active_form is not None:
            events.append(FormCompleted(name=session.active_form, cancelled=True))
            events.append(SlotSet(name=REQUESTED_SLOT, value=None))
        return [*events, self.say(session)]


class ClarifyAction(_Say):
    """Asks which of the close intents was meant; each button sends `/intent`."""

    name = ACTION_CLARIFY
    response = "utter_clarify"

    def __init__(
        self,
        renderer: ResponseRenderer,
        choices: Callable[[tuple[IntentScore, ...]], list[IntentScore]],
        labels: Mapping[str, Mapping[Language, str]],
    ) -> None:
        super().__init__(renderer)
        self._choices = choices
        self._labels = labels

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        message = session.latest_message()
        ranking = message.nlu.ranking if message is not None and message.nlu is not None else ()
        language = language_of(session)
        buttons = [Button(self._label(s.name, language), f"/{s.name}") for s in self._choices(ranking)]
        return [self.say(session, buttons=buttons)]

    def _label(self, intent: str, language: Language) -> str:
        labels = self._labels.get(intent, {})
        return labels.get(language) or next(iter(labels.values()), intent.replace("_", " "))
