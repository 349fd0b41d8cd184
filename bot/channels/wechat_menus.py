"""The last numbered menu shown in each WeChat / WeCom conversation, so that a reply "2" means its second entry.

`RedisMenus` keeps it beside the conversation's session keys, at `kefu:{<conversation id>}:menu` (same cluster
slot), as JSON `[[title, payload], ...]` that expires after `MENU_TTL_S`: every process sharing the Redis reads
the menu another one showed. One command writes it (SET, or DEL for a turn without numbered lines, so an old
menu never answers a new question), one reads it, and only for a message that is a number. A Redis that fails
loses nothing of the customer's: the number then reaches the bot as plain text (which NLU can still read).
`MenuMemory` keeps menus in process memory, for a channel given no Redis.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.sessions.redis_store import conversation_key
from bot.types import Button

log = logging.getLogger(__name__)

MENU_TTL_S = 24 * 3600  # a follower may come back to a menu later that day; a key never outlives a day
MENUS_KEPT = 10_000


class Menus(Protocol):
    """Where a channel keeps each conversation's last menu; neither method raises."""

    async def remember(self, conversation_id: str, menu: tuple[Button, ...]) -> None:
        """Keep `menu` as the conversation's last one; an empty menu forgets the previous one."""
        ...

    async def recall(self, conversation_id: str) -> tuple[Button, ...]:
        """The conversation's last menu, or () when there is none (or it cannot be read)."""
        ...


def menu_number(text: str) -> int | None:
    """The number `text` is ("2", "２" as Chinese keyboards type it, " 2 "), or None for anything else."""
    text = text.strip()
    return int(text) if text.isdecimal() and len(text) <= 3 else None


def menu_key(conversation_id: str) -> str:
    return conversation_key(conversation_id, "menu")


class RedisMenus:
    """Menus in Redis, shared by every process (`kefu run --workers N`, several machines)."""

    def __init__(self, client: aioredis.Redis, ttl_s: int = MENU_TTL_S) -> None:
        self._redis = client
        self._ttl_s = ttl_s

    async def remember(self, conversation_id: str, menu: tuple[Button, ...]) -> None:
        key = menu_key(conversation_id)
        try:
            if menu:
                await self._redis.set(key, _encode(menu), ex=self._ttl_s)
            else:
                await self._redis.delete(key)
        except (RedisError, OSError) as err:  # the reply goes out all the same
            _warn("stored", err)

    async def recall(self, conversation_id: str) -> tuple[Button, ...]:
        try:
            raw = await self._redis.get(menu_key(conversation_id))
        except (RedisError, OSError) as err:
            _warn("read", err)
            return ()
        return _decode(raw) if raw is not None else ()


class MenuMemory:
    """Menus in process memory, least recently used first out: a number reaching another process that did not
    show the menu goes to the bot as text."""

    def __init__(self, capacity: int = MENUS_KEPT) -> None:
        self._capacity = capacity
        self._menus: OrderedDict[str, tuple[Button, ...]] = OrderedDict()

    async def remember(self, conversation_id: str, menu: tuple[Button, ...]) -> None:
        if not menu:
            self._menus.pop(conversation_id, None)
            return
        self._menus[conversation_id] = menu
        self._menus.move_to_end(conversation_id)
        while len(self._menus) > self._capacity:
            self._menus.popitem(last=False)

    async def recall(self, conversation_id: str) -> tuple[Button, ...]:
        return self._menus.get(conversation_id, ())


def _warn(done: str, err: Exception) -> None:
    # the error's class only: its message may name the key, and so the follower's openid
    log.warning("a WeChat menu could not be %s (%s); numbers go to the bot as text", done, type(err).__name__)


def _encode(menu: tuple[Button, ...]) -> str:
    return json.dumps([[entry.title, entry.payload] for entry in menu], ensure_ascii=False, separators=(",", ":"))


def _decode(raw: str | bytes) -> tuple[Button, ...]:
    """The stored menu; () for one this version cannot read (the number then reads as text)."""
    try:
        entries = json.loads(raw)
    except ValueError:
        entries = None
    if isinstance(entries, list) and all(_is_entry(entry) for entry in entries):
        return tuple(Button(title, payload) for title, payload in entries)
    log.warning("a stored WeChat menu is unreadable; it is ignored")
    return ()


def _is_entry(entry: object) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)
