"""A Redis without learned counts is seeded once from the archive (real SQLite archive, real Redis): the hot
list then starts from the questions that opened the archived sessions; a Redis with live counts is left alone."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.assist.archive import ARCHIVE_FILE, Archive
from bot.assist.archive_sql import SqliteBackend
from bot.events import BotUttered, Event, QuestionsRecommended, RecommendationClicked, SlotSet
from bot.recommend.archive_seed import SEED_DAYS, SEEDED_KEY, seed_from_archive, session_observations
from bot.recommend.counts import UsageCounts
from bot.recommend.recommender import Recommender
from bot.recommend.shared_counts import COUNTS_KEY, sync_counts
from bot.recommend.signals import asked_context
from bot.sessions.connect import EmbeddedRedis, client_for_socket
from tests.assist.test_analytics import archived, user
from tests.recommend.helpers import small_recommender

pytestmark = pytest.mark.integration

NOW = time.time()
DAY = 86_400.0


def answered(item: str, text: str = "…") -> BotUttered:
    return BotUttered(text=text, template="knowledge:faq", fact_ids=(item,))


def opened_with_password() -> list[Event]:
    """A session opened by the forgotten password, then a click on the recommended refund question."""
    return [
        user("忘记密码怎么办？", "faq"), answered("password_zh"),
        QuestionsRecommended(context="password_zh", items=("refund_zh", "track_zh"), language="zh"),
        user("退款多久到账？", "faq"), RecommendationClicked(item="refund_zh", context="password_zh", rank=1),
        answered("refund_zh"),
    ]  # fmt: skip


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[Archive]:
    archive = Archive(SqliteBackend(tmp_path / ARCHIVE_FILE))
    sessions = [s for n in range(3) for s in archived(f"web:c{n}", NOW - DAY - n * 600, *opened_with_password())]
    sessions += archived("web:old", NOW - (SEED_DAYS + 5) * DAY, user("运费怎么收？", "faq"), answered("fee_zh"))
    await archive.save(sessions)
    yield archive
    await archive.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    redis = EmbeddedRedis(tmp_path / "redis")
    client = client_for_socket(redis.start())
    yield client
    await client.aclose()
    redis.stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    return small_recommender(tmp_path_factory.mktemp("seed"))


async def test_an_empty_redis_is_seeded_once_and_the_hot_list_learns_what_opened_sessions(
    archive: Archive, client: aioredis.Redis, built: Recommender
) -> None:
    first_process = UsageCounts()
    assert await seed_from_archive(client, archive, first_process, now=NOW) == 3, "the old session is left out"
    await sync_counts(client, first_process, hot_days=7, now=NOW)
    second_process = UsageCounts()
    assert await seed_from_archive(client, archive, second_process, now=NOW) == 0, "seeded once per Redis"
    await sync_counts(client, second_process, hot_days=7, now=NOW)
    yesterday = asked_context(NOW - DAY, "zh")
    assert second_process.counts("first", yesterday) == {"password_zh": 3}
    assert second_process.counts("next", "password_zh") == {"refund_zh": 3}
    assert second_process.counts("click", "password_zh") == {"refund_zh": 3}
    assert not second_process.counts("first", asked_context(NOW - (SEED_DAYS + 5) * DAY, "zh"))
    default = [q.id for q in built.hot("zh")]
    learned = Recommender(built.knowledge, built.options, counts=second_process, cache_dir=built._cache_dir)
    assert default[0] != "password_zh" and learned.hot("zh")[0].id == "password_zh"


async def test_a_redis_with_live_counts_is_left_as_it_is(archive: Archive, client: aioredis.Redis) -> None:
    await client.hincrby(COUNTS_KEY, "next\x1ffee_zh\x1ftrack_zh", 2)
    counts = UsageCounts()
    assert await seed_from_archive(client, archive, counts, now=NOW) == 0
    assert not counts.pending
    assert await client.exists(SEEDED_KEY) == 0


async def test_a_redis_gone_seeds_nothing_and_says_so(archive: Archive, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    unreachable = client_for_socket("/nonexistent/redis.sock")
    counts = UsageCounts()
    assert await seed_from_archive(unreachable, archive, counts, now=NOW) == 0
    await unreachable.aclose()
    assert not counts.pending
    assert "not seeded from the archive" in caplog.text


def test_each_turn_is_counted_in_the_language_it_was_learned_in() -> None:
    events = [
        user("你好", "greet"), BotUttered(text="您好！", template="utter_greet"),
        user("How much is shipping?", "faq", "en"), SlotSet(name="language", value="en"), answered("fee_en"),
    ]  # fmt: skip
    [session] = archived("web:switch", NOW, *events)
    seen = {(o.kind, o.context.rpartition(":")[2], o.item) for o in session_observations(session)}
    assert seen == {("asked", "en", "fee_en"), ("first", "en", "fee_en")}
