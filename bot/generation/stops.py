"""Stop sequences: cut a text at the first one, also while it streams in pieces."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class StopCutter:
    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._hold = max((len(s) for s in self._stops), default=1) - 1

    def cut(self, text: str) -> tuple[str, bool]:
        """The text before the earliest stop sequence, and whether one occurred."""
        found = [text.find(s) for s in self._stops if s in text]
        return (text[: min(found)], True) if found else (text, False)

    def stream(self, pieces: Iterable[str], *, strip: bool = False) -> Iterator[str]:
        """The pieces up to the first stop sequence; text that could begin one is held back until it cannot.
        With `strip`, leading and trailing white space of the whole text is dropped."""
        pending, started = "", not strip
        for piece in pieces:
            pending += piece
            if not started:
                pending = pending.lstrip()
                started = bool(pending)
            text, stopped = self.cut(pending)
            if stopped:
                if text.rstrip() if strip else text:
                    yield text.rstrip() if strip else text
                return
            safe = len(pending) - self._hold
            if strip:  # trailing white space may be the end of the text
                safe = min(safe, len(pending.rstrip()))
            if safe > 0:
                yield pending[:safe]
                pending = pending[safe:]
        tail = pending.rstrip() if strip else pending
        if tail:
            yield tail
