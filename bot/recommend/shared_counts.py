"""Learned counts shared by every process through Redis: each process sends what it added (HINCRBY) and takes
everyone's totals back, every few seconds, so no turn waits on it and a restart forgets nothing.

`kefu:{recommend}:counts` holds the counts of every kind but the daily ones, which go to one hash per day
(`kefu:{recommend}:asked:YYYYMMDD`) that expires after the hot list's window: field `LANGUAGE<US>ITEM` for
`asked`, `KIND<US>LANGUAGE<US>ITEM` for the others. All keys share one cluster slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from bot.recommend.counts import DAILY, CountKey, UsageCounts

log = logging.getLogger(__name__)

COUNTS_KEY = "kefu:{recommend}:counts"
ASKED_KEY = "kefu:{recommend}:asked:"
_SEP = "\x1f"
DAY_S = 86_400


async def sync_counts(client: Any, counts: UsageCounts, *, hot_days: int, now: float | None = None) -> None:
    """Send this process's new counts and adopt the totals of all processes; on a Redis error the new counts
    stay pending for the next try."""
    taken = counts.drain()
    days = _days(now if now is not None else time.time(), hot_days)
    try:
        pipe = client.pipeline(transaction=False)
        for (kind, context, item), n in taken.items():
            if kind in DAILY:
                day, _, language = context.partition(":")
                field = _SEP.join((language, item) if kind == "asked" else (kind, language, item))
                pipe.hincrby(ASKED_KEY + day, field, n)
                pipe.expire(ASKED_KEY + day, (hot_days + 1) * DAY_S)
            else:
                pipe.hincrby(COUNTS_KEY, _SEP.join((kind, context, item)), n)
        pipe.hgetall(COUNTS_KEY)
        for day in days:
            pipe.hgetall(ASKED_KEY + day)
        replies = await pipe.execute()
    except RedisError as err:
        counts.restore(taken)
        log.warning("could not share learned recommendation counts (kept for the next try): %s", err)
        return
    totals = _parse(replies[-1 - len(days)], days, replies[len(replies) - len(days) :])
    counts.replace(totals)


def _days(now: float, hot_days: int) -> list[str]:
    return [time.strftime("%Y%m%d", time.gmtime(now - n * DAY_S)) for n in range(hot_days)]


def _parse(counts: Mapping[Any, Any], days: list[str], asked: list[Mapping[Any, Any]]) -> dict[CountKey, int]:
    totals: dict[CountKey, int] = {}
    for field, value in counts.items():
        parts = _text(field).split(_SEP)
        if len(parts) == 3:
            totals[(parts[0], parts[1], parts[2])] = int(value)
    for day, fields in zip(days, asked, strict=True):
        for field, value in fields.items():
            parts = _text(field).split(_SEP)
            if len(parts) == 2:
                parts.insert(0, "asked")
            if len(parts) == 3:
                totals[(parts[0], f"{day}:{parts[1]}", parts[2])] = int(value)
    return totals


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


async def keep_synced(client: Any, counts: UsageCounts, *, every_s: float, hot_days: int) -> None:
    """Sync now and then every `every_s` seconds until cancelled; a last sync on the way out."""
    try:
        while True:
            await sync_counts(client, counts, hot_days=hot_days)
            await asyncio.sleep(every_s)
    finally:
        if counts.pending:
            await asyncio.shield(sync_counts(client, counts, hot_days=hot_days))
