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


@dataclass(frozen=True, slots=True)
class _Indexed:
    """A rule with what matching needs precomputed: its intent and action steps, and where each can end a match."""

    rule: Story
    steps: tuple[StoryStep, ...]
    ends: Mapping[tuple[str, str], tuple[int, ...]]  # (kind, name) -> each `end` whose step steps[end - 1] it is

    @classmethod
    def of(cls, rule: Story) -> _Indexed:
        steps = tuple(s for s in rule.steps if s.kind in ("intent", "action"))
        ends: dict[tuple[str, str], list[int]] = {}
        for end, step in enumerate(steps, start=1):
            ends.setdefault((step.kind, step.name or ""), []).append(end)
        return cls(rule, steps, {key: tuple(found) for key, found in ends.items()})


class RulePolicy:
    """Predicts the next step of a rule whose steps so far are the latest steps of the session."""

    def __init__(
        self, rules: Sequence[Story], *, name: str = "rules", priority: int = 6, windows: bool = False
    ) -> None:
        self.name = name
        self.priority = priority
        self._rules = tuple(_Indexed.of(rule) for rule in rules)
        self._windows = windows  # stories: any stretch of a story may match, not only its beginning

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        items = trail(session.events)
        if not items:
            return None
        last = (items[-1].kind, items[-1].name)
        best: _Candidate | None = None
        for indexed in self._rules:
            ends = indexed.ends.get(last)
            if not ends:  # no step of it is the session's latest: nothing of it can match
                continue
            candidate = _predict(indexed, ends, items, session.state, self._windows)
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


def _predict(
    indexed: _Indexed, ends: Sequence[int], items: Sequence[TrailItem], now: SessionState, windows: bool
) -> _Candidate | None:
    """The longest stretch of the rule that ends the session and predicts a next step; on a tie, the earliest.
    Only stretches ending at a step like the session's latest (`ends`) can match."""
    rule, steps = indexed.rule, indexed.steps
    best: _Candidate | None = None
    for end in ends:
        action = _next_action(rule, steps, end)
        if action is None or not _inline_checks_hold(rule.steps, steps[end - 1], now):
            continue
        longest = _matching_tail(steps, end, items)
        matched = _usable_length(rule, longest, end, items, windows)
        if matched and (best is None or matched > best.matched):
            best = _Candidate(action, matched, rule.name)
    return best


def _matching_tail(steps: Sequence[StoryStep], end: int, items: Sequence[TrailItem]) -> int:
    """How many steps up to `end` equal the session's latest items, one for one."""
    length = 0
    while length < end and length < len(items):
        step, item = steps[end - 1 - length], items[-1 - length]
        if step.kind != item.kind or step.name != item.name:
            break
        length += 1
    return length


def _usable_length(rule: Story, longest: int, end: int, items: Sequence[TrailItem], windows: bool) -> int:
    """The longest match allowed: from the rule's start only when its conditions hold (and, for a conversation
    start, when the session has nothing before); any stretch when matching windows of stories; 0 for none."""
    if longest == end:  # the stretch reaches the rule's first step
        at_start_ok = not rule.conversation_start or len(items) == end
        if at_start_ok and _conditions_hold(rule.conditions, items[-end]):
            return end
        return end - 1 if windows else 0
    return longest if windows else 0


def _next_action(rule: Story, steps: Sequence[StoryStep], end: int) -> str | None:
    if end < len(steps):
        return str(steps[end].name) if steps[end].kind == "action" else ACTION_LISTEN
    if steps[-1].kind == "action" and rule.wait_for_user_input:
        return ACTION_LISTEN
    return None


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
