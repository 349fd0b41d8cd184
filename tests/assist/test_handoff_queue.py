"""The handoff queue and change notices on a real Redis (a database of their own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.assist.handoff_queue import HandoffQueue, QueueError, Ticket
from bot.assist.notify import Notifier


@pytest.fixture
async def private_redis(redis_target: str) -> AsyncIterator[aioredis.Redis]:
    """Database 7 of the suite's Redis, emptied: queue figures here count only this test's tickets."""
    client = aioredis.from_url(_db7(redis_target))
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def _db7(redis_target: str) -> str:
    return redis_target + ("?db=7" if redis_target.startswith("unix://") else "/7")


def _ticket(cid: str, reason: str, priority: int, at: float) -> Ticket:
    return Ticket(cid, reason, priority, "zh", "web", cid, at, {"problem": "问题"})


async def test_the_most_urgent_waits_least_and_a_ticket_has_one_owner(private_redis: aioredis.Redis) -> None:
    queue = HandoffQueue(private_redis)
    now = time.time()
    assert await queue.enqueue(_ticket("web:a", "repeated_fallback", 1, now - 300))
    assert await queue.enqueue(_ticket("web:b", "requested:request_human", 2, now - 10))
    assert await queue.enqueue(_ticket("web:c", "risk:legal", 3, now))
    assert not await queue.enqueue(_ticket("web:c", "risk:legal", 3, now))  # queued once
    assert [t.conversation_id for t in await queue.waiting()] == ["web:c", "web:b", "web:a"]
    assert await queue.ahead_of(_ticket("x", "requested:x", 2, now).score) == 2

    taken = await queue.claim("web:b", "小王")
    assert taken.status == "active" and taken.operator == "小王" and taken.summary == {"problem": "问题"}
    with pytest.raises(QueueError, match="小王 is already serving"):
        await queue.claim("web:b", "alice")
    assert (await queue.claim("web:b", "alice", take_over=True)).operator == "alice"
    with pytest.raises(QueueError, match="not waiting"):
        await queue.claim("web:none", "alice")
    assert [t.conversation_id for t in await queue.active()] == ["web:b"]

    assert await queue.release("web:b") and not await queue.release("web:b")
    assert await queue.get("web:b") is None
    await queue.seen("小王")
    assert await queue.online() == ["小王"]


async def test_notices_reach_listeners_of_other_clients(private_redis: aioredis.Redis, redis_target: str) -> None:
    other = aioredis.from_url(_db7(redis_target))
    listener, publisher = Notifier(private_redis), Notifier(other)
    async with listener.listen("conversation:web:x") as changes:
        await publisher.publish("web:y", console=False)
        await publisher.publish("web:x", console=False)
        assert await asyncio.wait_for(changes.get(), 5) == "web:x"
    await listener.close()
    await other.aclose()
