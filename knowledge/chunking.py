"""Splitting text into sentences (Chinese and English punctuation) and packing them into chunks.

A chunk is a slice of its section's text, so nothing between two sentences is lost or reordered, and a
chunk never spans two sections: headings are hard boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_CLOSERS = "”’」』）)]》〉\"'"
# A blank line, or a run of sentence-ending marks with the closing quotes or brackets that follow it.
_BOUNDARY = re.compile(rf"\n\n+|[。！？；…!?.]+[{re.escape(_CLOSERS)}]*")
_FULL_WIDTH_ENDS = frozenset("。！？；…")
_OPENERS = "(\"'“‘「『（《"
# A word ending in one of these and a dot does not end a sentence ("Dr. Li", "vs. the X1").
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "fig", "approx", "incl", "dept"})
# Where an over-long sentence is best cut, most preferred first: a line break, a clause, a word.
# (Not ":", which is inside times like 9:00.)
_CUT_PREFERENCES = ("\n", "，、,;；：", " ")


@dataclass(frozen=True, slots=True)
class Section:
    """Text under one heading path; `line` is where `text` starts in the file (1-based; 0 when unknown)."""

    headings: tuple[str, ...]
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive sentences of one section, at most `max_chars` long, and the line it starts on."""

    headings: tuple[str, ...]
    text: str
    line: int


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace-normalised, in order.

    A sentence ends at 。！？；… (or ……), at "." "!" "?" followed by a space or the end (not in "3.5",
    "e.g." or "U.S."), and at a blank line; closing quotes and brackets stay with their sentence.
    """
    tidy = _tidy(text)
    return [_join_lines(tidy[start:end]) for start, end in _sentence_spans(tidy)]


def chunk_sections(sections: Sequence[Section], *, max_chars: int = 400) -> list[Chunk]:
    """Chunks of at most `max_chars` characters: whole sentences packed greedily, never across sections.

    A sentence longer than `max_chars` is cut, at a line break, comma or space near the end when there is one.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    return [chunk for section in sections for chunk in _chunk_section(section, max_chars)]


def _chunk_section(section: Section, max_chars: int) -> Iterator[Chunk]:
    text = _tidy(section.text)
    line, counted = section.line, 0  # lines are counted incrementally so a huge section stays linear
    start = end = -1
    for piece_start, piece_end in _pieces(text, max_chars):
        if start >= 0 and piece_end - start <= max_chars:
            end = piece_end
            continue
        if start >= 0:
            yield Chunk(section.headings, _join_lines(text[start:end]), line)
        start, end = piece_start, piece_end
        if section.line:
            line += text.count("\n", counted, start)
            counted = start
    if start >= 0:
        yield Chunk(section.headings, _join_lines(text[start:end]), line)


def _pieces(text: str, max_chars: int) -> Iterator[tuple[int, int]]:
    """Sentence spans, with those longer than `max_chars` cut into pieces that fit."""
    for start, end in _sentence_spans(text):
        while end - start > max_chars:
            cut = _cut_point(text, start, start + max_chars, max_chars)
            yield from _trimmed(text, start, cut)
            start = cut
        yield from _trimmed(text, start, end)


def _cut_point(text: str, start: int, limit: int, max_chars: int) -> int:
    # Only the second half of the window is searched, so pieces do not get tiny.
    floor = start + max_chars // 2
    for separators in _CUT_PREFERENCES:
        found = max(text.rfind(separator, floor, limit) for separator in separators)
        if found >= floor:
            return found + 1
    return limit


def _sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    start = 0
    for match in _BOUNDARY.finditer(text):
        if _ends_sentence(text, match):
            yield from _trimmed(text, start, match.end())
            start = match.end()
    yield from _trimmed(text, start, len(text))


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    mark = match.group()
    if mark[0] == "\n" or not _FULL_WIDTH_ENDS.isdisjoint(mark):
        return True
    after = text[match.end() : match.end() + 1]
    if "." not in mark:  # "!" or "?": also before Chinese text, which has no spaces
        return not after or after.isspace() or _is_cjk(after)
    if after and not after.isspace():
        return False  # "3.5", "U.S", "example.com"
    following = text[match.end() : match.end() + 3].lstrip()[:1]
    return not following.islower() and not _is_abbreviation(text, match.start())


def _is_abbreviation(text: str, dot: int) -> bool:
    window = text[max(0, dot - 24) : dot]
    word = window.split()[-1] if window and not window[-1].isspace() else ""
    bare = word.lstrip(_OPENERS)
    if "." in bare or (len(bare) == 1 and bare.isalpha()) or bare.lower() in _ABBREVIATIONS:
        return True
    # "1. Unpack the box": a numbered line, not a sentence "1."
    word_start = dot - len(word)
    return bare.isdigit() and (word_start == 0 or text[word_start - 1] == "\n")


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _tidy(text: str) -> str:
    """Spaces collapsed and lines stripped, keeping every line so that line numbers still count."""
    return "\n".join(" ".join(line.split()) for line in text.split("\n"))


def _join_lines(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if line)


def _is_cjk(char: str) -> bool:
    return "\u3000" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" or "\uff00" <= char <= "\uffef"


@dataclass(frozen=True, slots=True)
class Parsed:
    title: str  # the first H1 or <title>; "" when none
    sections: list[Section]


class Outline:
    """The heading path so far, and the lines of the section under it."""

    def __init__(self, start: int) -> None:
        self.title = ""  # the first H1
        self.sections: list[Section] = []
        self.lines: list[str] = []
        self._path: list[tuple[int, str]] = []
        self._start = start

    def heading(self, level: int, text: str, start: int) -> None:
        """Close the section and open one under `text`, whose text starts on line `start` (0: unknown)."""
        self.close()
        if level == 1 and not self.title:
            self.title = text
        while self._path and self._path[-1][0] >= level:  # a heading at the same or a higher level is a sibling
            self._path.pop()
        if text:
            self._path.append((level, text))
        self._start = start

    def close(self) -> None:
        if self.lines:
            self.sections.append(Section(tuple(text for _, text in self._path), "\n".join(self.lines), self._start))
        self.lines = []
