"""Numbered menus kept in the real Redis: a number reaching another process (another channel instance sharing only
Redis) picks from the menu the first one showed; one matching no menu, or a Redis gone, reaches the bot as text."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bot.channels.wechat_menus import MENU_TTL_S, RedisMenus, menu_key
from bot.sessions.connect import client_for_socket, client_for_url
from bot.sessions.redis_store import keys
from tests.channels.test_wechat import SHIPPING_ZH, WeChatSide, recommending
from tests.channels.wechat_fakes import FakeBot, text_xml
from tests.sessions.redis_servers import RedisProcess

pytestmark = pytest.mark.integration

MENU_TEXT = "满 ¥99 包邮。\n1. 转人工\n猜你想问：\n2. 你们用什么快递？\n3. 从哪里发货？"


def connect(target: str) -> aioredis.Redis:
    if target.startswith("unix://"):
        return client_for_socket(target.removeprefix("unix://"))
    return client_for_url(target)


@pytest.fixture
async def process(redis_target: str) -> AsyncIterator[Callable[..., WeChatSide]]:
    """A WeChat channel as one `kefu run` process would have it: its own Redis client, its own memory."""
    made: list[tuple[WeChatSide, aioredis.Redis]] = []

    def make(bot: FakeBot | None = None, **kwargs: Any) -> WeChatSide:
        client = connect(redis_target)
        made.append((WeChatSide(bot or FakeBot(), menus=RedisMenus(client), **kwargs), client))
        return made[-1][0]

    yield make
    for side, client in made:
        await side.aclose()
        await client.aclose()


def follower() -> str:
    return f"oFan-{uuid.uuid4().hex[:12]}"  # the suite shares one Redis: each test its own conversation


async def test_a_number_reaching_another_process_picks_from_the_menu_the_first_showed(process):
    first, second = process(FakeBot(recommending)), process(FakeBot(recommending))
    user = follower()
    assert first.reply(await first.post(text_xml("运费", user=user, msg_id="1"))).content == MENU_TEXT
    await second.post(text_xml("2", user=user, msg_id="2"))
    [asked] = second.bot.messages
    assert asked.text == "你们用什么快递？"
    assert asked.meta == {"button": {"number": 2, "title": "你们用什么快递？"}}
    await first.post(text_xml("2", user=user, msg_id="3"))  # the second process's answer had no menu
    assert first.bot.messages[-1].text == "2"


async def test_a_number_matching_no_stored_menu_is_plain_text(process, redis_client):
    side = process(FakeBot(recommending))
    user = follower()
    await side.post(text_xml("2", user=user, msg_id="1"))  # nothing shown yet
    await side.post(text_xml("运费", user=user, msg_id="2"))
    await side.post(text_xml("4", user=user, msg_id="3"))  # past the three entries
    await side.post(text_xml("运费", user=user, msg_id="4"))
    await side.post(text_xml("0", user=user, msg_id="5"))
    await redis_client.set(menu_key(f"wechat:{user}"), "{not json")  # e.g. written by a future version
    await side.post(text_xml("1", user=user, msg_id="6"))
    assert [m.text for m in side.bot.messages] == ["2", "运费", "4", "运费", "0", "1"]
    assert all(m.meta == {} for m in side.bot.messages)


async def test_the_menu_is_json_in_the_conversations_slot_and_expires(process, redis_client):
    side = process(FakeBot(recommending))
    user = follower()
    await side.post(text_xml("运费", user=user, msg_id="1"))
    conversation = f"wechat:{user}"
    key = menu_key(conversation)
    assert key == f"kefu:{{{conversation}}}:menu"
    assert {key_slot(k.encode()) for k in (key, *keys(conversation))} == {key_slot(key.encode())}
    assert 0 < await redis_client.ttl(key) <= MENU_TTL_S
    stored = json.loads(await redis_client.get(key))
    assert stored == [["转人工", "/request_human"], *([b.title, b.payload] for b in SHIPPING_ZH)]
    await side.post(text_xml("hello", user=user, msg_id="2"))  # an answer without numbered lines
    assert await redis_client.exists(key) == 0


async def test_a_redis_that_went_away_lets_the_number_through_as_text(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING)
    redis = RedisProcess(tmp_path / "redis").start()
    client = client_for_url(redis.url)
    side = WeChatSide(FakeBot(recommending), menus=RedisMenus(client))
    user = follower()
    try:
        await side.post(text_xml("运费", user=user, msg_id="1"))
        redis.kill()
        reply = side.reply(await side.post(text_xml("2", user=user, msg_id="2")))
        assert side.bot.messages[-1].text == "2"
        assert reply.content == "echo: 2"  # answered, though its menu (none) could not be stored either
    finally:
        await side.aclose()
        await client.aclose()
        redis.kill()
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.channels.wechat_menus"]
    assert any("could not be read" in w for w in warnings) and any("could not be stored" in w for w in warnings)
    assert all(user not in w for w in warnings)
