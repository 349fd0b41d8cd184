"""Faults injected into the trained shop: Redis unreachable at start or lost mid-conversation, a lock holder
that died, duplicate deliveries at once, and a generator too slow for the turn's deadline."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from bot.events import BotUttered, UserUttered
from bot.sessions.redis_store import keys
from bot.settings import Settings
from bot.wiring import Project, build_runtime, open_project
from tests.bot.conftest import Chat
from tests.bot.openai_peers import completion_json, scripted, serve
from tests.conftest import SHOP
from tests.sessions.redis_servers import RedisProcess

pytestmark = pytest.mark.integration

SORRY_ZH = "抱歉，系统刚才出了点问题，请稍后再试一次。"


def test_kefu_run_stops_at_once_when_its_redis_is_unreachable(server_data: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "KEFU_DATA_DIR": str(server_data), "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", str(SHOP)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "REDIS_URL redis://127.0.0.1:1/0 does not answer" in done.stderr and "unset it" in done.stderr
    assert time.monotonic() - started < 60


async def test_redis_lost_mid_conversation_gets_a_polite_reply_and_the_retry_is_answered(
    shop_project: Project, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path / "redis").start()
    runtime = build_runtime(shop_project, Settings(data_dir=shop_project.data_dir, redis_url=redis.url))
    runtime.bot.warm_up()
    chat = Chat(runtime)
    try:
        assert (await chat.user("你好", message_id="m1")).replies
        redis.kill()
        lost = await chat.user("运费怎么算", message_id="m2")
        assert [r.text for r in lost.replies] == [SORRY_ZH]
        redis.start()  # back with what it had written (append-only file)
        retried = await chat.user("运费怎么算", message_id="m2")
        assert retried.replies and not retried.duplicate and retried.replies[0].text != SORRY_ZH
        events = await runtime.bot.store.history(chat.conversation_id)
        said = [e.message_id for e in events if isinstance(e, UserUttered)]
        assert said == ["m1", "m2"]  # the lost attempt left nothing behind; the retry is stored once
        for n, event in enumerate(events):  # every stored message has its answer: no turn half-written
            if isinstance(event, UserUttered):
                assert any(isinstance(e, BotUttered) for e in events[n + 1 :])
    finally:
        await runtime.aclose()
        redis.kill()


async def test_a_lock_whose_holder_died_expires_and_the_next_turn_proceeds(shop) -> None:
    chat = Chat(shop)
    await shop.bot.store.client.set(keys(chat.conversation_id)[2], "a-worker-that-died", px=1500)
    started = time.monotonic()
    answer = await chat.user("你好")
    assert answer.replies and answer.replies[0].text != SORRY_ZH
    assert 1.0 < time.monotonic() - started < 10


async def test_the_same_message_delivered_twice_at_once_is_answered_once(shop) -> None:
    chat = Chat(shop)
    message_id = f"wx-{uuid.uuid4().hex}"
    first, second = await asyncio.gather(chat.user("运费怎么算", message_id), chat.user("运费怎么算", message_id))
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    assert (first.replies or second.replies) and not (first.replies and second.replies)
    events = await shop.bot.store.history(chat.conversation_id)
    assert sum(isinstance(e, UserUttered) for e in events) == 1


async def test_a_generator_past_the_deadline_gives_way_to_the_facts(shop_project: Project, tmp_path: Path) -> None:
    async def too_slow(i: int, body: object, request: Request) -> Response:
        await asyncio.sleep(20)
        return completion_json("Delivery takes 3-5 days.")

    app, seen = scripted(too_slow)
    with serve(app) as url:
        project = tmp_path / "shop"  # the shop with a remote generator, on the session's trained models
        shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns(".kefu"))
        config = project / "kefu.yml"
        remote = f"backend: openai\n  base_url: {url}/v1\n  deadline: 1\n  stream: false"
        config.write_text(config.read_text(encoding="utf-8").replace("backend: transformers", remote))
        settings = Settings(data_dir=shop_project.data_dir)
        runtime = build_runtime(open_project(project, settings), settings)
        runtime.bot.warm_up()
        try:
            started = time.monotonic()
            answer = await Chat(runtime).user("How long does express shipping take?")  # no fact matches exactly
            took = time.monotonic() - started
        finally:
            await runtime.aclose()
    assert seen.count == 1  # the generator was asked, once
    assert took < 12  # long before the generator would have answered
    assert answer.trace is not None and "generation" in [stage.name for stage in answer.trace.stages]
    [reply] = answer.replies
    assert reply.template != "generated" and reply.text != "Delivery takes 3-5 days."
    assert "faq_ship_01_en" in [fact.id for fact in answer.trace.facts]
