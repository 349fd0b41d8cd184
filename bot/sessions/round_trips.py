"""Counts the Redis round trips a piece of work makes: what a turn costs the shared Redis, in the trace and in
the load benchmark's figures. A script call or a pipeline is one round trip; pub/sub listening is not counted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster


@dataclass(slots=True)
class RoundTrips:
    count: int = 0


_current: ContextVar[RoundTrips | None] = ContextVar("kefu_redis_round_trips", default=None)


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """Count the round trips of this task (and of tasks it starts) until the block ends."""
    counter = RoundTrips()
    reset = _current.set(counter)
    try:
        yield counter
    finally:
        _current.reset(reset)


def _count() -> None:
    counter = _current.get()
    if counter is not None:
        counter.count += 1


class _Counted:
    """Mixed into a client class: every command and every pipeline execution counts as one round trip."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        _count()
        return await super().execute_command(*args, **options)  # type: ignore[misc]

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[misc]
        execute = pipe.execute

        async def counted(*a: Any, **k: Any) -> Any:
            _count()
            return await execute(*a, **k)

        pipe.execute = counted
        return pipe


class CountingRedis(_Counted, aioredis.Redis):  # type: ignore[misc]  # redis-py's own base classes disagree
    """`redis.asyncio.Redis` that counts its round trips."""


class CountingRedisCluster(_Counted, RedisCluster):  # type: ignore[misc]
    """`redis.asyncio.cluster.RedisCluster` that counts its round trips."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # redis-py resolves a command's routing before it discovers the cluster: the first commands of a fresh
        # client, when concurrent, race each other's connections (seen as AttributeError on a None writer)
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)
