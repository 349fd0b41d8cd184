"""Grounding: what a generated reply states must come from the retrieved facts (or the slots).

Numbers (prices, durations, percentages, dates) must appear in the facts; product names too (given the
knowledge graph's linker); a promise word ("保证", "guarantee") only when the facts make that promise; and
no clause may say the opposite of the fact it restates (`safety.claims`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.events import Session
from bot.types import Fact, SafetyVerdict, Stage
from safety.aho_corasick import fold
from safety.claims import Names, contradictions

# 1-2, 3.5, 24/7, 15%, 2026-10-05, 14:22 -> the separate numbers, a percentage keeps its sign; digits right
# after a Latin letter belong to a name or an id ("X1", "SO20261124"), which the names rule covers
_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:\.\d+)?%?")
_PROMISE = re.compile(r"保证|承诺|包您|一定会|肯定会|guarantee[sd]?|promise[sd]?|we will make sure|rest assured")


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text.replace(",", ""))}


class GroundingCheck:
    """Blocks a candidate that states a number, names a product or makes a promise the facts do not, or that
    contradicts them. `names` finds product ids in a text (the knowledge graph's entity linker)."""

    name = "grounding"

    def __init__(self, names: Names | None = None) -> None:
        self.names = names

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        known = " ".join([f.text for f in facts] + [str(v) for v in (session.slots if session else {}).values()])
        latest = session.latest_message() if session is not None else None
        asked = latest.text if latest is not None else ""  # names the customer used; never numbers they claim
        for rule, problem in self._problems(text, known, asked, facts):
            if problem:
                return SafetyVerdict(self.name, stage, False, "ungrounded", problem, rule=rule)
        return SafetyVerdict(self.name, stage, True)

    def _problems(self, text: str, known: str, asked: str, facts: Sequence[Fact]) -> list[tuple[str, str]]:
        """(rule, what is wrong or ""), for every rule."""
        unsupported = sorted(numbers(text) - numbers(known))
        found = [("numbers", f"numbers not in the facts: {', '.join(unsupported[:5])}" if unsupported else "")]
        if self.names is not None:
            strangers = sorted(self.names(fold(text)) - self.names(fold(f"{known} {asked}")))
            found.append(("names", f"products not in the facts: {', '.join(strangers[:5])}" if strangers else ""))
        promises = {m.group(0) for m in _PROMISE.finditer(fold(text))} - set(_PROMISE.findall(fold(known)))
        found.append(
            ("promises", f"a promise the facts do not make: {', '.join(sorted(promises))}" if promises else "")
        )
        opposite = contradictions(text, [f.text for f in facts], self.names)
        found.append(("contradiction", f"contradicts the facts: {opposite[0][:80]!r}" if opposite else ""))
        return found
