"""Rule, form, memoization and fallback policies on hand-built sessions."""

from __future__ import annotations

from bot.events import (
    ActionExecuted,
    Event,
    FormActivated,
    FormCompleted,
    Session,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from bot.types import ACTION_LISTEN, Domain, NluResult, Story, StoryStep
from policies.ensemble import PolicyEnsemble
from policies.fallback import FallbackPolicy
from policies.forms import FormPolicy
from policies.rules import RulePolicy

DOMAIN = Domain(intents=("greet", "check_order_status", "inform", "ask_shipping", "thank"))


def user(intent: str) -> UserUttered:
    return UserUttered(text=intent, nlu=NluResult(text=intent, intent=intent, confidence=0.9))


def act(name: str) -> ActionExecuted:
    return ActionExecuted(name=name)


def session(*events: Event) -> Session:
    return Session("c").with_events([SessionStarted(), *events])


def step(kind: str, name: str | None = None, **slots: object) -> StoryStep:
    return StoryStep(kind=kind, name=name, slots=slots)  # type: ignore[arg-type]


GREET = Story("greet", (step("intent", "greet"), step("action", "utter_greet")), is_rule=True)
ACTIVATE = Story(
    "activate order form",
    (step("intent", "check_order_status"), step("action", "order_form"), step("active_loop", "order_form")),
    is_rule=True,
)
SUBMIT = Story(
    "submit order form",
    (
        step("action", "order_form"),
        step("active_loop", None),
        step("slot_was_set", requested_slot=None),
        step("action", "action_check_order"),
    ),
    is_rule=True,
    conditions=(step("active_loop", "order_form"),),
)
RULES = RulePolicy([GREET, ACTIVATE, SUBMIT])


def predict(s: Session) -> str:
    return PolicyEnsemble([RULES, FormPolicy()]).decide(s, DOMAIN).action


def test_rule_predicts_its_next_action_then_listens() -> None:
    assert predict(session(user("greet"))) == "utter_greet"
    assert predict(session(user("greet"), act("utter_greet"))) == ACTION_LISTEN


def test_form_asks_then_listens_then_takes_the_answer_then_submits() -> None:
    # as a turn records them: the action first, then the events it returned
    asked = session(
        user("check_order_status"),
        act("order_form"),
        FormActivated(name="order_form"),
        SlotSet(name="requested_slot", value="order_id"),
    )
    assert predict(session(user("check_order_status"))) == "order_form"
    assert predict(asked) == ACTION_LISTEN
    answered = asked.with_events([user("inform")])
    assert predict(answered) == "order_form"
    done = answered.with_events(
        [
            act("order_form"),
            SlotSet(name="order_id", value="SO1"),
            SlotSet(name="requested_slot", value=None),
            FormCompleted(name="order_form"),
        ]
    )
    assert predict(done) == "action_check_order"
    assert predict(done.with_events([act("action_check_order")])) == ACTION_LISTEN


def test_form_filled_at_once_goes_straight_to_the_submit_rule() -> None:
    s = session(user("check_order_status"), act("order_form"))
    s = s.with_events(
        [FormActivated(name="order_form"), SlotSet(name="order_id", value="SO1"), FormCompleted(name="order_form")]
    )
    assert predict(s) == "action_check_order"


def test_submit_rule_needs_its_condition() -> None:
    s = session(user("greet"), act("order_form"))  # order_form ran without the form being active
    decision = RULES.decide(s, DOMAIN)
    assert decision is None or decision.action != "action_check_order"


def test_memoized_story_matches_a_window_in_the_middle_of_a_story() -> None:
    story = Story(
        "faq then thanks",
        (
            step("intent", "greet"),
            step("action", "utter_greet"),
            step("intent", "ask_shipping"),
            step("action", "action_answer"),
            step("intent", "thank"),
            step("action", "utter_thank"),
        ),
    )
    memo = RulePolicy([story], name="memoization", priority=3, windows=True)
    s = session(user("ask_shipping"), act("action_answer"), user("thank"))
    decision = memo.decide(s, DOMAIN)
    assert decision is not None and decision.action == "utter_thank"
    assert RulePolicy([story]).decide(s, DOMAIN) is None  # rules must match from their first step


def test_fallback_after_an_unknown_turn_and_listen_after_an_action() -> None:
    unknown = session(user("thank"))
    assert PolicyEnsemble([RULES]).decide(unknown, DOMAIN).action == "action_default_fallback"
    assert FallbackPolicy().decide(unknown.with_events([act("utter_default")]), DOMAIN).action == ACTION_LISTEN


def test_decisions_explain_themselves() -> None:
    decision = RULES.decide(session(user("greet")), DOMAIN)
    assert decision is not None
    assert decision.policy == "rules" and "greet" in decision.reason and decision.confidence == 1.0
