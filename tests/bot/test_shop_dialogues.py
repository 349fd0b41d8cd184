"""Whole turns through the demo shop: real NLU, knowledge, Redis and safety (the generator is not needed here)."""

from __future__ import annotations

import asyncio

import pytest

from bot.events import BotUttered, HandedOff, SafetyBlocked, UserUttered
from bot.nlu.evaluation import evaluate
from bot.nlu.nlu_test_command import load_test_examples
from bot.settings import Settings
from bot.wiring import Project, build_runtime, project_nlu
from tests.bot.conftest import Chat

pytestmark = pytest.mark.integration


async def test_order_status_in_chinese_fills_the_form_then_calls_the_order_api(shop) -> None:
    chat = Chat(shop)
    assert "订单号" in (await chat.texts("我想查一下我的订单"))[0]
    status = await chat.texts("SO20261001")
    assert status == ["订单 SO20261001 的状态：已发货，顺丰速运，运单号 SF1402658830271，预计 1-2 天送达。"]


async def test_order_status_in_english_with_the_id_up_front(shop) -> None:
    answer = await Chat(shop).user("where is my order SO20261003?")
    assert [r.text for r in answer.replies] == ["Order SO20261003: Delivered on 2026-10-05 at 14:22."]
    assert answer.trace is not None and [d.action for d in answer.trace.decisions][:2] == [
        "order_form",
        "action_check_order",
    ]


async def test_unknown_order_is_reported_and_forgotten(shop) -> None:
    chat = Chat(shop)
    assert "SO29999999" in (await chat.texts("查订单 SO29999999"))[0]
    assert "订单号" in (await chat.texts("帮我查下订单状态"))[0]  # asks again instead of reusing the wrong id


@pytest.mark.parametrize(
    ("question", "fact_id", "expected"),
    [
        ("支持七天无理由退货吗", "faq_ret_01_zh", "7 天"),
        ("What is your return policy?", "faq_ret_01_en", "7 days"),
        ("星耀X1 Pro多少钱", "kg:x1_pro|price", "¥5999"),
        ("How much is the X1 Pro?", "kg:x1_pro|price", "¥5999"),
    ],
)
async def test_questions_are_answered_from_knowledge_with_citations(shop, question, fact_id, expected) -> None:
    answer = await Chat(shop).user(question)
    assert len(answer.replies) == 1
    assert answer.replies[0].fact_ids == (fact_id,)
    assert expected in answer.replies[0].text
    assert answer.trace is not None and answer.trace.facts[0].id == fact_id


async def test_trace_records_every_stage_with_timings(shop) -> None:
    answer = await Chat(shop).user("你好")
    trace = answer.trace
    assert trace is not None and trace.nlu is not None and trace.nlu.intent == "greet"
    names = [stage.name for stage in trace.stages]
    assert names[:3] == ["input_safety", "nlu", "policies"] and "output_safety" in names
    assert all(stage.ms >= 0 for stage in trace.stages)
    assert trace.decisions[0].policy == "rules" and "rule" in trace.decisions[0].reason


async def test_complaint_hands_off_and_the_bot_then_stays_silent(shop) -> None:
    chat = Chat(shop)
    handoff = await chat.user("你们服务太差了，我要投诉！")
    assert handoff.replies and "人工" in handoff.replies[0].text
    assert (await chat.user("人呢？")).replies == ()
    events = await shop.bot.store.history(chat.conversation_id)
    assert any(isinstance(e, HandedOff) for e in events)
    assert isinstance(events[-1], UserUttered)  # the message is kept for the human agent


async def test_out_of_scope_and_low_confidence_get_the_fallbacks(shop) -> None:
    assert "shop" in (await Chat(shop).texts("who won the football game last night"))[0].lower()
    fallback = await Chat(shop).user("qzxv blorp wug")
    assert fallback.trace is not None and fallback.trace.nlu is not None
    assert fallback.trace.nlu.intent == "nlu_fallback"


async def test_personal_data_is_masked_before_nlu_and_abuse_is_refused(shop) -> None:
    chat = Chat(shop)
    answer = await chat.user("我的手机号是13812345678，订单怎么还没到")
    assert answer.trace is not None and answer.trace.nlu is not None
    assert "13812345678" not in answer.trace.nlu.text and "138****5678" in answer.trace.nlu.text
    refused = await chat.user("你这个傻逼机器人")
    assert len(refused.replies) == 1 and "文明" in refused.replies[0].text
    assert any(isinstance(e, SafetyBlocked) for e in await shop.bot.store.history(chat.conversation_id))


async def test_concurrent_messages_to_one_conversation_run_in_turn_and_lose_nothing(shop) -> None:
    chat = Chat(shop)
    questions = ["你好", "运费怎么算", "How much is the X1 Pro?", "谢谢"]
    await asyncio.gather(*(chat.user(q) for q in questions))
    events = await shop.bot.store.history(chat.conversation_id)
    said = [e.text for e in events if isinstance(e, UserUttered)]
    assert sorted(said) == sorted(questions)
    # every user message is followed by its own answer before the next message starts
    kinds = [type(e).__name__ for e in events if isinstance(e, UserUttered | BotUttered)]
    assert kinds == ["UserUttered", "BotUttered"] * 4


async def test_a_duplicate_delivery_gets_no_second_answer(shop) -> None:
    chat = Chat(shop)
    first = await chat.user("你好", message_id="wx-123-" + chat.conversation_id)
    again = await chat.user("你好", message_id="wx-123-" + chat.conversation_id)
    assert first.replies and again.duplicate and again.replies == ()
    assert sum(isinstance(e, UserUttered) for e in await shop.bot.store.history(chat.conversation_id)) == 1


async def test_oversized_message_is_refused_with_the_limit(shop) -> None:
    from bot.errors import BadRequestError

    with pytest.raises(BadRequestError, match="limit is 4000"):
        await Chat(shop).user("好" * 5000)


async def test_redis_lost_gives_a_polite_reply(shop_project: Project) -> None:
    runtime = build_runtime(shop_project, Settings(data_dir=shop_project.data_dir, redis_url="redis://127.0.0.1:1/0"))
    runtime.bot.warm_up()
    answer = await Chat(runtime).user("在吗")
    assert [r.text for r in answer.replies] == ["抱歉，系统刚才出了点问题，请稍后再试一次。"]
    await runtime.aclose()


class BrokenNlu:
    def parse(self, message, session):
        raise RuntimeError("a bug in a stage")


async def test_a_bug_in_any_stage_gives_a_polite_reply_and_is_recorded(shop, caplog) -> None:
    import dataclasses

    from bot.events import TurnFailed

    shop.bot.parts = dataclasses.replace(shop.bot.parts, nlu=BrokenNlu())
    import random

    phone = f"139{random.randrange(10**8):08d}"
    chat = Chat(shop, conversation_id=phone)  # a channel that uses the phone number as the id
    answer = await chat.user("How much is the X1 Pro?")
    assert [r.text for r in answer.replies] == [
        "Sorry, something went wrong on our side. Please try again in a moment."
    ]
    [failed] = [e for e in await shop.bot.store.history(chat.conversation_id) if isinstance(e, TurnFailed)]
    assert failed.stage == "RuntimeError" and "a bug in a stage" in failed.error
    assert "unexpected error" in caplog.text and phone not in caplog.text


def test_the_shop_nlu_understands_its_held_out_examples(shop_project: Project) -> None:
    """examples/shop/tests/nlu.yml: paraphrases in both languages that are not training examples."""
    held_out = load_test_examples(shop_project.root / "tests" / "nlu.yml")
    training = {example.text for example in shop_project.files.nlu.examples}
    assert not training & {example.text for example in held_out}
    nlu = project_nlu(shop_project)
    evaluation = evaluate(held_out, nlu.parse_text)
    misses = [(e.text, e.expected, e.predicted) for e in evaluation.errors]
    assert evaluation.intent_accuracy >= 0.85, misses
    assert evaluation.entity_f1 is not None and evaluation.entity_f1 >= 0.8


async def test_a_handed_off_conversation_relays_the_operator_and_resumes_when_handed_back(shop) -> None:
    chat = Chat(shop)
    assert (await chat.user("转人工")).replies
    assert (await chat.user("在吗？")).replies == ()  # a human answers now
    reply = await shop.bot.operator_reply(chat.conversation_id, "agent-7", "您好，我是客服小王")
    assert reply.handoff and reply.text == "您好，我是客服小王"
    assert await shop.bot.hand_back(chat.conversation_id)
    assert not await shop.bot.hand_back(chat.conversation_id)  # nothing to hand back twice
    assert "订单号" in (await chat.texts("帮我查一下订单"))[0]
    events = await shop.bot.store.history(chat.conversation_id)
    assert [type(e).__name__ for e in events if type(e).__name__ in ("HandedOff", "OperatorMessage", "HandedBack")] == [
        "HandedOff",
        "OperatorMessage",
        "HandedBack",
    ]


async def test_an_ambiguous_question_gets_buttons_and_the_choice_is_answered_from_knowledge(shop) -> None:
    chat = Chat(shop)
    asked = await chat.user("退货")
    assert asked.replies and {b.payload for b in asked.replies[0].buttons} == {"/request_return", "/ask_returns"}
    assert "申请退货" in {b.title for b in asked.replies[0].buttons}
    answer = await chat.user("/ask_returns")
    assert answer.trace is not None and answer.trace.decisions[0].action == "action_answer"
    assert answer.replies and answer.replies[0].fact_ids  # the question it clarified was searched, not "/ask_returns"


async def test_an_order_number_that_does_not_exist_is_rejected_by_the_validator(shop) -> None:
    chat = Chat(shop)
    assert "订单号" in (await chat.texts("我想查一下我的订单"))[0]
    rejected = await chat.texts("SO29999999")
    assert rejected == ["抱歉，没有找到订单 SO29999999，请核对订单号后再试一次。"]
    events = await shop.bot.store.history(chat.conversation_id)
    assert any(type(e).__name__ == "SlotRejected" for e in events)
