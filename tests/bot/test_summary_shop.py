"""会话摘要 of a real conversation with the trained demo shop, from the history stored in Redis."""

from __future__ import annotations

import pytest

from bot.assist.summary import render, summarize
from bot.events import HandedOff
from bot.wiring import Project, Runtime
from tests.bot.conftest import Chat

pytestmark = pytest.mark.integration

PHONE = "13812345678"


async def test_a_handed_off_shop_conversation_is_summarised_from_its_history(
    shop: Runtime, shop_project: Project
) -> None:
    chat = Chat(shop)
    script = ["我想查一下我的订单", "SO20261001", f"快递怎么还没到，太慢了，有事打我电话 {PHONE}", "转人工"]
    for text in script:
        await chat.user(text)
        events = await shop.bot.store.history(chat.conversation_id)
        if any(isinstance(e, HandedOff) for e in events):
            break
    else:
        pytest.fail(f"the shop did not hand off: {[type(e).__name__ for e in events]}")

    labels = shop_project.config.dialogue.clarify.labels
    summary = summarize(events, shop_project.files.domain, labels=labels)
    text = render(summary)
    assert summary.language == "zh" and summary.handoff_reason
    assert ("订单号", "SO20261001") in summary.key_facts
    assert "引导填写“查询订单”：已完成" in summary.bot_tried
    assert any(line.startswith("回复：“订单 SO20261001 的状态") for line in summary.bot_tried)
    assert "太慢" in summary.problem and "138****5678" in summary.problem
    assert "SO20261001" in summary.next_step and "物流" in summary.next_step
    assert PHONE not in summary.to_json() and PHONE not in text and PHONE not in render(summary, "en")
