"""The recommender a turn asks: hot questions, related questions and did-you-mean candidates, each ranked by
a static score from precomputed neighbours plus what use has taught (when learning is on)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from bot.recommend.catalog import Question, QuestionCatalog
from bot.recommend.counts import UsageCounts
from bot.recommend.neighbour_cache import NeighbourIndex, build_index
from bot.recommend.signals import DID_YOU_MEAN, HOT, asked_context
from bot.types import Language
from knowledge.base import KnowledgeBase

log = logging.getLogger(__name__)

DAY_S = 86_400.0
ASKED_WEIGHT = 0.1


@dataclass(frozen=True, slots=True)
class RecommendOptions:
    related: int = 3
    hot: dict[str, tuple[str, ...]] = field(default_factory=dict)  # language -> FAQ ids or question texts
    hot_count: int = 5
    hot_days: int = 7
    did_you_mean: int = 3
    did_you_mean_min_score: float = 0.88
    learning: bool = True
    sync_every_s: float = 10.0  # how often learned counts are shared through Redis
    handoff_intents: tuple[str, ...] = ("request_human",)


class Recommender:
    """Questions to recommend, from the knowledge base's FAQ and graph; `counts` is what use taught so far."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        options: RecommendOptions = RecommendOptions(),
        *,
        cache_dir: Path | None = None,
        counts: UsageCounts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.knowledge = knowledge
        self.options = options
        self.counts = counts or UsageCounts()
        self._cache_dir = cache_dir
        self._clock = clock
        self._index: NeighbourIndex | None = None
        self._building = threading.Lock()

    def warm_up(self) -> None:
        """Build (or load from the cache) the neighbours of every question now rather than on first use."""
        self._current()

    @property
    def catalog(self) -> QuestionCatalog:
        return self._current().catalog

    def hot(self, language: Language) -> list[Question]:
        """The hot questions of `language`: the configured ones, else the most asked lately, else the first FAQ
        entries (one per tag first); reordered by how often they were clicked when learning is on."""
        index = self._current()
        configured = [q for q in (self._resolve(x, language) for x in self.options.hot.get(language, ())) if q]
        if configured:
            return self._ranked(HOT, {q.id: 1.0 - n * 0.01 for n, q in enumerate(configured)}, language)[
                : self.options.hot_count
            ]
        scores = self._opening_shares(language) if self.options.learning else {}
        scores = {item: share for item, share in scores.items() if index.catalog.get(item, language)}
        for n, question in enumerate(index.starters(language)):
            scores.setdefault(question.id, -1.0 - n * 0.001)  # after anything really asked
        return self._ranked(HOT, scores, language)[: self.options.hot_count]

    def related(self, item: str, language: Language, exclude: Collection[str] = ()) -> list[Question]:
        """Questions to ask after `item` was answered; never `item` itself or anything in `exclude`."""
        if self.options.related <= 0:
            return []
        index = self._current()
        scores = {n.item: n.score for n in index.neighbours.get((item, language), ())}
        if self.options.learning:
            for learned in self.counts.learned_after(item, self.options.related * 2):
                scores.setdefault(learned, 0.0)
        skip = {item, *exclude}
        kept = {k: v for k, v in scores.items() if k not in skip}
        return self._ranked(item, kept, language)[: self.options.related]

    def did_you_mean(self, text: str, language: Language, exclude: Collection[str] = ()) -> list[Question]:
        """FAQ questions close to a vague `text`, best first."""
        if self.options.did_you_mean <= 0 or not text.strip():
            return []
        facts = self.knowledge.retrieve(text, top_k=self.options.did_you_mean * 2, filters={"source": "faq"},
                                        language=language)  # fmt: skip
        scores = {
            f.id: f.score for f in facts if f.score >= self.options.did_you_mean_min_score and f.id not in exclude
        }
        return self._ranked(DID_YOU_MEAN, scores, language)[: self.options.did_you_mean]

    def _ranked(self, context: str, scores: dict[str, float], language: Language) -> list[Question]:
        catalog = self._current().catalog
        if self.options.learning:
            scores = {item: score + self.counts.boost(context, item) for item, score in scores.items()}
        ordered = sorted(scores, key=lambda item: (-scores[item], item))
        return [q for q in (catalog.get(item, language) for item in ordered) if q is not None]

    def _opening_shares(self, language: Language) -> dict[str, float]:
        """Each item's share of the sessions it opened in the last `hot_days` days (a session's first question is
        what a hot list can save typing), plus a tenth of its share of all questions asked, to break ties."""
        first, asked = self._daily("first", language), self._daily("asked", language)
        total_first, total_asked = sum(first.values()) or 1, sum(asked.values()) or 1
        return {
            item: first.get(item, 0) / total_first + ASKED_WEIGHT * asked.get(item, 0) / total_asked
            for item in first.keys() | asked.keys()
        }

    def _daily(self, kind: str, language: Language) -> Counter[str]:
        """The `kind` counts of the last `hot_days` days."""
        total: Counter[str] = Counter()
        now = self._clock()
        for day in range(self.options.hot_days):
            total.update(self.counts.counts(kind, asked_context(now - day * DAY_S, language)))
        return total

    def _resolve(self, wanted: str, language: Language) -> Question | None:
        catalog = self._current().catalog
        return catalog.get(wanted, language) or catalog.get(catalog.item_of(wanted, language) or "", language)

    def _current(self) -> NeighbourIndex:
        """The index of the knowledge as it is now. After a knowledge reload the old index keeps answering while
        a thread builds the new one (embedding the questions takes seconds; a turn must not wait for it)."""
        index = self._index
        if index is None:
            with self._building:
                if self._index is None:
                    self._index = build_index(self.knowledge, self._cache_dir)
                return self._index
        if index.version != self.knowledge.version and self._building.acquire(blocking=False):
            threading.Thread(target=self._rebuild, name="kefu-recommend-rebuild", daemon=True).start()
        return index

    def _rebuild(self) -> None:
        version = self.knowledge.version
        try:
            self._index = build_index(self.knowledge, self._cache_dir)
        except Exception:  # the old index keeps answering until the next reload
            log.exception("could not rebuild the recommendations after a knowledge reload")
            if self._index is not None:
                self._index = dataclasses.replace(self._index, version=version)
        finally:
            self._building.release()
