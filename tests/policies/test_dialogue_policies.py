"""Forms with validation, digressions, cancel and confirmation; clarification; two-stage fallback; handoff.

Sessions are built by hand, as a turn records them (the action, then the events it returned), and the
form action runs for real with its validators.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from bot.actions.forms import FormAction, FormRules
from bot.actions.responses import ResponseRenderer
from bot.actions.sdk import ActionContext, Validation
from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    FormActivated,
    FormCompleted,
    HandedOff,
    RiskFlagged,
    Session,
    SessionStarted,
    SlotRejected,
    UserUttered,
)
from bot.nlu.payload import parse_payload
from bot.settings import FormConfig, SlotValidation
from bot.trace import TraceRecorder
from bot.types import (
    ACTION_ASK_REPHRASE,
    ACTION_CANCEL_FORM,
    ACTION_CLARIFY,
    ACTION_DEFAULT_FALLBACK,
    ACTION_HANDOFF,
    ACTION_LISTEN,
    ACTION_OFFER_HUMAN,
    CONFIRM_SLOT,
    Domain,
    Entity,
    FormSpec,
    IntentScore,
    NluResult,
    ResponseVariation,
    SlotMapping,
    SlotSpec,
    SlotValue,
    Story,
    StoryStep,
)
from policies.clarify import ClarifyPolicy
from policies.ensemble import PolicyEnsemble
from policies.fallback import TwoStageFallbackPolicy
from policies.forms import FormPolicy
from policies.handoff import HandoffPolicy
from policies.rules import RulePolicy

SLOTS = {
    "order_id": SlotSpec("order_id", "text", (SlotMapping("from_entity", entity="order_id"),)),
    "reason": SlotSpec("reason", "text", (SlotMapping("from_text", active_loop="return_form"),)),
}
FORM = FormSpec("return_form", ("order_id", "reason"))
RESPONSES = {
    name: (ResponseVariation(text),)
    for name, text in {
        "utter_ask_order_id": "Order number?",
        "utter_ask_reason": "Why?",
        "utter_confirm": "Return {order_id} because {reason}?",
        "utter_no_such_order": "No order {value}.",
        "utter_answer": "Shipping is free.",
    }.items()
}
DOMAIN = Domain(
    intents=("request_return", "inform", "ask_shipping", "cancel", "affirm", "deny", "request_human", "nlu_fallback"),
    entities=("order_id",),
    slots=SLOTS,
    responses=RESPONSES,
    forms={"return_form": FORM},
)
ORDERS = {"SO20261001"}


def known_order(value: SlotValue, ctx: ActionContext) -> Validation:
    if str(value).upper() not in ORDERS:
        return Validation(valid=False, response="utter_no_such_order")
    return Validation(valid=True, value=str(value).upper())


RULES = FormRules(
    FormConfig(
        slots={"order_id": SlotValidation(regex=r"(?i)SO\d{8}", validator="known_order")},
        max_attempts=2,
        confirm="utter_confirm",
    ),
    {"known_order": known_order},
    Path(),
)
FORM_ACTION = FormAction(FORM, ResponseRenderer(DOMAIN), RULES)
RULE_POLICY = RulePolicy(
    [
        Story("ask", (StoryStep("intent", "request_return"), StoryStep("action", "return_form")), is_rule=True),
        Story("faq", (StoryStep("intent", "ask_shipping"), StoryStep("action", "utter_answer")), is_rule=True),
    ]
)
POLICIES = PolicyEnsemble([FormPolicy(cancel_intents=["cancel"], max_attempts={"return_form": 2}), RULE_POLICY])


def user(intent: str, text: str = "", *entities: Entity, ranking: tuple[IntentScore, ...] = ()) -> UserUttered:
    nlu = NluResult(text=text or intent, intent=intent, confidence=0.9, ranking=ranking, entities=entities)
    return UserUttered(text=text or intent, nlu=nlu)


def order(value: str) -> Entity:
    return Entity("order_id", value, 0, len(value))


async def turn(session: Session, message: UserUttered) -> tuple[Session, list[str], list[str]]:
    """Run policies and the real form action until they listen; the actions and what the bot said."""
    session = dataclasses.replace(session, new_events=()).with_events([message])
    actions: list[str] = []
    for _ in range(5):
        decision = POLICIES.decide(session, DOMAIN)
        if decision.action == ACTION_LISTEN:
            break
        actions.append(decision.action)
        session = session.with_events(decision.events)
        events: list[Event] = []
        if decision.action == "return_form":
            events = await FORM_ACTION.run(session, DOMAIN, TraceRecorder("t"))
        elif decision.action.startswith("utter_"):
            events = [BotUttered(text=RESPONSES[decision.action][0].text)]
        session = session.with_events([ActionExecuted(name=decision.action), *events])
    said = [e.text for e in session.new_events if isinstance(e, BotUttered)]
    return session, actions, said


def start() -> Session:
    return Session("c").with_events([SessionStarted()])


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_an_invalid_value_is_rejected_and_asked_again_differently_then_a_valid_one_fills_the_slot() -> None:
    s, actions, said = run(turn(start(), user("request_return")))
    assert actions == ["return_form"] and said == ["Order number?"]
    s, actions, said = run(turn(s, user("inform", "SO99999999", order("SO99999999"))))
    assert actions == ["return_form"]
    assert said == ["No order SO99999999."]  # the validator's re-prompt, not the question again
    assert s.slots.get("order_id") is None
    assert [e.name for e in s.events if isinstance(e, SlotRejected)] == ["order_id"]
    s, actions, said = run(turn(s, user("inform", "so20261001", order("so20261001"))))
    assert s.slots["order_id"] == "SO20261001"  # normalised by the validator
    assert said == ["Why?"]


def test_a_value_that_fails_the_regex_is_rejected_before_the_validator_runs() -> None:
    s, _, _ = run(turn(start(), user("request_return")))
    s, _, said = run(turn(s, user("inform", "SO1", order("SO1"))))
    assert s.slots.get("order_id") is None
    assert "SO1" in said[0] and said[-1] == "Order number?"  # kefu's generic re-prompt, then the question


def test_too_many_invalid_answers_offer_a_human_and_end_the_form() -> None:
    s, _, _ = run(turn(start(), user("request_return")))
    s, _, _ = run(turn(s, user("nlu_fallback", "嗯？")))
    s, actions, _ = run(turn(s, user("inform", "SO99999999", order("SO99999999"))))
    assert actions == ["return_form", ACTION_OFFER_HUMAN]
    assert s.active_form is None
    assert any(isinstance(e, FormCompleted) and e.cancelled for e in s.events)


def test_a_digression_is_answered_and_the_form_resumes() -> None:
    s, _, _ = run(turn(start(), user("request_return")))
    s, actions, said = run(turn(s, user("ask_shipping", "运费多少")))
    assert actions == ["utter_answer", "return_form"]
    assert said == ["Shipping is free.", "Order number?"]
    assert s.active_form == "return_form"
    assert not any(isinstance(e, SlotRejected) for e in s.events)  # a digression is not a wrong answer


def test_free_text_fills_only_the_requested_slot_and_confirmation_submits_on_affirm() -> None:
    s, _, _ = run(turn(start(), user("request_return", "return SO20261001", order("SO20261001"))))
    assert s.slots["requested_slot"] == "reason"
    s, _, said = run(turn(s, user("inform", "too small")))
    assert s.slots["reason"] == "too small" and s.slots["requested_slot"] == CONFIRM_SLOT
    assert said == ["Return SO20261001 because too small?"]
    s, actions, _ = run(turn(s, user("affirm", "yes")))
    assert actions == ["return_form"] and s.active_form is None
    assert not any(isinstance(e, FormCompleted) and e.cancelled for e in s.events)


def test_deny_at_the_confirmation_or_a_cancel_intent_cancels_the_form() -> None:
    s, _, _ = run(turn(start(), user("request_return", "return SO20261001", order("SO20261001"))))
    s, _, _ = run(turn(s, user("inform", "too small")))
    denied, actions, _ = run(turn(s, user("deny", "no")))
    assert actions == [ACTION_CANCEL_FORM] and denied.active_form is None
    s, _, _ = run(turn(start(), user("request_return")))
    cancelled, actions, _ = run(turn(s, user("cancel", "算了")))
    assert actions == [ACTION_CANCEL_FORM] and cancelled.active_form is None
    assert cancelled.slots.get("requested_slot") is None


def ranked(*scores: tuple[str, float]) -> UserUttered:
    ranking = tuple(IntentScore(name, p) for name, p in scores)
    return user(scores[0][0], "退货退款", ranking=ranking)


def test_clarify_when_the_two_best_intents_are_close_but_not_twice_in_a_row() -> None:
    clarify = ClarifyPolicy(margin=0.2, min_confidence=0.2, exclude=["greet"])
    close = start().with_events([ranked(("ask_returns", 0.45), ("ask_refund", 0.40), ("greet", 0.1))])
    decision = clarify.decide(close, DOMAIN)
    assert decision is not None and decision.action == ACTION_CLARIFY
    assert [c.name for c in clarify.choices(close.latest_message().nlu.ranking)] == ["ask_returns", "ask_refund"]  # type: ignore[union-attr]
    clear = start().with_events([ranked(("ask_returns", 0.8), ("ask_refund", 0.1))])
    assert clarify.decide(clear, DOMAIN) is None
    again = close.with_events([ActionExecuted(name=ACTION_CLARIFY), ranked(("ask_returns", 0.45), ("ask_refund", 0.4))])
    assert clarify.decide(again, DOMAIN) is None


def test_a_payload_after_a_clarification_keeps_the_question_that_was_asked() -> None:
    asked = start().with_events(
        [ranked(("ask_returns", 0.45), ("ask_refund", 0.40)), ActionExecuted(name=ACTION_CLARIFY)]
    )
    nlu = parse_payload("/ask_refund", ("ask_returns", "ask_refund"), asked)
    assert nlu is not None and nlu.intent == "ask_refund" and nlu.confidence == 1.0
    assert nlu.text == "退货退款"
    entities = parse_payload('/inform{"order_id": "SO20261001"}', ("inform",), start())
    assert entities is not None and entities.entities[0].value == "SO20261001"
    assert parse_payload("/not_an_intent", ("inform",), start()) is None
    assert parse_payload("hello /inform", ("inform",), start()) is None


def test_two_stage_fallback_rephrase_then_fallback_then_offer_then_handoff() -> None:
    policy = TwoStageFallbackPolicy(offer_after=3)
    s = start()
    seen = []
    for _ in range(4):
        s = s.with_events([user("nlu_fallback", "asdf")])
        decision = policy.decide(s, DOMAIN)
        assert decision is not None
        seen.append(decision.action)
        s = s.with_events([*decision.events, ActionExecuted(name=decision.action)])
    assert seen == [ACTION_ASK_REPHRASE, ACTION_DEFAULT_FALLBACK, ACTION_OFFER_HUMAN, ACTION_HANDOFF]
    assert s.state.handed_off and s.state.handoff_reason == "repeated_fallback"
    understood = s.with_events([user("inform"), ActionExecuted(name="x"), user("nlu_fallback")])
    decision = policy.decide(understood, DOMAIN)
    assert decision is not None and decision.action == ACTION_ASK_REPHRASE  # the streak starts again


def test_handoff_on_request_and_on_a_flag_from_input_safety_with_the_reason() -> None:
    policy = HandoffPolicy(intents=["request_human"], categories=["risk", "anger"])
    asked = policy.decide(start().with_events([user("request_human", "转人工")]), DOMAIN)
    assert asked is not None and asked.action == ACTION_HANDOFF
    assert isinstance(asked.events[0], HandedOff) and asked.events[0].reason == "requested:request_human"
    flagged = start().with_events(
        [user("ask_refund", "再不退款我就去12315投诉"), RiskFlagged(check="flags", category="risk")]
    )
    decision = policy.decide(flagged, DOMAIN)
    assert decision is not None and decision.events[0].reason == "risk:flags"  # type: ignore[attr-defined]
    older = flagged.with_events([ActionExecuted(name="utter_x"), user("thank")])
    assert policy.decide(older, DOMAIN) is None  # a flag counts for its own message only
    other = start().with_events([user("ask_refund"), RiskFlagged(check="flags", category="politics")])
    assert policy.decide(other, DOMAIN) is None


def test_an_unsure_cancel_is_taken_as_the_free_text_answer_a_sure_one_cancels() -> None:
    s, _, _ = run(turn(start(), user("request_return", "return SO20261001", order("SO20261001"))))
    unsure = dataclasses.replace(user("cancel", "尺码买小了"), nlu=NluResult("尺码买小了", "cancel", 0.34))
    answered, actions, _ = run(turn(s, unsure))
    assert actions == ["return_form"] and answered.slots["reason"] == "尺码买小了"
    sure = dataclasses.replace(user("cancel", "算了"), nlu=NluResult("算了", "cancel", 0.98))
    _, actions, _ = run(turn(s, sure))
    assert actions == [ACTION_CANCEL_FORM]


def test_after_each_built_in_action_the_bot_waits_for_the_user() -> None:
    for action, policy in (
        (ACTION_CANCEL_FORM, FormPolicy()),
        (ACTION_OFFER_HUMAN, FormPolicy()),
        (ACTION_CLARIFY, ClarifyPolicy()),
        (ACTION_ASK_REPHRASE, TwoStageFallbackPolicy()),
        (ACTION_DEFAULT_FALLBACK, TwoStageFallbackPolicy()),
        (ACTION_HANDOFF, HandoffPolicy()),
    ):
        decision = policy.decide(start().with_events([user("x"), ActionExecuted(name=action)]), DOMAIN)
        assert decision is not None and decision.action == ACTION_LISTEN, action


def test_another_forms_trigger_switches_forms_and_cancels_the_first() -> None:
    other = FormAction(FormSpec("order_form", ("order_id",)), ResponseRenderer(DOMAIN))
    s, _, _ = run(turn(start(), user("request_return")))
    s = s.with_events([user("check_order_status"), ActionExecuted(name="order_form")])
    events = run(other.run(s, DOMAIN, TraceRecorder("t")))
    assert isinstance(events[0], FormCompleted) and events[0].name == "return_form" and events[0].cancelled
    assert isinstance(events[1], FormActivated) and events[1].name == "order_form"
    assert s.with_events(events).active_form == "order_form"
