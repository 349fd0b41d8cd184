"""Recommended questions (猜你想问) on the REST and WeChat channels, against the trained shop: REST shows them as
`quick_replies`; WeChat numbers them, and a follower's "2" asks the second one and is recorded as its click."""

from __future__ import annotations

import csv
import json
import time
import uuid
from functools import cache

import httpx
import pytest

from bot.channels.rest import _rasa_message
from bot.channels.wechat_replies import QUICK_REPLIES_HEADER
from bot.events import Event, QuestionsRecommended, RecommendationClicked, UserUttered
from bot.recommend.signals import HOT
from bot.types import Button, Reply
from bot.wiring import Runtime
from tests.bot.servers import Server
from tests.channels.test_wechat import WeChatSide
from tests.channels.wechat_fakes import event_xml, text_xml
from tests.conftest import SHOP

pytestmark = pytest.mark.integration


@cache
def faq_answers() -> dict[str, str]:
    """Each FAQ question of the shop (both languages) with its answer as written."""
    with (SHOP / "knowledge" / "faq.csv").open(encoding="utf-8", newline="") as rows:
        return {row["question"]: row["answer"] for row in csv.DictReader(rows)}


def numbered(text: str) -> tuple[str, list[str]]:
    """The recommended-questions header of a WeChat text and the questions numbered under it (from 1: the
    shop's FAQ answers and greeting carry no buttons)."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line in QUICK_REPLIES_HEADER.values())
    entries = lines[start + 1 :]
    assert [line.split(". ", 1)[0] for line in entries] == [str(n) for n in range(1, len(entries) + 1)], text
    return lines[start], [line.split(". ", 1)[1] for line in entries]


def latest(events: list[Event], kind: type[Event]) -> Event:
    return next(e for e in reversed(events) if isinstance(e, kind))


def test_a_rasa_message_lists_quick_replies_only_when_there_are_some() -> None:
    asked = Button("运费怎么收？", "运费怎么收？")
    shown = _rasa_message("u", Reply(text="满 ¥99 包邮。", buttons=(Button("转人工", "/request_human"),),
                                      quick_replies=(asked,)))  # fmt: skip
    assert shown["quick_replies"] == [{"title": "运费怎么收？", "payload": "运费怎么收？"}]
    assert shown["buttons"] == [{"title": "转人工", "payload": "/request_human"}]
    assert "quick_replies" not in _rasa_message("u", Reply(text="好的"))


def test_rest_answers_carry_related_questions_and_sending_one_asks_it(running_shop: Server) -> None:
    faq, sender = faq_answers(), f"u-{uuid.uuid4().hex[:10]}"
    [answer] = running_shop.say(sender, "运费怎么收？")
    assert answer["text"] == faq["运费怎么收？"] and "buttons" not in answer
    related = answer["quick_replies"]
    assert 1 <= len(related) <= 3 and all(q["payload"] == q["title"] and q["title"] in faq for q in related)
    [clicked] = running_shop.say(sender, related[0]["payload"])
    assert clicked["text"] == faq[related[0]["title"]]

    body = {"sender": f"u-{uuid.uuid4().hex[:10]}", "message": "运费怎么收？"}
    streamed = httpx.post(f"{running_shop.url}/webhooks/rest/stream", json=body, timeout=60).text
    messages = [block.split("data: ", 1)[1] for block in streamed.split("\n\n") if block.startswith("event: message")]
    [streamed_related] = [json.loads(m)["quick_replies"] for m in messages]  # learning may reorder them
    assert streamed_related and all(q["title"] in faq for q in streamed_related)


async def test_a_wechat_follower_gets_the_hot_questions_numbered_and_2_asks_the_second(shop: Runtime) -> None:
    side = WeChatSide(shop.bot.handle, reply_deadline_s=4.5)  # type: ignore[arg-type]
    user = f"oFan-{uuid.uuid4().hex[:10]}"
    cid, faq = f"wechat:{user}", faq_answers()
    try:
        greeting = side.reply(await side.post(event_xml("subscribe", user=user, create_time=int(time.time()))))
        header, hot = numbered(greeting.content)
        shown = latest(await shop.bot.store.history(cid), QuestionsRecommended)
        assert isinstance(shown, QuestionsRecommended) and shown.context == HOT
        assert header == QUICK_REPLIES_HEADER[shown.language] and len(hot) == len(shown.items) >= 2

        answer = side.reply(await side.post(text_xml("2", user=user, msg_id="7001")))
        assert answer.content.startswith(faq[hot[1]] + "\n")
        events = await shop.bot.store.history(cid)
        asked, click = latest(events, UserUttered), latest(events, RecommendationClicked)
        assert isinstance(asked, UserUttered) and asked.text == hot[1]
        assert isinstance(click, RecommendationClicked) and (click.context, click.rank) == (HOT, 2)
        assert click.item == shown.items[1]

        related_header, related = numbered(answer.content)
        recommended = latest(events, QuestionsRecommended)
        assert isinstance(recommended, QuestionsRecommended) and recommended.context == click.item
        assert related_header == header and len(related) == len(recommended.items) >= 1
        assert hot[1] not in related
    finally:
        await side.aclose()
