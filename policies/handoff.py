"""Hands the conversation to a human: on request, or when input safety flagged a risk or an angry customer.
(Repeated misunderstanding hands off through the two-stage fallback.)"""

from __future__ import annotations

from collections.abc import Collection

from bot.events import HandedOff, PolicyDecision, RiskFlagged, Session, UserUttered
from bot.types import ACTION_HANDOFF, ACTION_LISTEN, Domain


class HandoffPolicy:
    """The highest priority (9): nothing should keep a customer who asked for a person from one."""

    def __init__(
        self,
        *,
        intents: Collection[str] = ("request_human",),
        categories: Collection[str] = ("risk", "anger"),
        name: str = "handoff",
        priority: int = 9,
    ) -> None:
        self.name = name
        self.priority = priority
        self._intents = frozenset(intents)
        self._categories = frozenset(categories)

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        latest = session.latest_action()
        if latest == ACTION_HANDOFF:
            return PolicyDecision(ACTION_LISTEN, self.name, 1.0, "handed off: a human answers from here")
        if latest != ACTION_LISTEN or session.state.handed_off:
            return None
        message = session.latest_message()
        if message is not None and message.nlu is not None and message.nlu.intent in self._intents:
            return _handoff(self.name, f"requested:{message.nlu.intent}", f"the customer asked ({message.nlu.intent})")
        for flag in _flags_this_turn(session):
            if flag.category in self._categories:
                return _handoff(self.name, f"{flag.category}:{flag.check}", f"input safety flagged {flag.reason}")
        return None


def _handoff(policy: str, reason: str, why: str) -> PolicyDecision:
    return PolicyDecision(ACTION_HANDOFF, policy, 1.0, f"hand off: {why}", events=(HandedOff(reason=reason),))


def _flags_this_turn(session: Session) -> list[RiskFlagged]:
    flags: list[RiskFlagged] = []
    for event in reversed(session.events):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, RiskFlagged):
            flags.append(event)
    return flags
