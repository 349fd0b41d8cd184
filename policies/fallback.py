"""Fallbacks. The two-stage fallback for messages the NLU did not understand: ask to rephrase, then the
default fallback, then offer a human, then hand off. The last-resort policy when nothing predicts."""

from __future__ import annotations

from bot.events import HandedOff, PolicyDecision, Session, UserUttered
from bot.types import (
    ACTION_ASK_REPHRASE,
    ACTION_DEFAULT_FALLBACK,
    ACTION_HANDOFF,
    ACTION_LISTEN,
    ACTION_OFFER_HUMAN,
    FALLBACK_INTENT,
    Domain,
)

DEFAULT_FALLBACK = ACTION_DEFAULT_FALLBACK


class TwoStageFallbackPolicy:
    """Below the rules (priority 5): a project's own rule for `nlu_fallback` still wins."""

    def __init__(self, *, offer_after: int = 3, name: str = "two_stage_fallback", priority: int = 5) -> None:
        self.name = name
        self.priority = priority
        self._offer_after = offer_after

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        latest = session.latest_action()
        if latest in (ACTION_ASK_REPHRASE, ACTION_DEFAULT_FALLBACK, ACTION_OFFER_HUMAN):
            return PolicyDecision(ACTION_LISTEN, self.name, 1.0, f"{latest} asked the user")
        if latest != ACTION_LISTEN:
            return None
        streak = fallback_streak(session)
        if streak == 0:
            return None
        said = f"not understood {streak} time{'s' if streak > 1 else ''} in a row"
        if streak > self._offer_after:
            handoff = HandedOff(reason="repeated_fallback")
            return PolicyDecision(ACTION_HANDOFF, self.name, 1.0, f"{said}: hand off", events=(handoff,))
        if streak == self._offer_after:
            return PolicyDecision(ACTION_OFFER_HUMAN, self.name, 1.0, f"{said}: offer a human")
        if streak == 1:
            return PolicyDecision(ACTION_ASK_REPHRASE, self.name, 1.0, f"{said}: ask to rephrase")
        return PolicyDecision(ACTION_DEFAULT_FALLBACK, self.name, 1.0, f"{said}: default fallback")


def fallback_streak(session: Session) -> int:
    """How many of the latest user messages in a row the NLU did not understand."""
    streak = 0
    for event in reversed(session.events):
        if isinstance(event, UserUttered):
            if event.nlu is None or event.nlu.intent != FALLBACK_INTENT:
                break
            streak += 1
    return streak


class FallbackPolicy:
    def __init__(self, *, name: str = "fallback", priority: int = 0) -> None:
        self.name = name
        self.priority = priority

    def decide(self, session: Session, domain: Domain) -> PolicyDecision:
        if session.latest_action() == ACTION_LISTEN:
            message = session.latest_message()
            intent = message.nlu.intent if message is not None and message.nlu is not None else "?"
            return PolicyDecision(DEFAULT_FALLBACK, self.name, 0.0, f"no rule or story covers intent {intent!r} here")
        return PolicyDecision(ACTION_LISTEN, self.name, 0.0, "no policy predicts another action: wait for the user")
