"""Repeated abuse: after a number of blocked abusive messages the conversation goes to a human or cools down.

Counted from the session's own `SafetyBlocked` events, so every worker sees the same count and nothing is
stored twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from bot.events import SafetyBlocked, Session

COOLDOWN_CHECK = "cooldown"
AbuseOutcome = Literal["refuse", "handoff", "cooldown"]


@dataclass(frozen=True, slots=True)
class AbuseRule:
    """`limit` input blocks in `categories` within one session lead to `then`."""

    categories: frozenset[str] = frozenset({"abuse"})
    limit: int = 3
    then: Literal["handoff", "cooldown"] = "handoff"
    cooldown_s: float = 300.0

    def _blocks(self, session: Session) -> list[SafetyBlocked]:
        return [
            e
            for e in session.events
            if isinstance(e, SafetyBlocked) and e.stage == "input" and e.category in self.categories
        ]

    def after_block(self, session: Session, category: str) -> AbuseOutcome:
        """What follows the block just decided (not yet in `session`)."""
        if category not in self.categories or len(self._blocks(session)) + 1 < self.limit:
            return "refuse"
        return self.then

    def cooling_down(self, session: Session, now: float | None = None) -> bool:
        """True while the last abusive message that reached the limit is less than `cooldown_s` old."""
        if self.then != "cooldown":
            return False
        blocks = self._blocks(session)
        if len(blocks) < self.limit:
            return False
        return (time.time() if now is None else now) - blocks[-1].timestamp < self.cooldown_s
