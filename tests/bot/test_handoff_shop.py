"""The handoff desk on the trained shop and a real Redis: queueing with a summary, telling the customer what
happens next, operators claiming, answering (also over WeChat, with wechatpy signing the customer's side)
and handing back."""

from __future__ import annotations

import asyncio

import pytest

from bot.assist.handoff_queue import QueueError
from bot.assist.notify import CONSOLE
from bot.channels.transcript import transcript
from bot.events import HandedBack, OperatorMessage, SuggestionRated
from bot.generation.learning_data import conversation_records
from bot.generation.prompts import PromptBuilder
from bot.sessions.redis_store import keys
from bot.sessions.round_trips import counting_round_trips
from bot.wiring import Runtime
from tests.bot.conftest import Chat
from tests.channels.test_wechat import USER, WeChatSide
from tests.channels.wechat_fakes import text_xml


async def test_a_handoff_queues_the_conversation_and_tells_the_customer(shop: Runtime) -> None:
    desk = shop.desk
    assert desk is not None
    chat = Chat(shop)
    await chat.user("我想查一下我的订单 SO20261001")
    answer = await chat.user("转人工")
    texts = [r.text for r in answer.replies]
    ticket = await desk.queue.get(chat.conversation_id)
    assert ticket is not None and ticket.status == "waiting"
    assert ticket.reason == "requested:request_human" and ticket.priority >= 2 and ticket.language == "zh"
    assert "订单" in ticket.summary["problem"] or ticket.summary["key_facts"]
    online = await desk.queue.online()
    expected = "没有人工客服在线" if not online else "人工客服"
    assert any(expected in text for text in texts), texts
    said = transcript(await shop.bot.store.history(chat.conversation_id))
    assert said[-1]["role"] == "bot" and said[-1]["text"] == texts[-1]  # the notice is on the record

    await desk.queue.seen("小王")
    second = Chat(shop)
    notice = [r.text for r in (await second.user("转人工")).replies][-1]
    assert "您前面还有" in notice or "您排在第一位" in notice
    await desk.queue.release(chat.conversation_id)
    await desk.queue.release(second.conversation_id)


async def test_operators_answer_and_hand_back(shop: Runtime) -> None:
    desk = shop.desk
    assert desk is not None
    chat = Chat(shop)
    await chat.user("转人工")
    cid = chat.conversation_id
    async with desk.notifier.listen(CONSOLE) as changes:
        assert await chat.texts("在吗？我的快递三天没动了") == []  # the bot stays silent for the human
        assert await asyncio.wait_for(_next_change(changes, cid), 5) == cid

    await desk.claim(cid, "小王")
    with pytest.raises(QueueError):
        await desk.claim(cid, "alice")
    sent = "您好，麻烦提供一下订单号"
    top = SuggestionRated(suggestion="您好，请提供订单号", outcome="edited", sent=sent, source="faq")
    await desk.reply(cid, "小王", sent, ratings=[top])
    history = await shop.bot.store.history(cid)
    _, pairs = conversation_records(cid, history, lambda ids: [], PromptBuilder(brand="Kefu Shop"))
    assert [(p.chosen, p.rejected, p.source) for p in pairs] == [(sent, top.suggestion, "suggestion_edited")]
    said = transcript(history)
    assert [s["text"] for s in said if s["role"] == "operator"] == ["您好，麻烦提供一下订单号"]
    assert any("小王" in s["text"] for s in said if s["role"] == "bot")  # "人工客服 小王 已接入"

    assert await desk.hand_back(cid, "小王")
    assert await desk.queue.get(cid) is None
    assert not await desk.hand_back(cid, "小王")
    history = await shop.bot.store.history(cid)
    assert isinstance(history[-2], HandedBack) and "智能助手" in transcript(history)[-1]["text"]
    assert await chat.texts("运费怎么算？")  # the bot answers again
    with pytest.raises(QueueError, match="handed back or closed"):
        await desk.reply(cid, "小王", "还在吗")


async def test_an_operators_message_and_the_hand_back_cost_two_round_trips_each(shop: Runtime) -> None:
    chat = Chat(shop)
    await chat.user("转人工")
    cid = chat.conversation_id
    with counting_round_trips() as replying:
        await shop.bot.operator_reply(cid, "小王", "您好，请问有什么可以帮您？")
    with counting_round_trips() as handing_back:
        assert await shop.bot.hand_back(cid)
    assert (replying.count, handing_back.count) == (2, 2)  # lock and load, then commit and unlock
    history = await shop.bot.store.history(cid)
    assert isinstance(history[-1], HandedBack) and isinstance(history[-2], OperatorMessage)
    assert await shop.bot.store.client.exists(keys(cid)[2]) == 0  # the lock went back with the commit
    assert shop.desk is not None
    await shop.desk.queue.release(cid)


async def test_an_operators_reply_reaches_a_wechat_customer(shop: Runtime) -> None:
    desk = shop.desk
    assert desk is not None
    side = WeChatSide(shop.bot.handle, reply_deadline_s=4.5)  # type: ignore[arg-type]
    desk.use_channels([side.channel])
    response = await side.post(text_xml("转人工", msg_id="9001"))
    assert response.status_code == 200 and "人工客服" in response.text
    cid = f"wechat:{USER}"
    try:
        ticket = await desk.queue.get(cid)
        assert ticket is not None and ticket.channel == "wechat" and ticket.sender == USER
        await desk.reply(cid, "小王", "您好，我是客服小王，请问有什么可以帮您？")
        texts = [p["text"]["content"] for _, _, p in side.api.sends if p.get("touser") == USER]
        assert texts[-2:] == ["人工客服 小王 已接入，正在为您服务。", "您好，我是客服小王，请问有什么可以帮您？"]
        assert any(isinstance(e, OperatorMessage) for e in await shop.bot.store.history(cid))
    finally:
        await desk.hand_back(cid, "小王")


async def _next_change(changes: asyncio.Queue[str], cid: str) -> str:
    while (changed := await changes.get()) != cid:
        pass
    return changed
