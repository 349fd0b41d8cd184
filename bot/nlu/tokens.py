"""Tokens with character offsets, and the hashed sparse features of each token.

Han characters are tokens of their own, so an entity boundary inside a Chinese sentence is always a
token boundary (jieba would glue "订单SO20261001" differently from one sentence to the next); each
character still carries the jieba word around it as a feature. Latin words and digit runs are
one token each.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import jieba

from bot.nlu.features import HAN, IndexArray, ValueArray, bucket, init_jieba, owned_bags

# One Han character, or a run of letters/digits (NFKC-folded full-width forms count as Latin).
_TOKEN = re.compile(f"[{HAN}]|[^\\W_{HAN}]+")
_IS_HAN = re.compile(f"[{HAN}]")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Han characters and Latin/digit runs with their offsets in `text`; punctuation and spaces are skipped."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def token_keys(text: str, tokens: list[Token]) -> list[list[str]]:
    """Feature strings for each token: its form and shape, its character n-grams, and its jieba word."""
    words = _jieba_words(text)
    return [[*_own_keys(token.text), *_context_keys(tokens, i, words)] for i, token in enumerate(tokens)]


def token_bags(text: str, tokens: list[Token], dim: int) -> tuple[IndexArray, IndexArray, ValueArray]:
    """`hash_keys` of each token's `token_keys` as `owned_bags` (token, bucket, weight), with what depends on
    the token alone hashed once per form."""
    words = _jieba_words(text)
    owners: list[int] = []
    buckets: list[int] = []
    for i, token in enumerate(tokens):
        own = _own_buckets(token.text, dim)
        context = [bucket(key, dim) for key in _context_keys(tokens, i, words)]
        buckets += own
        buckets += context
        owners += [i] * (len(own) + len(context))
    return owned_bags(owners, buckets, dim)


def _own_keys(token: str) -> list[str]:
    """What a token says by itself: its form, its shape and, for a Latin word, its n-grams and suffix."""
    form = _DIGIT.sub("0", token.lower())
    keys = [f"t:{form}", f"s:{_shape(token)}"]
    if not _IS_HAN.match(token):
        padded = f" {form} "
        keys += [f"g:{padded[j : j + n]}" for n in (3, 4) for j in range(len(padded) - n + 1)]
        keys.append(f"suf:{form[-3:]}")
    return keys


@functools.lru_cache(maxsize=1 << 14)
def _own_buckets(token: str, dim: int) -> tuple[int, ...]:
    return tuple(bucket(key, dim) for key in _own_keys(token))


def _context_keys(tokens: list[Token], i: int, words: dict[int, tuple[str, str]]) -> list[str]:
    """The jieba word around a Han character, and the neighbouring tokens."""
    token = tokens[i]
    keys = []
    if _IS_HAN.match(token.text):
        word, position = words.get(token.start, (token.text, "S"))
        keys += [f"jw:{_DIGIT.sub('0', word)}", f"jp:{position}"]
    previous = tokens[i - 1].text.lower() if i else "^"
    following = tokens[i + 1].text.lower() if i + 1 < len(tokens) else "$"
    return [*keys, f"p:{_DIGIT.sub('0', previous)}", f"n:{_DIGIT.sub('0', following)}"]


def _shape(token: str) -> str:
    if token.isdigit():
        return f"d{min(len(token), 12)}"
    if _IS_HAN.match(token):
        return "han"
    shape = "".join("A" if c.isupper() else "a" if c.isalpha() else "0" for c in token[:6])
    return re.sub(r"(.)\1+", r"\1+", shape)


def _jieba_words(text: str) -> dict[int, tuple[str, str]]:
    """Start offset of each Han character -> (the jieba word it belongs to, B/I/E/S position in it)."""
    if not _IS_HAN.search(text):
        return {}
    init_jieba()
    out: dict[int, tuple[str, str]] = {}
    for word, start, end in jieba.tokenize(text):
        for offset in range(start, end):
            position = "S" if end - start == 1 else "B" if offset == start else "E" if offset == end - 1 else "I"
            out[offset] = (word, position)
    return out
