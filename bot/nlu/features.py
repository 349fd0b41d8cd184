"""Deterministic hashed sparse features for short bilingual (Chinese / English) messages.

Character n-grams carry most of the signal for Chinese (no spaces) and for misspelt English;
word unigrams and bigrams (jieba for Chinese, `\\w+` for Latin script) add phrase-level cues.
Every feature is hashed with CRC-32, which, unlike Python's salted `hash()`, gives the same
index in every process, so a model trained in one process can be served by another.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import threading
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import jieba
import numpy as np
import numpy.typing as npt

from bot.types import Language

# Han ideographs (unified, extension A, compatibility), as a regex character range: what makes a message Chinese.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"[{HAN}]+")
_HAN_CHAR = re.compile(f"[{HAN}]")
_LATIN_WORD = re.compile(f"[^\\W{HAN}]+")
_DIGIT = re.compile(r"\d")

# A Chinese word is about two characters, so one Latin word weighs as much as two Han characters.
_LATIN_WORD_WEIGHT = 2.0
_ZH_SHARE = 0.3

_jieba_lock = threading.Lock()
_jieba_ready = False

IndexArray = npt.NDArray[np.int64]
ValueArray = npt.NDArray[np.float32]


def detect_language(text: str) -> Language:
    """Return "zh" when Han characters make up a meaningful share of the text, else "en".

    Mixed messages such as "我的X1 Pro坏了" are Chinese: customers name products in Latin script
    inside Chinese sentences far more often than the reverse.
    """
    han = len(_HAN_CHAR.findall(text))
    if han == 0:
        return "en"
    latin = len(_LATIN_WORD.findall(text)) * _LATIN_WORD_WEIGHT
    return "zh" if han / (han + latin) >= _ZH_SHARE else "en"


def init_jieba() -> None:
    """Load jieba's dictionary once, quietly (it otherwise logs to stderr on first use)."""
    global _jieba_ready
    if _jieba_ready:  # the common case, checked without taking the lock
        return
    with _jieba_lock:
        if not _jieba_ready:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba_ready = True


def words(text: str) -> list[str]:
    """Lower-cased words in reading order: jieba words for Han runs, `\\w+` tokens otherwise."""
    init_jieba()
    # jieba never joins across whitespace, so the chunks between spaces are cut, and remembered, apart
    return [word for chunk in text.split() for word in _chunk_words(chunk)]


@functools.lru_cache(maxsize=1 << 14)
def _chunk_words(chunk: str) -> tuple[str, ...]:
    out: list[str] = []
    for token in jieba.lcut(chunk):
        if _HAN_CHAR.search(token):
            out.append(token)
        else:
            out.extend(match.lower() for match in _LATIN_WORD.findall(token))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class FeaturizerConfig:
    """What a saved model must reproduce exactly; stored in its meta.json."""

    dim: int = 2**18
    han_ngrams: tuple[int, int] = (1, 3)
    latin_ngrams: tuple[int, int] = (2, 4)
    word_bigrams: bool = True
    normalise_digits: bool = True  # order ids and model numbers generalise better as shapes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeaturizerConfig:
        return cls(
            dim=int(data["dim"]),
            han_ngrams=(int(data["han_ngrams"][0]), int(data["han_ngrams"][1])),
            latin_ngrams=(int(data["latin_ngrams"][0]), int(data["latin_ngrams"][1])),
            word_bigrams=bool(data["word_bigrams"]),
            normalise_digits=bool(data["normalise_digits"]),
        )


class HashingFeaturizer:
    """Turns a text into an L2-normalised term-frequency vector over `config.dim` hashed buckets."""

    def __init__(self, config: FeaturizerConfig | None = None) -> None:
        self.config = config or FeaturizerConfig()

    @property
    def dim(self) -> int:
        return self.config.dim

    def keys(self, text: str) -> list[str]:
        """The feature strings of `text`, before hashing; namespaced so n-grams never collide with words."""
        text = self._normalised(text)
        lo, hi = self.config.latin_ngrams
        return [*self._word_keys(text), *(key for word in _latin_words(text) for key in _gram_keys(word, lo, hi))]

    def featurize(self, text: str) -> tuple[IndexArray, ValueArray]:
        """Sorted bucket indices and their L2-normalised weights (both empty for a featureless text)."""
        text = self._normalised(text)
        dim = self.config.dim
        buckets = [bucket(key, dim) for key in self._word_keys(text)]
        lo, hi = self.config.latin_ngrams
        for word in _latin_words(text):
            buckets.extend(_gram_buckets(word, lo, hi, dim))
        return bag(buckets)

    def _normalised(self, text: str) -> str:
        return _DIGIT.sub("0", text) if self.config.normalise_digits else text

    def _word_keys(self, text: str) -> list[str]:
        """Words, word bigrams and Han character n-grams: all but the Latin character n-grams."""
        tokens = words(text)
        keys = [f"w:{w}" for w in tokens]
        if self.config.word_bigrams:
            keys.extend(f"b:{a} {b}" for a, b in itertools.pairwise(tokens))
        lo, hi = self.config.han_ngrams
        for run in _HAN_RUN.findall(text):
            keys.extend(f"c:{gram}" for gram in _ngrams(run, lo, hi))
        return keys


def bucket(key: str, dim: int) -> int:
    """The bucket of a feature string: CRC-32, the same in every process (Python's `hash()` is salted)."""
    return zlib.crc32(key.encode("utf-8")) % dim


def hash_keys(keys: list[str], dim: int) -> tuple[IndexArray, ValueArray]:
    """Sorted bucket indices of `keys` with L2-normalised counts."""
    return bag([bucket(key, dim) for key in keys])


def bag(buckets: list[int]) -> tuple[IndexArray, ValueArray]:
    """Sorted distinct buckets with their L2-normalised counts."""
    indices, counts = np.unique(np.array(buckets, dtype=np.int64), return_counts=True)
    values = counts.astype(np.float32)
    norm = float(np.linalg.norm(values))
    return indices, values / norm if norm > 0 else values


def owned_bags(owners: list[int], buckets: list[int], dim: int) -> tuple[IndexArray, IndexArray, ValueArray]:
    """`bag` of each owner's `buckets` (all below `dim`), in one pass and flat: owners, indices and values
    sorted by owner, then by index; each owner's stretch equals its own `bag`."""
    unique, counts = np.unique(
        np.array(owners, dtype=np.int64) * dim + np.array(buckets, dtype=np.int64), return_counts=True
    )
    owner = unique // dim
    values = counts.astype(np.float32)
    # squares of small counts sum exactly, so these norms equal np.linalg.norm's on each bag alone
    norms = np.sqrt(np.bincount(owner, weights=values * values).astype(np.float32))
    weights: ValueArray = (values / norms[owner]).astype(np.float32, copy=False)
    return owner, unique % dim, weights


def _latin_words(text: str) -> list[str]:
    return _LATIN_WORD.findall(text.lower())


def _gram_keys(word: str, lo: int, hi: int) -> list[str]:
    """Character n-grams of a Latin word padded with spaces, as sklearn's char_wb."""
    return [f"c:{gram}" for gram in _ngrams(f" {word} ", lo, hi)]


@functools.lru_cache(maxsize=1 << 14)
def _gram_buckets(word: str, lo: int, hi: int, dim: int) -> tuple[int, ...]:
    return tuple(bucket(key, dim) for key in _gram_keys(word, lo, hi))


def _ngrams(text: str, lo: int, hi: int) -> list[str]:
    """All n-grams of `text` for lo <= n <= hi; a text shorter than lo yields itself (as sklearn's char_wb)."""
    if len(text) < lo:
        return [text] if text.strip() else []
    return [text[i : i + n] for n in range(lo, hi + 1) for i in range(len(text) - n + 1)]
