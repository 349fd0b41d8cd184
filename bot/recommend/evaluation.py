"""`kefu test recommend`'s measure: hit rate@3 of replayed conversations, before and after learning.

A conversation is the sequence of items (fact ids) its turns answered. After each answer whose next question is
new to the conversation, the recommender had a chance: a hit when that next item was among the 3 related
questions shown (leaving out what was already answered, as the live stage does). The hot list had a chance
before the first question. "Before" ranks with learning off; "after" ranks with what replaying the learning part
of the conversations taught, through the same `signals` functions a live turn learns with.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from bot.events import BotUttered, Event, QuestionsRecommended, UserUttered
from bot.recommend.counts import UsageCounts
from bot.recommend.recommender import Recommender
from bot.recommend.signals import HOT, answered_items, click_of, observations, rating_of
from bot.types import Language

K = 3
LANGUAGES: tuple[Language, ...] = ("zh", "en")
PROGRESS_FROM = 50  # conversations from which replays show a progress bar
_GREETING = {"zh": "你好", "en": "Hello"}


@dataclass(frozen=True, slots=True)
class Conversation:
    """The items a conversation's turns answered, in order (an item twice in a row is a rephrase)."""

    language: Language
    items: tuple[str, ...]


@dataclass(slots=True)
class Tally:
    opportunities: int = 0
    hits: int = 0

    def count(self, hit: bool) -> None:
        self.opportunities += 1
        self.hits += hit

    @property
    def rate(self) -> float | None:
        return self.hits / self.opportunities if self.opportunities else None


@dataclass(frozen=True, slots=True)
class HitRates:
    """Hit rate@k of related questions and of the hot list, by language and for `all`."""

    related: dict[str, Tally]
    hot: dict[str, Tally]


@dataclass(frozen=True, slots=True)
class Comparison:
    before: HitRates
    after: HitRates
    learned_from: int  # conversations replayed through the learner
    evaluated: int  # conversations the hit rates are measured on
    observations: int  # counts the learning part added
    split: float
    seed: int
    unresolved: tuple[str, ...] = field(default=())  # questions no item answers (left out of their conversation)


def hit_rates(recommender: Recommender, conversations: Iterable[Conversation], *, k: int = K) -> HitRates:
    """Hit rate@k of `recommender` on `conversations`, which it does not learn from."""
    related = {name: Tally() for name in (*LANGUAGES, "all")}
    hot = {name: Tally() for name in (*LANGUAGES, "all")}
    for conversation in conversations:
        language, items = conversation.language, conversation.items
        if not items:
            continue
        first_hit = items[0] in [q.id for q in recommender.hot(language)[:k]]
        for name in (language, "all"):
            hot[name].count(first_hit)
        answered: set[str] = set()
        for item, following in itertools.pairwise(items):
            answered.add(item)
            if following in answered:  # a rephrase or a question asked again: nothing to recommend
                continue
            hit = following in [q.id for q in recommender.related(item, language, exclude=answered)[:k]]
            for name in (language, "all"):
                related[name].count(hit)
    return HitRates(related, hot)


def learn(recommender: Recommender, conversations: Iterable[Conversation]) -> int:
    """Replay `conversations` as live turns into `recommender.counts`; returns the number of observations."""
    return sum(_replay(recommender, conversation) for conversation in conversations)


def _replay(recommender: Recommender, conversation: Conversation) -> int:
    """One conversation as the live stage records it: a greeting shown the hot list, then a turn per item, where
    the customer clicks the next question when it was shown (else types it), the previous click is rated, and
    related questions are shown under the answer. Each turn's events teach what `RecommendStage.learn` would."""
    language, catalog = conversation.language, recommender.catalog
    history: list[Event] = []
    taught = 0

    def commit(new: list[Event]) -> None:
        nonlocal taught
        seen = observations(history, new, language)
        recommender.counts.add(seen)
        taught += len(seen)
        history.extend(new)

    hot = tuple(q.id for q in recommender.hot(language))
    greeting: list[Event] = [UserUttered(text=_GREETING[language]), BotUttered(text="", template="utter_greet")]
    commit([*greeting, *_shown(HOT, hot, language)])
    for item in conversation.items:
        question = catalog.get(item, language)
        text = question.text if question is not None else item
        click = click_of(history, text, catalog)
        new: list[Event] = [UserUttered(text=text), *([click] if click else [])]
        new.append(BotUttered(text="", template="knowledge:faq", fact_ids=(item,)))
        rating = rating_of([*history, *new], recommender.options.handoff_intents)
        new += [rating] if rating is not None else []
        related = recommender.related(item, language, exclude=answered_items([*history, *new]))
        commit([*new, *_shown(item, tuple(q.id for q in related), language)])
    return taught


def _shown(context: str, items: tuple[str, ...], language: Language) -> list[Event]:
    return [QuestionsRecommended(context=context, items=items, language=language)] if items else []


def split(
    conversations: Sequence[Conversation], fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """A seeded shuffle cut into the learning part (`fraction` of them) and the evaluation part."""
    order = list(conversations)
    random.Random(seed).shuffle(order)
    cut = round(len(order) * fraction)
    return order[:cut], order[cut:]


def compare(
    recommender: Recommender,
    conversations: Sequence[Conversation],
    *,
    fraction: float = 0.5,
    seed: int = 0,
    k: int = K,
    progress: bool = False,
) -> Comparison:
    """Hit rates on the evaluation part with learning off, then with what the learning part taught. The
    recommender's own counts and options are left as they are: each pass uses a copy of it."""
    learning_part, evaluation_part = split(conversations, fraction, seed)
    show = progress and len(conversations) >= PROGRESS_FROM
    static = _variant(recommender, learning=False, counts=UsageCounts(), k=k)
    before = hit_rates(static, _bar(evaluation_part, "before", show), k=k)
    learned = UsageCounts()
    taught = learn(_variant(recommender, learning=True, counts=learned, k=None), _bar(learning_part, "learning", show))
    after = hit_rates(
        _variant(recommender, learning=True, counts=learned, k=k), _bar(evaluation_part, "after", show), k=k
    )
    return Comparison(before, after, len(learning_part), len(evaluation_part), taught, fraction, seed)


def _variant(recommender: Recommender, *, learning: bool, counts: UsageCounts, k: int | None) -> Recommender:
    """A copy of `recommender` sharing its built neighbours, with `counts` and learning on or off; `k` shows k
    related and at least k hot questions, None keeps the live numbers (what the learner shows)."""
    recommender.warm_up()  # build the neighbours once, before the copies share them
    variant = copy.copy(recommender)
    options = dataclasses.replace(recommender.options, learning=learning)
    if k is not None:
        options = dataclasses.replace(options, related=k, hot_count=max(k, options.hot_count))
    variant.options = options
    variant.counts = counts
    return variant


def _bar(conversations: list[Conversation], what: str, show: bool) -> Iterable[Conversation]:
    bar: Iterable[Conversation] = tqdm(
        conversations, desc=what, unit="conversation", file=sys.stderr, disable=not show, leave=False
    )
    return bar


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The figures as one JSON object: overall rates at the top, then per language."""
    b, a = comparison.before, comparison.after
    figures: dict[str, Any] = {
        **_figures(b, a, "all"),
        "conversations_learned_from": comparison.learned_from,
        "conversations_evaluated": comparison.evaluated,
        "observations_learned": comparison.observations,
        "split": comparison.split,
        "seed": comparison.seed,
        "k": K,
        "per_language": {language: _figures(b, a, language) for language in LANGUAGES},
        "unresolved": list(comparison.unresolved),
    }
    return figures


def _figures(before: HitRates, after: HitRates, name: str) -> dict[str, Any]:
    return {
        "hit_rate_at_3_before": before.related[name].rate,
        "hit_rate_at_3_after": after.related[name].rate,
        "opportunities": before.related[name].opportunities,
        "hot_hit_rate_at_3_before": before.hot[name].rate,
        "hot_hit_rate_at_3_after": after.hot[name].rate,
        "hot_opportunities": before.hot[name].opportunities,
    }


def format_comparison(comparison: Comparison) -> str:
    """A table: related questions and the hot list, zh / en / all, before and after learning."""
    c = comparison
    lines = [
        f"猜你想问 hit rate@{K}: the next question among the {K} recommended, on {c.evaluated} held-out conversations;",
        f"learning from {c.learned_from} others ({c.observations} observations; split {c.split:g}, seed {c.seed})",
        "",
        f"{'':34}{'chances':>9}{'before':>9}{'after':>9}{'change':>10}",
    ]
    for title, before, after in (
        ("related questions after an answer", c.before.related, c.after.related),
        ("hot questions before the first one", c.before.hot, c.after.hot),
    ):
        lines.append(title)
        for name in (*LANGUAGES, "all"):
            lines.append(_row(name, before[name], after[name]))
    if c.unresolved:
        lines += ["", f"{len(c.unresolved)} question(s) matched no FAQ entry or graph question and were left out"]
    return "\n".join(lines)


def _row(name: str, before: Tally, after: Tally) -> str:
    change = "-"
    if before.rate is not None and after.rate is not None:
        change = f"{(after.rate - before.rate) * 100:+.1f} pts"
    return f"  {name:32}{before.opportunities:>9}{_percent(before.rate):>9}{_percent(after.rate):>9}{change:>10}"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"
