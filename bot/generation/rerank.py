"""Reranking generated candidates: by the trained reward model when there is one, otherwise by how well the
facts support a candidate, how much it repeats itself and whether the token limit cut it."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.generation.prompts import ChatMessage, estimate_tokens
from bot.protocols import PromptContext
from bot.types import Candidate
from safety.grounding import numbers

_LATIN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_HAN = re.compile(r"[\u3400-\u9fff]+")
_ENGLISH_STOP_WORDS = (
    "a an the and or but of to in on at for from by with as is are was were be been being it its this that these "
    "those you your yours we our us i my me they their them he she his her can will would could should do does "
    "did have has had if so than then there here what which who how when where please also any all just about "
    "into up out may might not no yes thank thanks why"
)
_STOP_WORDS = frozenset(_ENGLISH_STOP_WORDS.split())
_STOP_BIGRAMS = frozenset({"我们", "可以", "您可", "如果", "请您", "这个", "什么", "一个", "一下", "您的"})
_IDEAL_TOKENS = 40  # a customer-service answer: a sentence or three


def content_tokens(text: str) -> set[str]:
    """Lower-cased Latin words and numbers without stop words, and the bigrams of Han runs (a lone character as
    it is) without the commonest function-word bigrams."""
    lowered = text.lower().replace("\u2019", "'")
    tokens = {word for word in _LATIN.findall(lowered) if word not in _STOP_WORDS}
    for run in _HAN.findall(text):
        bigrams = {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else {run}
        tokens |= bigrams - _STOP_BIGRAMS
    return tokens


def repetition(text: str) -> float:
    """Share of the text's word (or Han character) 3-grams that occurred before in it: 0 for none."""
    units = _LATIN.findall(text.lower()) + [ch for run in _HAN.findall(text) for ch in run]
    grams = [tuple(units[i : i + 3]) for i in range(len(units) - 2)]
    if not grams:
        return 0.0
    return sum(count - 1 for count in Counter(grams).values()) / len(grams)


class Reranker(Protocol):
    name: str

    def score(self, context: PromptContext, candidates: Sequence[Candidate]) -> list[float]:
        """Higher is better; one score per candidate."""


class HeuristicReranker:
    """Support by the facts (content-token precision and grounded numbers), minus repetition, a cut by the token
    limit and distance from a short answer's length."""

    name = "heuristic"

    def score(self, context: PromptContext, candidates: Sequence[Candidate]) -> list[float]:
        facts = " ".join(fact.text for fact in context.facts)
        fact_tokens, fact_numbers = content_tokens(facts), numbers(facts)
        return [self._score(candidate, fact_tokens, fact_numbers) for candidate in candidates]

    @staticmethod
    def _score(candidate: Candidate, fact_tokens: set[str], fact_numbers: set[str]) -> float:
        tokens = content_tokens(candidate.text)
        if not tokens:
            return -10.0
        support = len(tokens & fact_tokens) / len(tokens)
        stated = numbers(candidate.text)
        grounded = len(stated & fact_numbers) / len(stated) if stated else 1.0
        length = abs(math.log((estimate_tokens(candidate.text) + 1) / _IDEAL_TOKENS))
        cut = 0.3 if candidate.finish_reason == "length" else 0.0
        return support + grounded - 2 * repetition(candidate.text) - 0.1 * length - cut


class ResponseScorer(Protocol):
    def score(self, prompt: Sequence[ChatMessage], responses: Sequence[str]) -> list[float]: ...


class RewardReranker:
    """The reward model trained from operators' and customers' preferences (`kefu train reward`)."""

    name = "reward"

    def __init__(self, model: ResponseScorer, messages: Callable[[PromptContext], list[ChatMessage]]) -> None:
        self._model = model
        self._messages = messages

    def warm_up(self) -> None:
        warm = getattr(self._model, "warm_up", None)
        if callable(warm):
            warm()

    def score(self, context: PromptContext, candidates: Sequence[Candidate]) -> list[float]:
        return self._model.score(self._messages(context), [candidate.text for candidate in candidates])
