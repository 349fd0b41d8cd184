"""Shared fixtures: a real Redis for every test that needs one (never a mock)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.sessions.connect import EmbeddedRedis, client_for_socket, client_for_url

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop"


@pytest.fixture(scope="session")
def redis_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`REDIS_URL` when set, else the socket of an embedded redis-server started for the test run."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield "unix://" + server.start()
    server.stop()


@pytest.fixture
async def redis_client(redis_target: str) -> AsyncIterator[aioredis.Redis]:
    client = (
        client_for_socket(redis_target.removeprefix("unix://"))
        if redis_target.startswith("unix://")
        else client_for_url(redis_target)
    )
    yield client
    await client.aclose()
