"""Asks every policy; the most confident prediction wins, ties go to the higher priority."""

from __future__ import annotations

from collections.abc import Sequence

from bot.events import PolicyDecision, Session
from bot.protocols import Policy
from bot.types import Domain
from policies.fallback import FallbackPolicy


class PolicyEnsemble:
    def __init__(self, policies: Sequence[Policy], *, min_confidence: float = 0.3) -> None:
        self._policies = sorted(policies, key=lambda p: -p.priority)
        self._fallback = FallbackPolicy()
        self._min_confidence = min_confidence

    @property
    def policies(self) -> tuple[Policy, ...]:
        """Highest priority first."""
        return tuple(self._policies)

    def warm_up(self) -> None:
        """Load the policies' models (the ML policy's)."""
        for policy in self._policies:
            warm_up = getattr(policy, "warm_up", None)
            if callable(warm_up):
                warm_up()

    def decide(self, session: Session, domain: Domain) -> PolicyDecision:
        best: tuple[float, int, PolicyDecision] | None = None
        for policy in self._policies:
            decision = policy.decide(session, domain)
            if decision is None or decision.confidence < self._min_confidence:
                continue
            key = (decision.confidence, policy.priority, decision)
            if best is None or key[:2] > best[:2]:
                best = key
        return best[2] if best is not None else self._fallback.decide(session, domain)
