"""Periodic jobs that one process of many should run per period (archiving): whoever claims the period runs it."""

from __future__ import annotations

import logging
import os

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


async def claim_period(client: aioredis.Redis, job: str, period_s: float) -> bool:
    """True for the first process to ask during a period (SET NX PX); a process that dies mid-job frees the next
    period anyway. Redis unreachable: True, since running twice is harmless and skipping is not."""
    try:
        claimed = await client.set(f"kefu:jobs:{job}", str(os.getpid()), nx=True, px=max(int(period_s * 900), 1))
    except RedisError as err:
        log.warning("could not coordinate the %s job with other processes: %s", job, err)
        return True
    return bool(claimed)
