"""`kefu test recommend`'s measure: hit counting on a hand-made case, the seeded split, and learning that must
raise the hit rate on a case built for it."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import ClassVar, cast

import pytest

from bot.recommend.catalog import Question
from bot.recommend.evaluation import (
    Comparison,
    Conversation,
    compare,
    comparison_json,
    format_comparison,
    hit_rates,
    split,
)
from bot.recommend.recommender import Recommender
from bot.types import Language
from tests.recommend.helpers import small_recommender


class TableRecommender:
    """Recommendations from fixed tables, so the expected hits can be worked out by hand."""

    RELATED: ClassVar[dict[str, list[str]]] = {"a": ["b", "c", "d", "e"], "b": ["a", "c", "d"], "c": ["a", "b", "e"]}
    HOT: ClassVar[dict[str, list[str]]] = {"zh": ["a", "x", "y", "z"], "en": []}

    def hot(self, language: Language) -> list[Question]:
        return [Question(item, item, language) for item in self.HOT[language]]

    def related(self, item: str, language: Language, exclude: Collection[str] = ()) -> list[Question]:
        kept = [other for other in self.RELATED.get(item, []) if other != item and other not in exclude]
        return [Question(other, other, language) for other in kept][:3]


HAND_MADE = [
    Conversation("zh", ("a", "b", "c")),  # hot hit; a→b hit; b→c: related(b) less {a, b} = [c, d]: hit
    Conversation("zh", ("a", "e", "a", "b")),  # hot hit; a→e miss (b, c, d); e→a asked again: no chance; a→b hit
    Conversation("en", ("c", "c", "e")),  # hot miss (empty); c→c a rephrase: no chance; c→e: [a, b, e] hit
    Conversation("zh", ("d",)),  # hot miss (d is 4th at best); no next question
    Conversation("en", ()),  # nothing answered: no chance at all
]


def test_hits_are_counted_at_each_new_next_question_and_for_the_first_one_on_the_hot_list() -> None:
    rates = hit_rates(cast(Recommender, TableRecommender()), HAND_MADE)
    related = {name: (t.opportunities, t.hits) for name, t in rates.related.items()}
    hot = {name: (t.opportunities, t.hits) for name, t in rates.hot.items()}
    assert related == {"zh": (4, 3), "en": (1, 1), "all": (5, 4)}
    assert hot == {"zh": (3, 2), "en": (1, 0), "all": (4, 2)}
    assert rates.related["all"].rate == pytest.approx(0.8)
    assert rates.hot["en"].rate == 0.0


def test_the_report_shows_both_passes_per_language_and_the_change() -> None:
    before = hit_rates(cast(Recommender, TableRecommender()), HAND_MADE)
    after = hit_rates(cast(Recommender, TableRecommender()), HAND_MADE[:1])  # a stand-in second pass
    comparison = Comparison(before, after, 7, 5, 42, 0.5, 3, unresolved=("f.yml:3: 你好",))
    figures = comparison_json(comparison)
    assert figures["hit_rate_at_3_before"] == pytest.approx(0.8)
    assert figures["hit_rate_at_3_after"] == 1.0 and figures["opportunities"] == 5
    assert figures["hot_hit_rate_at_3_before"] == 0.5 and figures["hot_hit_rate_at_3_after"] == 1.0
    assert figures["per_language"]["en"]["hit_rate_at_3_after"] is None  # no chance in en the second time
    assert (figures["conversations_learned_from"], figures["observations_learned"], figures["seed"]) == (7, 42, 3)
    table = format_comparison(comparison)
    assert "80.0%" in table and "+20.0 pts" in table and "1 question(s)" in table
    en_after = next(line for line in table.splitlines() if line.strip().startswith("en"))
    assert en_after.split()[-2:] == ["-", "-"]


def test_the_split_is_seeded_and_cut_at_the_fraction() -> None:
    conversations = [Conversation("zh", (f"item{n}",)) for n in range(10)]
    learning, evaluation = split(conversations, 0.3, seed=1)
    assert len(learning) == 3 and len(evaluation) == 7
    assert sorted(learning + evaluation, key=lambda c: c.items) == sorted(conversations, key=lambda c: c.items)
    assert split(conversations, 0.3, seed=1) == (learning, evaluation)
    assert split(conversations, 0.3, seed=2) != (learning, evaluation)
    assert split(conversations, 0.0, seed=1)[0] == []


def test_learning_what_customers_ask_next_raises_the_hit_rate(tmp_path: Path) -> None:
    recommender = small_recommender(tmp_path)
    shown = [q.id for q in recommender.related("password_zh", "zh")]
    assert "refund_zh" not in shown, "the case needs a next question the static neighbours do not show"
    conversations = [Conversation("zh", ("password_zh", "refund_zh"))] * 40
    comparison = compare(recommender, conversations, fraction=0.5, seed=0)
    assert comparison.before.related["zh"].rate == 0.0 and comparison.before.related["zh"].opportunities == 20
    assert comparison.after.related["zh"].rate == 1.0
    assert comparison.after.hot["zh"].rate == 1.0, "the most asked first question is now on the hot list"
    assert comparison.learned_from == 20 and comparison.observations > 0
    assert recommender.counts.pending == {}, "the recommender's own counts are left alone"
    assert [q.id for q in recommender.related("password_zh", "zh")] == shown
