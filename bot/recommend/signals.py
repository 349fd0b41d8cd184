"""What the events of a conversation say about recommendations: a message that is a click on a recommended
question, whether the clicked answer satisfied the customer, and the counts a turn teaches. Pure functions of
events, so live learning and `kefu test recommend`'s replay learn the same way."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from bot.events import (
    BotUttered,
    Event,
    FeedbackGiven,
    HandedOff,
    QuestionsRecommended,
    RecommendationClicked,
    RecommendationRated,
    UserUttered,
)
from bot.recommend.catalog import QuestionCatalog, normalized
from bot.recommend.counts import Observation
from bot.types import Language

HOT = "hot"
DID_YOU_MEAN = "did_you_mean"


def click_of(events: Sequence[Event], text: str, catalog: QuestionCatalog) -> RecommendationClicked | None:
    """The click `text` is, when it repeats a question recommended in the previous turn (the widget sends a
    quick reply's text; WeChat turns the reply "2" into the second one's text)."""
    shown = _last_recommended(events)
    if shown is None:
        return None
    wanted = normalized(text)
    language: Language = "en" if shown.language == "en" else "zh"
    for rank, item in enumerate(shown.items, start=1):
        question = catalog.get(item, language)
        if question is not None and normalized(question.text) == wanted:
            return RecommendationClicked(item=item, context=shown.context, rank=rank)
    return None


def _last_recommended(events: Sequence[Event]) -> QuestionsRecommended | None:
    for event in reversed(events):
        if isinstance(event, QuestionsRecommended):
            return event
        if isinstance(event, UserUttered):
            return None
    return None


def rating_of(events: Sequence[Event], handoff_intents: Collection[str]) -> RecommendationRated | None:
    """At the end of a turn: how the previous turn's click fared, judged by this turn. Asking for a human, or
    being answered the same item again (a rephrase), says it did not help; any other next question says it did."""
    turns = _turns(events)
    if len(turns) < 2:
        return None
    previous, current = turns[-2], turns[-1]
    click = next((e for e in previous if isinstance(e, RecommendationClicked)), None)
    if click is None or any(_rates(e, click) for e in (*previous, *current)):
        return None
    message = current[0]
    asked_human = isinstance(message, UserUttered) and message.nlu is not None and message.nlu.intent in handoff_intents
    if asked_human or any(isinstance(e, HandedOff) for e in current):
        return _rated(click, False, "handoff")
    if answered_item(current) == click.item:
        return _rated(click, False, "rephrase")
    return _rated(click, True, "next_question")


def _rates(event: Event, click: RecommendationClicked) -> bool:
    """Whether `event` rates `click` (the previous click's rating may sit in the same turn)."""
    return isinstance(event, RecommendationRated) and (event.item, event.context) == (click.item, click.context)


def rating_of_feedback(events: Sequence[Event], feedback: FeedbackGiven) -> RecommendationRated | None:
    """Thumbs on the reply that answered a clicked recommendation rate that recommendation."""
    if feedback.kind != "thumbs" or not feedback.reply_id:
        return None
    for turn in _turns(events):
        said = any(isinstance(e, BotUttered) and e.reply_id == feedback.reply_id for e in turn)
        click = next((e for e in turn if isinstance(e, RecommendationClicked)), None)
        if said and click is not None:
            return _rated(click, feedback.rating > 0, "thumbs")
    return None


def _rated(click: RecommendationClicked, satisfied: bool, signal: str) -> RecommendationRated:
    return RecommendationRated(item=click.item, context=click.context, satisfied=satisfied, signal=signal)


def observations(history: Sequence[Event], new: Sequence[Event], language: Language) -> list[Observation]:
    """The counts a turn's `new` events teach, `history` being the session's events before them."""
    seen: list[Observation] = []
    for event in new:
        if isinstance(event, QuestionsRecommended):
            seen += [Observation("shown", event.context, item) for item in event.items]
        elif isinstance(event, RecommendationClicked):
            seen.append(Observation("click", event.context, event.item))
        elif isinstance(event, RecommendationRated):
            seen.append(Observation("good" if event.satisfied else "bad", event.context, event.item))
    item = answered_item(new)
    if item:
        day = asked_context(new[0].timestamp if new else time.time(), language)
        seen.append(Observation("asked", day, item))
        before = _last_answered(history)
        if not before:  # the session's first answered question: what the hot list at the start should offer
            seen.append(Observation("first", day, item))
        elif before != item:
            seen.append(Observation("next", before, item))
    return seen


def asked_context(timestamp: float, language: str) -> str:
    """The context of the daily counts (`asked`, `first`): the UTC day and the language, e.g. `20261124:zh`."""
    return f"{time.strftime('%Y%m%d', time.gmtime(timestamp))}:{language}"


def answered_item(events: Sequence[Event]) -> str:
    """The fact a turn's first knowledge answer rests on (its first fact id), or ""."""
    for event in events:
        if isinstance(event, BotUttered) and event.fact_ids:
            return event.fact_ids[0]
    return ""


def answered_items(events: Sequence[Event]) -> set[str]:
    return {e.fact_ids[0] for e in events if isinstance(e, BotUttered) and e.fact_ids}


def _last_answered(events: Sequence[Event]) -> str:
    for event in reversed(events):
        if isinstance(event, BotUttered) and event.fact_ids:
            return event.fact_ids[0]
    return ""


def _turns(events: Sequence[Event]) -> list[list[Event]]:
    """The events split at each user message (events before the first one are left out)."""
    turns: list[list[Event]] = []
    for event in events:
        if isinstance(event, UserUttered):
            turns.append([event])
        elif turns:
            turns[-1].append(event)
    return turns
