"""Flags: input that may pass but that a person should handle (a legal threat, self-harm, an angry
customer). The verdict allows the text and names the category; the handoff policy acts on it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from bot.events import Session
from bot.types import Fact, SafetyVerdict, Stage
from safety.lexicon import Lexicon, load_lexicon

RISK = "risk"
ANGER = "anger"
_INTENSE = re.compile(r"[!！]{2,}|[?？]{3,}|\b[A-Z]{4,}\b")


def default_flag_paths() -> list[Path]:
    data = resources.files("safety") / "data"
    return [Path(str(data / "flags.txt"))]


class FlagCheck:
    """A risk term flags at once; anger needs two signs (two terms, or a term and "!!" or capitals),
    because one "太差了" is a complaint the bot can still help with."""

    name = "flags"

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    @classmethod
    def default(cls, extra_paths: Iterable[str | Path] = ()) -> FlagCheck:
        return cls(load_lexicon([*default_flag_paths(), *extra_paths]))

    def warm_up(self) -> None:
        self.lexicon.compile()

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        matches = self.lexicon.blocking(text) if stage == "input" else []
        by_category: dict[str, list[str]] = {}
        for match in matches:
            by_category.setdefault(match.term.category, []).append(match.term.masked)
        anger = len(by_category.get(ANGER, ())) + (1 if _INTENSE.search(text) else 0)
        for category in sorted(by_category, key=lambda c: c == ANGER):  # a risk outranks anger
            if category != ANGER or anger >= 2:
                terms = ", ".join(dict.fromkeys(by_category[category]))
                return SafetyVerdict(self.name, stage, allowed=True, category=category, reason=f"{category}: {terms}")
        return SafetyVerdict(self.name, stage, allowed=True)
