"""What a turn does with each kind of safety verdict: refuse, replace, escalate to a human, cool down."""

from __future__ import annotations

import dataclasses
import time

import pytest

from bot.actions.responses import ResponseAction, ResponseRenderer
from bot.events import BotUttered, HandedOff, SafetyBlocked, Session, SessionStarted, SlotSet
from bot.turn import TurnParts, TurnResult, run_turn
from bot.types import Domain, Message, NluResult, ResponseVariation, SlotSpec, Story, StoryStep
from policies.ensemble import PolicyEnsemble
from policies.rules import RulePolicy
from safety.abuse import AbuseRule
from safety.compliance import ComplianceCheck, industry_pack, load_rules
from safety.lexicon import Lexicon, LexiconCheck, Term
from safety.pipeline import SafetyPipeline

DOMAIN = Domain(
    intents=("ask",),
    slots={"language": SlotSpec("language", "categorical", values=("zh", "en"))},
    responses={"utter_refund": (ResponseVariation("我们会立即为您全额退款。"),)},
)
RULE = Story("refund", (StoryStep("intent", "ask"), StoryStep("action", "utter_refund")), is_rule=True)
LEXICON = LexiconCheck(Lexicon([Term("蠢货", "abuse", "zh"), Term("自残", "self_harm", "zh")]))


class AskNlu:
    def parse(self, message: Message, session: Session) -> NluResult:
        return NluResult(text=message.text, intent="ask", confidence=0.9, language="zh")


def parts(*, abuse: AbuseRule | None = None, output: SafetyPipeline | None = None) -> TurnParts:
    actions = {"utter_refund": ResponseAction("utter_refund", ResponseRenderer(DOMAIN))}
    inputs = SafetyPipeline([LEXICON], actions={"self_harm": "escalate"})
    return TurnParts(DOMAIN, AskNlu(), PolicyEnsemble([RulePolicy([RULE])]), actions, inputs,
                     output or SafetyPipeline([]), abuse or AbuseRule())  # fmt: skip


async def say(turn_parts: TurnParts, session: Session, text: str) -> TurnResult:
    """One turn on `session` as the store would load it (nothing new in it yet)."""
    message = Message(session.conversation_id, "test", "u", "", text, time.time())
    return await run_turn(turn_parts, dataclasses.replace(session, new_events=()), message)


def fresh() -> Session:
    return Session("c").with_events([SessionStarted(), SlotSet(name="language", value="zh")])


async def test_a_compliance_rule_replaces_the_reply_with_its_template() -> None:
    output = SafetyPipeline([ComplianceCheck(load_rules([industry_pack("ecommerce")]))])
    result = await say(parts(output=output), fresh(), "能退款吗")
    [reply] = result.replies
    assert reply.text.startswith("退款以我们的退换货政策和售后审核结果为准")
    assert reply.template == "safety:no_refund_promise_outside_policy"
    [blocked] = [e for e in result.session.new_events if isinstance(e, SafetyBlocked)]
    assert (blocked.stage, blocked.action, blocked.rule) == ("output", "replace", "no_refund_promise_outside_policy")


async def test_an_escalating_category_hands_off_with_a_caring_message() -> None:
    result = await say(parts(), fresh(), "我想自残")
    assert any(isinstance(e, HandedOff) and e.reason == "safety:self_harm" for e in result.session.new_events)
    assert result.replies[0].template == "refusal:escalate" and "转接人工客服" in result.replies[0].text
    assert result.session.state.handed_off


async def test_repeated_abuse_is_refused_then_handed_to_a_human() -> None:
    session = fresh()
    templates = []
    for _ in range(3):
        result = await say(parts(), session, "你这个蠢货")
        session = result.session
        templates.append(result.replies[0].template)
    assert templates == ["refusal:abuse", "refusal:abuse", "refusal:escalate"]
    assert session.state.handed_off
    assert [e.action for e in session.events if isinstance(e, SafetyBlocked)] == ["block", "block", "escalate"]


async def test_repeated_abuse_can_cool_down_instead() -> None:
    rule = AbuseRule(limit=2, then="cooldown", cooldown_s=60)
    session = fresh()
    for _ in range(2):
        session = (await say(parts(abuse=rule), session, "蠢货")).session
    assert [e.text for e in session.events if isinstance(e, BotUttered)][-1].startswith("我们先暂停一下")
    polite = await say(parts(abuse=rule), session, "能退款吗")  # even a polite message waits
    assert polite.replies[0].template == "refusal:cooldown"
    assert not polite.session.state.handed_off
    assert not rule.cooling_down(polite.session, now=time.time() + 61)  # a minute later the bot answers again


@pytest.mark.parametrize("limit", [1, 2])
def test_the_abuse_rule_counts_only_its_categories(limit: int) -> None:
    rule = AbuseRule(limit=limit)
    session = fresh().with_events([SafetyBlocked(check="injection", stage="input", category="injection")])
    assert rule.after_block(session, "injection") == "refuse"
    assert rule.after_block(session, "abuse") == ("handoff" if limit == 1 else "refuse")
