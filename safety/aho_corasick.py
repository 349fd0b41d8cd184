"""A compact Aho-Corasick automaton: find every occurrence of many patterns in one pass over the text.

Matching is case-insensitive by default and works on any script (Chinese has no word boundaries, so a
per-word lookup would not do). Case folding is length-preserving, so match offsets index the original text.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

_FOLDED: dict[str, str] = {}


def _fold_char(ch: str) -> str:
    folded = _FOLDED.get(ch)
    if folded is None:
        # NFKC maps full-width "ＦＵＣＫ" and compatibility forms to their plain letters; a character that
        # would expand (e.g. "ß" -> "ss") keeps its original so that offsets stay aligned.
        candidate = unicodedata.normalize("NFKC", ch).lower()
        folded = candidate if len(candidate) == 1 else ch.lower() if len(ch.lower()) == 1 else ch
        _FOLDED[ch] = folded
    return folded


def fold(text: str) -> str:
    """Lower-case and width-normalize `text` one character at a time; the result has the same length."""
    if text.isascii():
        return text.lower()
    return "".join(_fold_char(ch) for ch in text)


class Hit(NamedTuple):
    """One occurrence: `text[start:end]` matched `patterns[pattern]`."""

    start: int
    end: int
    pattern: int


class AhoCorasick:
    """Multi-pattern matcher; reports all occurrences, overlapping ones included, ordered by end offset."""

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = True) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        self.ignore_case = ignore_case
        self._goto: list[dict[str, int]] = [{}]
        self._fail: list[int] = [0]
        self._out: list[tuple[int, ...]] = [()]
        for index, pattern in enumerate(self.patterns):
            if not pattern:
                raise ValueError(f"pattern {index} is empty; an empty pattern would match everywhere")
            self._insert(fold(pattern) if ignore_case else pattern, index)
        self._link()
        self._lengths = tuple(len(p) for p in self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    def _insert(self, pattern: str, index: int) -> None:
        state = 0
        for ch in pattern:
            nxt = self._goto[state].get(ch)
            if nxt is None:
                nxt = len(self._goto)
                self._goto[state][ch] = nxt
                self._goto.append({})
                self._fail.append(0)
                self._out.append(())
            state = nxt
        self._out[state] += (index,)

    def _link(self) -> None:
        """Breadth-first: each state's failure link is its longest proper suffix that is also a trie path."""
        queue = deque(self._goto[0].values())
        while queue:
            state = queue.popleft()
            for ch, child in self._goto[state].items():
                queue.append(child)
                fallback = self._fail[state]
                while fallback and ch not in self._goto[fallback]:
                    fallback = self._fail[fallback]
                target = self._goto[fallback].get(ch, 0)
                self._fail[child] = target if target != child else 0
                # Merge outputs along the failure chain once here, so search never walks it for outputs.
                self._out[child] += self._out[self._fail[child]]

    def find_all(self, text: str) -> list[Hit]:
        """Every occurrence of every pattern in `text`."""
        goto, fail, out, lengths = self._goto, self._fail, self._out, self._lengths
        hits: list[Hit] = []
        state = 0
        for pos, ch in enumerate(fold(text) if self.ignore_case else text):
            while state and ch not in goto[state]:
                state = fail[state]
            state = goto[state].get(ch, 0)
            for index in out[state]:
                hits.append(Hit(pos + 1 - lengths[index], pos + 1, index))
        return hits
