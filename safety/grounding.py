"""Grounding: every number in a generated reply (price, duration, percentage, date) must come from the facts."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.events import Session
from bot.types import Fact, SafetyVerdict, Stage

# 1-2, 3.5, 24/7, 15%, 2026-10-05, 14:22 -> the separate numbers, a percentage keeps its sign
_NUMBER = re.compile(r"\d+(?:\.\d+)?%?")


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text.replace(",", ""))}


class GroundingCheck:
    """Blocks a candidate that states a number the retrieved facts (or the slots) do not contain."""

    name = "grounding"

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        known = set().union(*(numbers(f.text) for f in facts)) if facts else set()
        if session is not None:
            known |= numbers(" ".join(str(v) for v in session.slots.values() if v is not None))
        unsupported = sorted(numbers(text) - known)
        if not unsupported:
            return SafetyVerdict(self.name, stage, True)
        return SafetyVerdict(
            self.name, stage, False, "ungrounded", f"numbers not in the facts: {', '.join(unsupported[:5])}"
        )
