"""Sentence boundaries in Chinese and English text, for checking a streamed answer one sentence at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator

# after 。！？；… or a newline; after . ! ? followed by white space (so 3.5 and e.g. "v1.2" stay whole)
_END = re.compile(r"(?:[。！？；…]+[”’」』）)]*|[.!?]+[\"')\]]*(?=\s)|\n+)")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each with its closing punctuation and following white space."""
    return [s for s in _segments(text) if s.strip()]


def _segments(text: str) -> list[str]:
    sentences, start = [], 0
    for match in _END.finditer(text):
        end = match.end()
        while end < len(text) and text[end] in " \t":
            end += 1
        sentences.append(text[start:end])
        start = end
    if start < len(text):
        sentences.append(text[start:])
    return sentences


def complete_sentences(text: str) -> str:
    """`text` without a trailing unfinished sentence (an answer cut by the token limit); all of it if it is one."""
    sentences = split_sentences(text)
    if len(sentences) > 1 and not _END.search(sentences[-1] + " "):
        return "".join(sentences[:-1]).strip()
    return text.strip()


class SentenceBuffer:
    """Feed streamed pieces; get back each sentence once it is certainly complete."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> Iterator[str]:
        self._pending += piece
        segments = _segments(self._pending)
        # the last one may still grow ("3." before "5", "Hello" before "!") unless it ended at a sentence end
        ended = bool(segments) and _END.search(segments[-1]) is not None and self._pending[-1:].isspace()
        complete = segments if ended else segments[:-1]
        self._pending = self._pending[sum(len(s) for s in complete) :]
        yield from (s for s in complete if s.strip())

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest
