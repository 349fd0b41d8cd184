"""When no policy is sure enough: the default fallback after a user message, otherwise wait for the user."""

from __future__ import annotations

from bot.events import PolicyDecision, Session
from bot.types import ACTION_LISTEN, Domain

DEFAULT_FALLBACK = "action_default_fallback"


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
