"""The hot list at the start of a session: the questions that opened the most sessions lately, then the default
starters; configured questions win, and learning off keeps the default."""

from __future__ import annotations

import dataclasses

import pytest

from bot.recommend.counts import Observation, UsageCounts
from bot.recommend.recommender import Recommender
from bot.recommend.signals import asked_context
from tests.recommend.helpers import small_recommender

NOW = 1_795_000_000.0
DAY = 86_400.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    return small_recommender(tmp_path_factory.mktemp("hot"))


def with_counts(built: Recommender, seen: list[Observation], **options: object) -> Recommender:
    counts = UsageCounts()
    counts.add(seen)
    return Recommender(
        built.knowledge,
        dataclasses.replace(built.options, **options),  # type: ignore[arg-type]
        counts=counts,
        cache_dir=built._cache_dir,
        clock=lambda: NOW,
    )


def times(kind: str, when: float, item: str, n: int) -> list[Observation]:
    return [Observation(kind, asked_context(when, "zh"), item)] * n


def test_the_questions_that_open_sessions_lead_the_hot_list(built: Recommender) -> None:
    default = [q.id for q in built.hot("zh")]
    assert "refund_zh" in default and "password_zh" in default
    seen = times("first", NOW, "password_zh", 3) + times("asked", NOW, "password_zh", 3)
    seen += times("asked", NOW, "track_zh", 9)  # asked often, but always later in a session
    hot = [q.id for q in with_counts(built, seen).hot("zh")]
    assert hot[0] == "password_zh"
    assert hot.index("track_zh") == 1, "asked questions still rank above the starters nobody asked"
    assert set(default) - set(hot) <= {"refund_zh", "return_zh", "ship_zh", "fee_zh"}


def test_only_the_last_days_count_and_learning_off_keeps_the_default(built: Recommender) -> None:
    default = [q.id for q in built.hot("zh")]
    old = times("first", NOW - 30 * DAY, "track_zh", 5) + times("asked", NOW - 30 * DAY, "track_zh", 5)
    assert [q.id for q in with_counts(built, old).hot("zh")] == default
    recent = times("first", NOW - DAY, "track_zh", 5)
    assert with_counts(built, recent).hot("zh")[0].id == "track_zh"
    assert [q.id for q in with_counts(built, recent, learning=False).hot("zh")] == default


def test_configured_hot_questions_come_first_in_their_order(built: Recommender) -> None:
    seen = times("first", NOW, "track_zh", 5)
    configured = with_counts(built, seen, hot={"zh": ("怎么申请退货？", "fee_zh")}, learning=False)
    assert [q.id for q in configured.hot("zh")] == ["return_zh", "fee_zh"]


def test_nothing_in_another_language_leaks_into_the_hot_list(built: Recommender) -> None:
    seen = [Observation("first", asked_context(NOW, "en"), "track_en")] * 5
    assert all(q.id.endswith("_zh") for q in with_counts(built, seen).hot("zh"))
    assert with_counts(built, seen).hot("en")[0].id == "track_en"
