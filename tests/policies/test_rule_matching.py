"""The rule policy's indexed matching decides exactly as the plain definition does: try every stretch of every
rule (from its first step for rules, anywhere for memoized stories) against the end of the session and keep the
longest, the earliest on a tie. Random rules and sessions over a small alphabet, so that matches are frequent."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import ActionExecuted, Event, PolicyDecision, Session, SessionStarted, SlotSet, UserUttered
from bot.types import Domain, NluResult, Story, StoryStep
from policies.rules import RulePolicy, _conditions_hold, _inline_checks_hold, _next_action
from policies.trail import TrailItem, trail

DOMAIN = Domain(intents=("a", "b"))
STEPS = st.one_of(
    st.sampled_from(["a", "b"]).map(lambda name: StoryStep(kind="intent", name=name)),
    st.sampled_from(["x", "y"]).map(lambda name: StoryStep(kind="action", name=name)),
    st.sampled_from(["0", "1"]).map(lambda value: StoryStep(kind="slot_was_set", slots={"s": value})),
)
EVENTS = st.one_of(
    st.sampled_from(["a", "b"]).map(lambda i: UserUttered(text=i, nlu=NluResult(text=i, intent=i, confidence=1.0))),
    st.sampled_from(["x", "y"]).map(lambda name: ActionExecuted(name=name)),
    st.sampled_from(["0", "1"]).map(lambda value: SlotSet(name="s", value=value)),
)


@st.composite
def stories(draw: st.DrawFn) -> Story:
    steps = draw(st.lists(STEPS, min_size=1, max_size=6))
    condition = draw(st.sampled_from([(), (StoryStep(kind="slot_was_set", slots={"s": "1"}),)]))
    return Story(
        name=f"r{draw(st.integers(0, 99))}",
        steps=tuple(steps),
        is_rule=True,
        conditions=condition,
        conversation_start=draw(st.booleans()),
        wait_for_user_input=draw(st.booleans()),
    )


def reference(rules: list[Story], session: Session, windows: bool) -> tuple[str, int] | None:
    """Every stretch of every rule, as the policy was first written."""
    items = trail(session.events)
    best: tuple[str, int] | None = None
    for rule in rules:
        found = _reference_rule(rule, items, session, windows)
        if found is not None and (best is None or found[1] > best[1]):
            best = found
    return best


def _reference_rule(rule: Story, items: Sequence[TrailItem], session: Session, windows: bool) -> tuple[str, int] | None:
    steps = [s for s in rule.steps if s.kind in ("intent", "action")]
    best: tuple[str, int] | None = None
    for start in range(len(steps) if windows else 1):
        for end in range(start + 1, len(steps) + 1):
            matched = end - start
            if matched > len(items) or (best is not None and matched <= best[1]):
                continue
            tail = items[len(items) - matched :]
            if any(s.kind != i.kind or s.name != i.name for s, i in zip(steps[start:end], tail, strict=True)):
                continue
            if rule.conversation_start and start == 0 and len(items) != matched:
                continue
            if start == 0 and not _conditions_hold(rule.conditions, items[-matched]):
                continue
            if not _inline_checks_hold(rule.steps, steps[end - 1], session.state):
                continue
            action = _next_action(rule, steps, end)
            if action is not None:
                best = (action, matched)
    return best


def decided(decision: PolicyDecision | None) -> tuple[str, int] | None:
    if decision is None:
        return None
    return decision.action, int(decision.reason.split("matched its first ")[1].split()[0])


@settings(max_examples=400, deadline=None)
@given(st.lists(stories(), min_size=1, max_size=4), st.lists(EVENTS, max_size=12), st.booleans())
def test_indexed_matching_decides_as_the_plain_definition(rules: list[Story], events: list[Event], windows: bool):
    session = Session("c").with_events([SessionStarted(), *events])
    policy = RulePolicy(rules, windows=windows)
    assert decided(policy.decide(session, DOMAIN)) == reference(rules, session, windows)
