"""Per-sender and per-address rate limits shared by every `kefu run` process through Redis.

The limit is GCRA (a token bucket kept as one timestamp per sender): a sender may send `burst` messages at once,
then one every `period_s / count` seconds. Each bucket is checked by one atomic script call that reads Redis's
own clock, so processes on different machines agree without synchronised clocks. The key is
`kefu:rate:{<channel>:<digest of the sender>}`: one key, one cluster slot, and no phone number or e-mail
address in key names. On the web channels the client picks its own sender id, so a second bucket per network
address, `kefu:rate:{addr:<digest>}` (IPv6: per /64), catches one client rotating ids; both calls go in one
pipeline. When Redis fails, messages are let through: the session store reports the outage itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
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

# KEYS[1]: the bucket's key; ARGV[1]: ms between messages; ARGV[2]: how far ahead the bucket may run (ms).
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
    scope: str = ""  # the limit that refused the message: "sender" or "client" (its network address)


class RateLimiter:
    """Checks and counts one message against the sender's `rule` and its address's `per_client` rule (either
    may be None: off), in Redis shared by every process."""

    def __init__(self, client: aioredis.Redis, rule: RateRule | None, *, per_client: RateRule | None = None) -> None:
        self.rule = rule
        self.per_client = per_client
        self._redis = client
        self._warned_at = -math.inf

    def limit(self, scope: str) -> str:
        """The rule of `scope` ("sender" or "client") in words, for the refusal's message."""
        return f"{self.per_client} from one network address" if scope == "client" else f"{self.rule} from one sender"

    async def check(self, channel: str, sender: str, client: str = "") -> RateVerdict:
        """Whether this message may go through, else how long to wait and which limit said no. Both buckets are
        checked in one round trip, so a message one of them refuses still counts in the other."""
        buckets: list[tuple[str, str, RateRule]] = []
        if self.rule is not None:
            buckets.append(("sender", rate_key(channel, sender), self.rule))
        if client and self.per_client is not None:
            buckets.append(("client", client_key(client), self.per_client))
        if not buckets:
            return RateVerdict(True)
        try:
            answers = await self._run([(key, rule) for _, key, rule in buckets])
        except (RedisError, OSError) as err:
            self._warn(err)
            return RateVerdict(True)
        refused = [(int(wait), scope) for (scope, _, _), (ok, wait) in zip(buckets, answers, strict=True) if not ok]
        if not refused:
            return RateVerdict(True)
        wait_ms, scope = max(refused)
        return RateVerdict(False, wait_ms / 1000, scope)

    async def _run(self, buckets: list[tuple[str, RateRule]]) -> list[list[int]]:
        """The script's answer for each bucket, in one round trip (on a cluster, one per node, in parallel).
        EVAL with the script's text: a registered script in a pipeline asks SCRIPT EXISTS first, a second round
        trip on every check, and a cluster pipeline refuses EVALSHA; Redis caches the compiled script."""
        async with self._redis.pipeline(transaction=False) as pipe:  # the keys live in different cluster slots
            for key, rule in buckets:
                pipe.eval(_GCRA, 1, key, rule.interval_ms, rule.interval_ms * (rule.burst - 1))
            return list(await pipe.execute())

    def _warn(self, err: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("rate limits are not enforced while Redis fails (%s); messages go through", err)


def rate_key(channel: str, sender: str) -> str:
    return f"kefu:rate:{{{channel}:{_digest(sender)}}}"


def client_key(address: str) -> str:
    """The key of a network address's bucket: shared by its conversations on every web channel."""
    return f"kefu:rate:{{addr:{_digest(network_of(address))}}}"


def network_of(address: str) -> str:
    """What one subscriber holds: an IPv4 address, or the /64 of an IPv6 one (providers hand out whole /64s,
    so single addresses cost nothing to rotate). Anything unparsable is used as is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # a dual-stack socket's view of an IPv4 client
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]
