"""Question recommendation on the trained shop: hot questions after a greeting, related questions under an
answer, did-you-mean candidates for a vague question, clicks and their outcome as events, learning from use
(and its switch), and learned counts shared by two processes through the real Redis."""

from __future__ import annotations

import dataclasses

import redis.asyncio as aioredis

from bot.events import (
    Event,
    FeedbackGiven,
    QuestionsRecommended,
    RecommendationClicked,
    RecommendationRated,
)
from bot.recommend.counts import Observation, UsageCounts
from bot.recommend.recommender import Recommender
from bot.recommend.shared_counts import sync_counts
from bot.recommend.signals import asked_context
from bot.recommend.stage import RecommendStage
from bot.wiring import Runtime
from tests.bot.conftest import Chat


def _stage(shop: Runtime) -> RecommendStage:
    stage = shop.bot.parts.recommend
    assert stage is not None, "the shop recommends questions by default"
    return stage


async def _events(shop: Runtime, chat: Chat) -> list[Event]:
    return await shop.bot.store.history(chat.conversation_id)


async def test_a_greeting_shows_hot_questions_and_a_click_is_answered_with_related_ones(shop: Runtime) -> None:
    chat = Chat(shop)
    hot = (await chat.user("你好")).replies[-1].quick_replies
    assert 3 <= len(hot) <= 5 and all(_is_chinese(b.title) for b in hot)
    picked = hot[1]
    answer = (await chat.user(picked.payload)).replies
    answered = answer[0].fact_ids[0]
    assert answer[0].template == "knowledge:faq"
    related = answer[-1].quick_replies
    assert 2 <= len(related) <= 3
    catalog = _stage(shop).recommender.catalog
    assert answered not in {catalog.item_of(b.payload, "zh") for b in related}, "never the question just answered"
    events = await _events(shop, chat)
    clicks = [e for e in events if isinstance(e, RecommendationClicked)]
    assert [(c.context, c.rank, c.item) for c in clicks] == [("hot", 2, answered)]
    await chat.user("怎么开发票？")
    ratings = [e for e in await _events(shop, chat) if isinstance(e, RecommendationRated)]
    assert [(r.item, r.satisfied, r.signal) for r in ratings] == [(answered, True, "next_question")]


async def test_related_questions_follow_the_language_and_leave_out_what_was_answered(shop: Runtime) -> None:
    chat = Chat(shop)
    first = (await chat.user("How much is shipping?")).replies[-1]
    assert first.fact_ids == ("faq_ship_02_en",)
    titles = [b.title for b in first.quick_replies]
    assert titles and not any(_is_chinese(t) for t in titles) and "How much is shipping?" not in titles
    second = (await chat.user(first.quick_replies[0].payload)).replies[-1]
    answered = {"faq_ship_02_en", second.fact_ids[0]}
    catalog = _stage(shop).recommender.catalog
    assert answered.isdisjoint({catalog.item_of(b.payload, "en") for b in second.quick_replies})
    shown = [e for e in await _events(shop, chat) if isinstance(e, QuestionsRecommended)]
    assert [s.context for s in shown] == ["faq_ship_02_en", second.fact_ids[0]]
    assert all(s.language == "en" for s in shown)


async def test_a_vague_question_gets_did_you_mean_candidates(shop: Runtime) -> None:
    chat = Chat(shop)
    await chat.user("你好")
    reply = (await chat.user("包裹丢了")).replies[-1]
    assert not reply.fact_ids
    candidates = [b.payload for b in reply.quick_replies]
    assert candidates and all(_is_chinese(c) for c in candidates)
    shown = [e for e in await _events(shop, chat) if isinstance(e, QuestionsRecommended)]
    assert shown[-1].context == "did_you_mean"
    nonsense = (await Chat(shop).user("asdfgh qwer zxcv")).replies[-1]
    assert nonsense.quick_replies == (), "noise gets no candidates"


async def test_thumbs_down_on_a_clicked_answer_rates_the_recommendation(shop: Runtime) -> None:
    chat = Chat(shop)
    first = (await chat.user("退款多久到账？")).replies[-1]
    clicked = (await chat.user(first.quick_replies[0].payload)).replies[0]
    await shop.bot.record_feedback(chat.conversation_id, FeedbackGiven(rating=-1, reply_id=clicked.reply_id))
    ratings = [e for e in await _events(shop, chat) if isinstance(e, RecommendationRated)]
    assert [(r.context, r.satisfied, r.signal) for r in ratings] == [("faq_ref_01_zh", False, "thumbs")]
    assert _stage(shop).recommender.counts.counts("bad", "faq_ref_01_zh")[clicked.fact_ids[0]] >= 1


async def test_what_customers_ask_next_moves_up_and_the_switch_turns_learning_off(shop: Runtime) -> None:
    recommender = _stage(shop).recommender
    before = [q.id for q in recommender.related("faq_pay_03_zh", "zh")]
    wanted = next(
        n.item
        for n in recommender._current().neighbours[("faq_pay_03_zh", "zh")][3:]
        if recommender.catalog.get(n.item, "zh") is not None
    )
    assert wanted not in before
    text = recommender.catalog.get(wanted, "zh")
    assert text is not None
    for _ in range(6):  # customers whose payment failed go on to ask the same thing, typing it themselves
        chat = Chat(shop)
        assert (await chat.user("付款失败怎么办？")).replies[0].fact_ids == ("faq_pay_03_zh",)
        assert (await chat.user(text.text)).replies[0].fact_ids == (wanted,)
    assert wanted in [q.id for q in recommender.related("faq_pay_03_zh", "zh")]
    switched_off = Recommender(
        recommender.knowledge,
        dataclasses.replace(recommender.options, learning=False),
        counts=recommender.counts,
    )
    assert [q.id for q in switched_off.related("faq_pay_03_zh", "zh")] == before


async def test_two_processes_share_what_they_learned_through_redis(redis_client: aioredis.Redis) -> None:
    await redis_client.delete("kefu:{recommend}:counts")
    now = 1_795_000_000.0
    today, long_ago = asked_context(now, "zh"), asked_context(now - 30 * 86_400, "zh")
    first, second = UsageCounts(), UsageCounts()
    first.add(_seen("next", "faq_a", "faq_b", 3) + _seen("asked", long_ago, "faq_b", 1))
    second.add(_seen("next", "faq_a", "faq_b", 2) + _seen("asked", today, "faq_b", 4))
    second.add(_seen("first", today, "faq_b", 2))
    for counts in (first, second, first):
        await sync_counts(redis_client, counts, hot_days=7, now=now)
    assert first.counts("next", "faq_a")["faq_b"] == second.counts("next", "faq_a")["faq_b"] == 5
    assert first.counts("asked", today)["faq_b"] == 4
    assert first.counts("first", today)["faq_b"] == 2
    assert not first.counts("asked", long_ago), "outside the hot list's window"
    assert not first.pending and not second.pending
    fresh = UsageCounts()  # a restarted process starts from what was learned
    await sync_counts(redis_client, fresh, hot_days=7, now=now)
    assert fresh.counts("next", "faq_a")["faq_b"] == 5


def _seen(kind: str, context: str, item: str, times: int) -> list[Observation]:
    return [Observation(kind, context, item)] * times


def _is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


async def test_a_follow_greets_with_hot_questions_in_the_projects_language(shop: Runtime) -> None:
    greeting = (await Chat(shop).user("/greet")).replies[-1]  # what WeChat's follow event sends
    assert _is_chinese(greeting.text)
    assert greeting.quick_replies and all(_is_chinese(b.title) for b in greeting.quick_replies)
