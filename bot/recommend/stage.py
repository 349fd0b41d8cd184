"""Recommendations in a turn: notice a click before the NLU, attach questions to the turn's reply and rate the
previous click after the actions, and learn from the committed turn."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    QuestionsRecommended,
    RecommendationClicked,
    Session,
    UserUttered,
)
from bot.recommend.catalog import Question, normalized
from bot.recommend.recommender import Recommender
from bot.recommend.signals import (
    DID_YOU_MEAN,
    HOT,
    answered_items,
    click_of,
    observations,
    rating_of,
)
from bot.types import (
    ACTION_ASK_REPHRASE,
    ACTION_CLARIFY,
    ACTION_DEFAULT_FALLBACK,
    LANGUAGE_SLOT,
    Button,
    Language,
)

GREET_INTENT = "greet"
HOT_ON_OPEN = frozenset({"web"})  # channels that show the hot questions when opened, before any turn
_VAGUE_ACTIONS = frozenset({ACTION_DEFAULT_FALLBACK, ACTION_ASK_REPHRASE, ACTION_CLARIFY})
_VAGUE_TEMPLATES = frozenset({"utter_no_answer", "utter_default", "utter_ask_rephrase", "utter_clarify"})


class RecommendStage:
    """The turn's side of a `Recommender`."""

    def __init__(self, recommender: Recommender) -> None:
        self.recommender = recommender

    def on_message(self, session: Session, text: str, channel: str) -> list[Event]:
        """A `RecommendationClicked` when `text` is a question recommended just before (or, on a session's first
        message on the web widget, one of the hot questions it shows before any turn)."""
        catalog = self.recommender.catalog
        click = click_of(session.events, text, catalog)
        first = not any(isinstance(e, UserUttered) for e in session.events)
        if click is None and first and channel in HOT_ON_OPEN:
            click = _hot_click(self.recommender.hot("zh"), text) or _hot_click(self.recommender.hot("en"), text)
        return [click] if click is not None else []

    def finish_turn(self, session: Session) -> Session:
        """Rate the previous turn's click, and show recommended questions under this turn's last reply."""
        rating = rating_of(session.events, self.recommender.options.handoff_intents)
        if rating is not None:
            session = session.with_events([rating])
        reply = next((e for e in reversed(session.new_events) if isinstance(e, BotUttered)), None)
        if reply is None or reply.quick_replies or session.state.handed_off:
            return session
        language = language_of(session)
        context, questions = self._choose(session, reply, language)
        if not questions:
            return session
        shown = tuple(Button(title=q.text, payload=q.text) for q in questions)
        session = session.with_replaced(reply, dataclasses.replace(reply, quick_replies=shown))
        return session.with_events([QuestionsRecommended(context=context, items=tuple(q.id for q in questions),
                                                         language=language)])  # fmt: skip

    def learn(self, session: Session) -> None:
        """Count what a committed turn teaches (nothing when learning is off)."""
        if not self.recommender.options.learning or not session.new_events:
            return
        history = session.events[: len(session.events) - len(session.new_events)]
        self.recommender.counts.add(observations(history, session.new_events, language_of(session)))

    def _choose(self, session: Session, reply: BotUttered, language: Language) -> tuple[str, list[Question]]:
        asked = answered_items(session.events)
        actions = {e.name for e in session.new_events if isinstance(e, ActionExecuted)}
        message = session.latest_message()
        if reply.fact_ids and not reply.buttons and _answers(reply):
            return reply.fact_ids[0], self.recommender.related(reply.fact_ids[0], language, exclude=asked)
        if message is not None and (actions & _VAGUE_ACTIONS or reply.template in _VAGUE_TEMPLATES):
            if reply.buttons and ACTION_CLARIFY not in actions:
                return "", []
            question = message.nlu.text if message.nlu is not None else message.text
            return DID_YOU_MEAN, self.recommender.did_you_mean(question, language, exclude=asked)
        if not reply.buttons and _greeting_first(session, message):
            return HOT, self.recommender.hot(language)
        return "", []


def language_of(session: Session) -> Language:
    return "en" if session.slots.get(LANGUAGE_SLOT) == "en" else "zh"


def _answers(reply: BotUttered) -> bool:
    return (reply.template or "").startswith("knowledge:") or reply.template == "generated"


def _greeting_first(session: Session, message: UserUttered | None) -> bool:
    """The session's first message is a greeting (or a WeChat follow, `/greet`): show what is asked most."""
    if message is None or message.nlu is None or message.nlu.intent != GREET_INTENT:
        return False
    return sum(isinstance(e, UserUttered) for e in session.events) == 1


def _hot_click(hot: Sequence[Question], text: str) -> RecommendationClicked | None:
    wanted = normalized(text)
    for rank, question in enumerate(hot, start=1):
        if normalized(question.text) == wanted:
            return RecommendationClicked(item=question.id, context=HOT, rank=rank)
    return None
