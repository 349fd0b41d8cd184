"""Tokens with character offsets, and the hashed sparse features of each token.

Han characters are tokens of their own, so an entity boundary inside a Chinese sentence is always a
token boundary (jieba would glue "订单SO20261001" differently from one sentence to the next); each
character still carries the jieba word around it as a feature. Latin words and digit runs are
one token each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jieba

from bot.nlu.features import HAN, init_jieba

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
    keys: list[list[str]] = []
    for i, token in enumerate(tokens):
        form = _DIGIT.sub("0", token.text.lower())
        own = [f"t:{form}", f"s:{_shape(token.text)}"]
        if _IS_HAN.match(token.text):
            word, position = words.get(token.start, (token.text, "S"))
            own += [f"jw:{_DIGIT.sub('0', word)}", f"jp:{position}"]
        else:
            padded = f" {form} "
            own += [f"g:{padded[j : j + n]}" for n in (3, 4) for j in range(len(padded) - n + 1)]
            own.append(f"suf:{form[-3:]}")
        previous = tokens[i - 1].text.lower() if i else "^"
        following = tokens[i + 1].text.lower() if i + 1 < len(tokens) else "$"
        own += [f"p:{_DIGIT.sub('0', previous)}", f"n:{_DIGIT.sub('0', following)}"]
        keys.append(own)
    return keys


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
