"""Change notices between processes over Redis pub/sub: "this conversation changed", so that the widget
socket holding it syncs (an operator wrote) and open consoles refresh (a customer wrote, a ticket moved).

Notices carry only a topic and a conversation id; whoever listens reads the state itself from Redis. A
notice lost while a connection is down costs a delay, not data: widgets sync on reconnect, consoles poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "kefu:notify"
CONSOLE = "console"  # every change an operator may want to see
RETRY_S = 1.0


def conversation_topic(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


class Notifier:
    """One subscription per process, fanned out to local listeners (a socket or a console each)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._listeners: defaultdict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def publish(self, conversation_id: str, *, console: bool = True) -> None:
        """Tell every process that the conversation changed (its widget, and the consoles when `console`)."""
        topics = [conversation_topic(conversation_id), *([CONSOLE] if console else [])]
        payload = json.dumps({"topics": topics, "conversation_id": conversation_id}, ensure_ascii=False)
        try:
            await self._redis.publish(CHANNEL, payload)
        except RedisError as err:  # the change itself is stored; listeners catch up at their next sync
            log.warning("could not publish a change notice: %s", type(err).__name__)

    @contextlib.asynccontextmanager
    async def listen(self, topic: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of the conversation ids changed under `topic`, while the context is open."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=256)
        self._listeners[topic].add(queue)
        self._start()
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=5.0)
        except TimeoutError:
            log.warning("change notices are not subscribed yet; listeners will catch up by polling")
        try:
            yield queue
        finally:
            self._listeners[topic].discard(queue)
            if not self._listeners[topic]:
                del self._listeners[topic]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kefu-notices")

    async def _run(self) -> None:
        while True:
            try:
                await self._subscribe_and_fan_out()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as err:
                self._subscribed.clear()
                log.warning("change notices interrupted (%s); resubscribing", type(err).__name__)
                await asyncio.sleep(RETRY_S)

    async def _subscribe_and_fan_out(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(CHANNEL)
            self._subscribed.set()
            while True:
                message = await pubsub.get_message(timeout=30.0)
                if message is not None:
                    self._fan_out(message.get("data"))

    def _fan_out(self, data: Any) -> None:
        try:
            notice = json.loads(data)
            topics, conversation_id = list(notice["topics"]), str(notice["conversation_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed change notice")
            return
        for topic in topics:
            for queue in tuple(self._listeners.get(topic, ())):
                with contextlib.suppress(asyncio.QueueFull):  # a stuck listener must not hold up the others
                    queue.put_nowait(conversation_id)
