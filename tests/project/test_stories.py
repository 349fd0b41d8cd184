"""Rules, stories and test stories: every step kind, rule conditions, and errors with lines."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.project.stories import ANY_VALUE, parse_stories
from bot.project.yaml_io import LineMap, Source, parse_yaml
from bot.types import Entity, Story, StoryStep


def _parse(text: str, key: str = "rules") -> tuple[Story, ...]:
    source = Source(Path("/p/data/rules.yml"), name="data/rules.yml")
    raw = parse_yaml(textwrap.dedent(text), path=source.path)
    assert isinstance(raw, LineMap)
    return parse_stories(raw[key], source=source, line=raw.line_of(key), is_rule=key == "rules")


def test_rule_with_conditions_and_active_loop_null() -> None:
    (rule,) = _parse("""
        rules:
        - rule: submit the booking form
          condition:
          - active_loop: booking_form
          - slot_was_set:
            - logged_in: true
          steps:
          - action: booking_form
          - active_loop: null
          - slot_was_set:
            - requested_slot: null
            - city
          - action: utter_booked
          wait_for_user_input: false
        """)
    assert rule == Story(
        name="submit the booking form",
        is_rule=True,
        conditions=(
            StoryStep("active_loop", "booking_form", line=5),
            StoryStep("slot_was_set", slots={"logged_in": True}, line=6),
        ),
        steps=(
            StoryStep("action", "booking_form", line=9),
            StoryStep("active_loop", None, line=10),
            StoryStep("slot_was_set", slots={"requested_slot": None, "city": ANY_VALUE}, line=11),
            StoryStep("action", "utter_booked", line=14),
        ),
        wait_for_user_input=False,
        source="data/rules.yml",
    )


def test_conversation_start_rule_and_activating_a_form() -> None:
    (rule,) = _parse("""
        rules:
        - rule: welcome
          conversation_start: true
          steps:
          - intent: greet
          - action: utter_welcome
          - action: booking_form
          - active_loop: booking_form
        """)
    assert rule.conversation_start is True
    assert rule.wait_for_user_input is True
    assert [(step.kind, step.name) for step in rule.steps] == [
        ("intent", "greet"),
        ("action", "utter_welcome"),
        ("action", "booking_form"),
        ("active_loop", "booking_form"),
    ]


def test_story_entities_or_and_checkpoint() -> None:
    (story,) = _parse(
        """
        stories:
        - story: check an order
          steps:
          - checkpoint: start
          - intent: check_order
            entities:
            - order_id: "123"
            - city
            - entity: product
              value: 手机
              role: item
          - or:
            - intent: affirm
            - intent: thank
          - action: action_check_order
        """,
        key="stories",
    )
    assert story.is_rule is False
    intent, alternative, action = story.steps
    assert intent.entities == (
        Entity("order_id", "123", 0, 0, extractor="story"),
        Entity("city", ANY_VALUE, 0, 0, extractor="story"),
        Entity("product", "手机", 0, 0, extractor="story"),
    )
    assert (alternative.kind, alternative.name) == ("intent", "affirm")  # the first alternative of `or:`
    assert (action.kind, action.name, action.line) == ("action", "action_check_order", 16)


def test_test_story_user_steps_with_annotations() -> None:
    (story,) = _parse(
        """
        stories:
        - story: 查订单
          steps:
          - user: |
              帮我查一下订单[A1024](order_id)
            intent: check_order
          - action: action_check_order
          - user: |
              thanks!
            intent: thank
          - user: |
              free text with no intent
        """,
        key="stories",
    )
    first, _, second, third = story.steps
    assert first == StoryStep(
        "user",
        "check_order",
        text="帮我查一下订单A1024",
        entities=(Entity("order_id", "A1024", 7, 12, extractor="annotation"),),
        line=5,
    )
    assert (second.kind, second.name, second.text) == ("user", "thank", "thanks!")
    assert (third.name, third.text) == (None, "free text with no intent")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("rules:\n- rule: r\n  steps:\n  - intnet: greet\n", 4, "a step has `intnet:`"),
        ("rules:\n- rule: r\n  steps:\n  - bot: hello\n", 4, "`bot:` steps are not supported"),
        ("rules:\n- rule: r\n", 2, "has no `steps:`"),
        ("rules:\n- steps: []\n", 2, "needs a `rule:` name"),
        ("rules:\n- story: s\n  steps: []\n", 2, "move this story under `stories:`"),
        ("rules:\n- rule: r\n  steps: {intent: greet}\n", 3, "must be a list"),
        ("rules:\n- rule: r\n  condition:\n  - action: a\n  steps: []\n", 4, "a rule condition is"),
        ("rules:\n- rule: r\n  conversation_start: yes\n  steps: []\n", 3, "`true` or `false`"),
        ("rules:\n- rule: r\n  steps:\n  - intent: [a]\n", 4, "`intent:` must be a name"),
    ],
)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ProjectError, match=message) as caught:
        _parse(text)
    assert caught.value.path == "/p/data/rules.yml"
    assert caught.value.line == line
