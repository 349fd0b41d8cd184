"""Rules (Rasa semantics) and memoized stories: the longest story prefix that ends the session predicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.events import PolicyDecision, Session, SessionState
from bot.types import ACTION_LISTEN, Domain, SlotValue, Story, StoryStep
from policies.trail import TrailItem, trail

ANY_VALUE = "*"  # a bare slot name in `slot_was_set`: any value


@dataclass(frozen=True, slots=True)
class _Candidate:
    action: str
    matched: int
    story: str


class RulePolicy:
    """Predicts the next step of a rule whose steps so far are the latest steps of the session."""

    def __init__(
        self, rules: Sequence[Story], *, name: str = "rules", priority: int = 6, windows: bool = False
    ) -> None:
        self.name = name
        self.priority = priority
        self._rules = tuple(rules)
        self._windows = windows  # stories: any stretch of a story may match, not only its beginning

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        items = trail(session.events)
        best: _Candidate | None = None
        for rule in self._rules:
            candidate = _predict(rule, items, session.state, self._windows)
            if candidate is not None and (best is None or candidate.matched > best.matched):
                best = candidate
        if best is None:
            return None
        return PolicyDecision(
            action=best.action,
            policy=self.name,
            confidence=1.0,
            reason=f"{'rule' if self.priority >= 6 else 'story'} {best.story!r} matched its first {best.matched} steps",
        )


def _predict(rule: Story, items: list[TrailItem], now: SessionState, windows: bool) -> _Candidate | None:
    steps = [s for s in rule.steps if s.kind in ("intent", "action")]
    best: _Candidate | None = None
    for start in range(len(steps) if windows else 1):
        for end in range(start + 1, len(steps) + 1):
            matched = end - start
            if best is not None and matched <= best.matched:
                continue
            if not _tail_matches(steps[start:end], items, rule.conversation_start and start == 0):
                continue
            if start == 0 and not _conditions_hold(rule.conditions, items[-matched]):
                continue
            if not _inline_checks_hold(rule.steps, steps[end - 1], now):
                continue
            action = _next_action(rule, steps, end)
            if action is not None:
                best = _Candidate(action, matched, rule.name)
    return best


def _next_action(rule: Story, steps: list[StoryStep], end: int) -> str | None:
    if end < len(steps):
        return str(steps[end].name) if steps[end].kind == "action" else ACTION_LISTEN
    if steps[-1].kind == "action" and rule.wait_for_user_input:
        return ACTION_LISTEN
    return None


def _tail_matches(prefix: list[StoryStep], items: list[TrailItem], at_start: bool) -> bool:
    if len(prefix) > len(items):
        return False
    tail = items[len(items) - len(prefix) :]
    if at_start and len(items) != len(prefix):
        return False
    return all(step.kind == item.kind and step.name == item.name for step, item in zip(prefix, tail, strict=True))


def _conditions_hold(conditions: tuple[StoryStep, ...], first: TrailItem) -> bool:
    for condition in conditions:
        if condition.kind == "active_loop" and first.active_during != condition.name:
            return False
        if condition.kind == "slot_was_set" and not _slots_match(condition.slots, first.before.slots):
            return False
    return True


def _inline_checks_hold(all_steps: tuple[StoryStep, ...], last_matched: StoryStep, now: SessionState) -> bool:
    """`active_loop` and `slot_was_set` steps right after the last matched step must describe the present."""
    position = all_steps.index(last_matched)
    for step in all_steps[position + 1 :]:
        if step.kind == "active_loop" and now.active_form != step.name:
            return False
        if step.kind == "slot_was_set" and not _slots_match(step.slots, now.slots):
            return False
        if step.kind in ("intent", "action"):
            break
    return True


def _slots_match(expected: Mapping[str, SlotValue], actual: Mapping[str, SlotValue]) -> bool:
    for name, value in expected.items():
        present = actual.get(name)
        if (present is None) if value == ANY_VALUE else (present != value):
            return False
    return True
