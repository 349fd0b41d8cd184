"""Per-sender rate limits shared by every `kefu run` process through Redis.

The limit is GCRA (a token bucket kept as one timestamp per sender): a sender may send `burst` messages at once,
then one every `period_s / count` seconds. Each check is one atomic script call that reads Redis's own clock,
so processes on different machines agree without synchronised clocks. The key is
`kefu:rate:{<channel>:<digest of the sender>}`: one key, one cluster slot, and no phone number or e-mail
address in key names. When Redis fails, messages are let through: the session store reports the outage itself.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0  # an outage logs one warning a minute, not one per message
_RULE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*")
_OFF = {"0", "off", "none", "false", ""}

# KEYS[1]: the sender's key; ARGV[1]: ms between messages; ARGV[2]: how far ahead the bucket may run (ms).
# Answers {1, 0} (allowed) or {0, ms to wait}. TIME needs effects replication before Redis 7 (a no-op since).
_GCRA = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if tat - tolerance > now then
  return {0, math.ceil(tat - tolerance - now)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now))
return {1, 0}
"""


@dataclass(frozen=True, slots=True)
class RateRule:
    """`count` messages per `period_s` seconds, up to `burst` of them at once."""

    count: int
    period_s: float
    burst: int

    @property
    def interval_ms(self) -> float:
        return self.period_s * 1000 / self.count

    def __str__(self) -> str:
        return f"{self.count} messages per {self.period_s:g} s"


def parse_rate(text: str, burst: int | None = None) -> RateRule | None:
    """`N/SECONDS` (e.g. "30/60") as a rule whose burst is `burst` (default N); None for "0" or "off".
    ValueError says how to write it."""
    if text.strip().lower() in _OFF:
        return None
    match = _RULE.fullmatch(text)
    count, period = (int(match[1]), float(match[2])) if match else (0, 0.0)
    if count < 1 or period <= 0:
        raise ValueError(f"{text!r} is not a rate: write N/SECONDS, e.g. 30/60 (30 messages a minute), or off")
    if burst is not None and burst < 1:
        raise ValueError(f"the burst must be at least 1 message, not {burst}")
    return RateRule(count, period, burst or count)


@dataclass(frozen=True, slots=True)
class RateVerdict:
    allowed: bool
    retry_after_s: float = 0.0


class RateLimiter:
    """Checks and counts one message of a sender against `rule`, in Redis shared by every process."""

    def __init__(self, client: aioredis.Redis, rule: RateRule) -> None:
        self.rule = rule
        self._script = client.register_script(_GCRA)
        self._args = (rule.interval_ms, rule.interval_ms * (rule.burst - 1))
        self._warned_at = -math.inf

    async def check(self, channel: str, sender: str) -> RateVerdict:
        """Whether this message may go through (it then counts), else how long the sender should wait."""
        try:
            allowed, wait_ms = await self._script(keys=[rate_key(channel, sender)], args=list(self._args))
        except (RedisError, OSError) as err:
            self._warn(err)
            return RateVerdict(True)
        return RateVerdict(bool(allowed), int(wait_ms) / 1000)

    def _warn(self, err: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("rate limits are not enforced while Redis fails (%s); messages go through", err)


def rate_key(channel: str, sender: str) -> str:
    digest = hashlib.sha256(sender.encode()).hexdigest()[:24]
    return f"kefu:rate:{{{channel}:{digest}}}"
