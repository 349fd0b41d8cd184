"""Finding known phrases (names, aliases, keywords) in user text, with or without spaces, in one pass."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from bot.types import Language


@dataclass(frozen=True, slots=True)
class PhraseMatch:
    """A phrase found in the text: `text[start:end]`, and the values registered for that phrase."""

    start: int
    end: int
    surface: str
    values: tuple[str, ...]


class _Node:
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.values: list[str] = []


class PhraseMatcher:
    """A character trie of phrases; `find` returns leftmost-longest, non-overlapping matches.

    Matching folds case and full-width forms and ignores whitespace, so "X1 Pro", "x1pro" and "Ｘ１ Pro"
    are one phrase; that is what makes it work inside Chinese text, which has no spaces. A match may not
    cut through a Latin word or a number ("pro" is not found in "product", "x1" not in "x10").
    """

    def __init__(self, *, plural_s: bool = False) -> None:
        self._root = _Node()
        self._size = 0
        self._plural_s = plural_s  # also match a Latin phrase followed by "s" ("price" in "prices")

    def __len__(self) -> int:
        return self._size

    def add(self, phrase: str, value: str) -> None:
        """Register `value` under `phrase`; a phrase may carry several values."""
        key = normalize(phrase)
        if not key:
            return
        node = self._root
        for char in key:
            node = node.children.setdefault(char, _Node())
        if not node.values:
            self._size += 1
        if value not in node.values:
            node.values.append(value)

    def lookup(self, phrase: str) -> tuple[str, ...]:
        """The values registered under exactly `phrase` (after folding), or ()."""
        node: _Node | None = self._root
        for char in normalize(phrase):
            node = node.children.get(char) if node else None
        return tuple(node.values) if node else ()

    def find(self, text: str) -> list[PhraseMatch]:
        """Leftmost-longest matches in `text`, in order."""
        folded = [_fold(char) for char in text]
        positions = [i for i, char in enumerate(folded) if not char.isspace()]
        matches: list[PhraseMatch] = []
        i = 0
        while i < len(positions):
            found = self._longest_at(folded, positions, i)
            if found is None:
                i += 1
                continue
            last, values = found
            start, end = positions[i], positions[last] + 1
            matches.append(PhraseMatch(start=start, end=end, surface=text[start:end], values=values))
            i = last + 1
        return matches

    def _longest_at(self, folded: list[str], positions: list[int], first: int) -> tuple[int, tuple[str, ...]] | None:
        """The last compact index and values of the longest phrase starting at `first` that respects word edges."""
        start = positions[first]
        if not _is_edge(folded, start):
            return None
        best: tuple[int, tuple[str, ...]] | None = None
        node = self._root
        for index in range(first, len(positions)):
            child = node.children.get(folded[positions[index]])
            if child is None:
                break
            node = child
            if not node.values:
                continue
            if _is_edge(folded, positions[index] + 1):
                best = (index, tuple(node.values))
            elif self._plural_s and self._is_plural_at(folded, positions, index + 1):
                best = (index + 1, tuple(node.values))
        return best

    def _is_plural_at(self, folded: list[str], positions: list[int], index: int) -> bool:
        """Whether compact position `index` holds an "s" that ends a word (right after the previous one)."""
        if index >= len(positions) or positions[index] != positions[index - 1] + 1:
            return False
        return folded[positions[index]] == "s" and _is_edge(folded, positions[index] + 1)


def normalize(text: str) -> str:
    """The matching form of a phrase: case and width folded, whitespace removed."""
    return "".join(char for char in map(_fold, text) if not char.isspace())


def guess_language(text: str) -> Language:
    """ "zh" when the text contains a CJK ideograph, else "en"."""
    return "zh" if any(_is_cjk(char) for char in text) else "en"


def _fold(char: str) -> str:
    # One character in, one out, so positions in the folded text are positions in the original.
    folded = unicodedata.normalize("NFKC", char).lower()
    if len(folded) == 1:
        return folded
    lower = char.lower()
    return lower if len(lower) == 1 else char


def _is_edge(folded: list[str], index: int) -> bool:
    """Whether a match may begin or end between folded[index - 1] and folded[index]."""
    if index <= 0 or index >= len(folded):
        return True
    before, after = folded[index - 1], folded[index]
    both_letters = _is_latin_letter(before) and _is_latin_letter(after)
    return not (both_letters or (before.isdigit() and after.isdigit()))


def _is_latin_letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF
