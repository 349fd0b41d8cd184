"""Clarification: when the two best intents are too close to tell, ask which one was meant, with buttons."""

from __future__ import annotations

from collections.abc import Collection

from bot.events import ActionExecuted, PolicyDecision, RecommendationClicked, Session, UserUttered
from bot.types import ACTION_CLARIFY, ACTION_LISTEN, Domain, IntentScore


class ClarifyPolicy:
    """Above the rules (priority 8): a rule would act on a guess."""

    def __init__(
        self,
        *,
        margin: float = 0.2,
        min_confidence: float = 0.2,
        exclude: Collection[str] = (),
        name: str = "clarify",
        priority: int = 8,
    ) -> None:
        self.name = name
        self.priority = priority
        self._margin = margin
        self._min = min_confidence
        self._exclude = frozenset(exclude)

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        if session.latest_action() == ACTION_CLARIFY:
            return PolicyDecision(ACTION_LISTEN, self.name, 1.0, "asked which intent was meant")
        if session.latest_action() != ACTION_LISTEN or session.active_form is not None or _just_asked(session):
            return None
        message = session.latest_message()
        if _picked_a_recommendation(session):
            return None  # the customer chose one of the questions offered: no need to ask which one
        if message is None or message.nlu is None or message.nlu.intent in self._exclude:
            return None  # below the NLU's threshold the intents are guesses: the answer path looks it up instead
        choices = self.choices(message.nlu.ranking)
        if len(choices) < 2:
            return None
        shown = ", ".join(f"{c.name} {c.confidence:.2f}" for c in choices)
        return PolicyDecision(ACTION_CLARIFY, self.name, 1.0, f"intents too close to tell apart: {shown}")

    def choices(self, ranking: tuple[IntentScore, ...]) -> list[IntentScore]:
        """The intents within the margin of the best one, if at least two of them qualify."""
        if len(ranking) < 2 or ranking[0].name in self._exclude:
            return []
        best = ranking[0].confidence
        close = [s for s in ranking[:3] if best - s.confidence <= self._margin and s.confidence >= self._min]
        return [s for s in close if s.name not in self._exclude]


def _picked_a_recommendation(session: Session) -> bool:
    for event in reversed(session.events):
        if isinstance(event, RecommendationClicked):
            return True
        if isinstance(event, UserUttered):
            return False
    return False


def _just_asked(session: Session) -> bool:
    """One clarification per question: the answer to it is taken as it comes."""
    past_latest_message = False
    for event in reversed(session.events):
        if isinstance(event, UserUttered):
            if past_latest_message:
                return False
            past_latest_message = True
        elif past_latest_message and isinstance(event, ActionExecuted) and event.name != ACTION_LISTEN:
            return event.name == ACTION_CLARIFY
    return False
