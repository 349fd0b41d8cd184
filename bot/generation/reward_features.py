"""The reward model's features: how a response relates to the question and the facts of its prompt.

These definitions are part of a saved reward model (`FEATURES_VERSION` in reward.json): change one and bump
the version, so that older models are retrained instead of scoring features they were not trained on.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.generation.prompts import ChatMessage, estimate_tokens
from bot.protocols import Embedder

FEATURES_VERSION = 1
SCALAR_FEATURES = (
    "cosine",  # question and response embeddings
    "log_tokens",
    "has_numbers",
    "numbers_grounded",  # share of the response's numbers that the prompt states
    "word_repetition",
    "char_repetition",
    "fact_overlap",  # share of the response's content words found in the facts
)

Matrix = npt.NDArray[np.float32]

_NUMBER = re.compile(r"\d+(?:\.\d+)?%?")  # 1-2, 3.5, 15%: the separate numbers
_LATIN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_HAN = re.compile(r"[\u3400-\u9fff]+")
_FACT_LINE = re.compile(r"^\[[^\]\n]+\] ?(.*)$", re.MULTILINE)  # "[fact-id] text", as the answer templates list facts
_STOP_TEXT = (
    "a an the and or but if of to in on at for with by from as is are be it its this that you your we our "
    "i me my can will would do does not no so please thank thanks"
)
_STOP_WORDS = frozenset(_STOP_TEXT.split())


def feature_count(dim: int) -> int:
    """Width of a feature row for an embedder of `dim` dimensions."""
    return 2 * dim + len(SCALAR_FEATURES)


def question_of(prompt: Sequence[ChatMessage]) -> str:
    """The last user message: what the response answers."""
    return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")


def facts_of(prompt: Sequence[ChatMessage]) -> str:
    """The fact lines of the system message (the whole system message when a template lists them otherwise)."""
    system = "\n".join(m["content"] for m in prompt if m["role"] == "system")
    lines = _FACT_LINE.findall(system)
    return "\n".join(lines) if lines else system


def featurize(items: Sequence[tuple[Sequence[ChatMessage], str]], embedder: Embedder) -> Matrix:
    """One row per (prompt, response): question * response, |question - response|, then the scalar features.

    Each distinct question and response is embedded once, in one call per kind.
    """
    if not items:
        return np.zeros((0, feature_count(embedder.dim)), dtype=np.float32)
    questions = [question_of(prompt) for prompt, _ in items]
    query = _embed_distinct(questions, embedder.embed_queries)
    passage = _embed_distinct([response for _, response in items], embedder.embed_passages)
    known = _PromptCache()
    scalars = np.array(
        [
            [float(q @ r), *scalar_features(known.numbers(prompt), known.facts(prompt), response)]
            for (prompt, response), q, r in zip(items, query, passage, strict=True)
        ],
        dtype=np.float32,
    )
    return np.concatenate([query * passage, np.abs(query - passage), scalars], axis=1).astype(np.float32)


def scalar_features(known_numbers: set[str], fact_units: set[str], response: str) -> list[float]:
    """The scalar features after the cosine, in `SCALAR_FEATURES` order."""
    stated = numbers(response)
    grounded = len(stated & known_numbers) / len(stated) if stated else 1.0
    units = content_units(response)
    overlap = len(units & fact_units) / len(units) if units else 0.0
    return [
        math.log1p(estimate_tokens(response)),
        float(bool(stated)),
        grounded,
        repetition(_words(response)),
        repetition(list(re.sub(r"\s+", "", response.lower()))),
        overlap,
    ]


def numbers(text: str) -> set[str]:
    """The numbers a text states ("1,299" is one number)."""
    return set(_NUMBER.findall(text.replace(",", "")))


def content_units(text: str) -> set[str]:
    """Lower-cased Latin words without stop words, and Han character bigrams (a lone character as itself)."""
    units = {word for word in _LATIN.findall(text.lower()) if word not in _STOP_WORDS}
    for run in _HAN.findall(text):
        units.update(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
    return units


def repetition(units: Sequence[Hashable]) -> float:
    """Share of the 3-grams of `units` that occurred before in the sequence: 0 for none."""
    grams = [tuple(units[i : i + 3]) for i in range(len(units) - 2)]
    if not grams:
        return 0.0
    return sum(count - 1 for count in Counter(grams).values()) / len(grams)


def _words(text: str) -> list[str]:
    """Latin words and Han characters in text order (Chinese has no spaces to split words at)."""
    return re.findall(r"[a-z0-9]+|[\u3400-\u9fff]", text.lower())


def _embed_distinct(texts: list[str], embed: Callable[[Sequence[str]], npt.NDArray[Any]]) -> Matrix:
    distinct = list(dict.fromkeys(texts))
    vectors = np.asarray(embed(distinct), dtype=np.float32)
    row = {text: i for i, text in enumerate(distinct)}
    return vectors[[row[text] for text in texts]]


class _PromptCache:
    """What a response is compared with, computed once per distinct prompt of a batch."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[tuple[str, str], ...], set[str]] = {}
        self._facts: dict[tuple[tuple[str, str], ...], set[str]] = {}

    def numbers(self, prompt: Sequence[ChatMessage]) -> set[str]:
        """Numbers of the system message and of the customer's messages: echoing an order number is grounded."""
        key = _key(prompt)
        if key not in self._numbers:
            self._numbers[key] = numbers(" ".join(m["content"] for m in prompt if m["role"] in ("system", "user")))
        return self._numbers[key]

    def facts(self, prompt: Sequence[ChatMessage]) -> set[str]:
        key = _key(prompt)
        if key not in self._facts:
            self._facts[key] = content_units(facts_of(prompt))
        return self._facts[key]


def _key(prompt: Sequence[ChatMessage]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"]) for m in prompt)
