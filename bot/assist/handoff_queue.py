"""The handoff queue in Redis: conversations waiting for a human, most urgent first, and the ones operators
have taken.

All keys share the hash tag `{handoff}` so the scripts that move a ticket stay in one Redis Cluster slot:
`kefu:{handoff}:waiting` (sorted set, lower score first), `kefu:{handoff}:active` (sorted set by claim
time), `kefu:{handoff}:ticket:<conversation>` (hash) and `kefu:{handoff}:operators` (sorted set by last seen).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.errors import KefuError, SessionStoreError

Status = Literal["waiting", "active"]

_PREFIX = "kefu:{handoff}:"
WAITING, ACTIVE, OPERATORS = f"{_PREFIX}waiting", f"{_PREFIX}active", f"{_PREFIX}operators"
ONLINE_S = 90.0  # an operator whose console has not called in for this long is away
_PRIORITY_SPAN = 1e11  # one priority level outweighs any difference in waiting time (seconds)
LISTED = 200  # at most this many tickets per list in the console

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Returns {1, operator} when claimed, {0, ''} when there is no such ticket, {2, owner} when another has it.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, ''} end
local owner = redis.call('HGET', KEYS[1], 'operator') or ''
if status == 'active' and owner ~= ARGV[1] and ARGV[4] ~= '1' then return {2, owner} end
redis.call('HSET', KEYS[1], 'status', 'active', 'operator', ARGV[1], 'claimed_at', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return {1, ARGV[1]}
"""

_RELEASE = """
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return existed
"""


class QueueError(KefuError):
    """A queue operation that cannot be done as asked (no such ticket, another operator has it)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """A conversation handed to humans: why, how urgent (0-3, 3 first), in which language and channel, and
    the summary the operator reads first (`summary`: `ConversationSummary.to_dict()`)."""

    conversation_id: str
    reason: str
    priority: int
    language: str
    channel: str
    sender: str  # whom the channel delivers to (an openid on WeChat)
    enqueued_at: float
    summary: Mapping[str, Any] = field(default_factory=dict)
    status: Status = "waiting"
    operator: str = ""
    claimed_at: float = 0.0

    @property
    def score(self) -> float:
        return -self.priority * _PRIORITY_SPAN + self.enqueued_at

    def to_hash(self) -> dict[str, str]:
        return {
            "conversation_id": self.conversation_id, "reason": self.reason, "priority": str(self.priority),
            "language": self.language, "channel": self.channel, "sender": self.sender,
            "enqueued_at": repr(self.enqueued_at), "summary": json.dumps(self.summary, ensure_ascii=False),
            "status": self.status, "operator": self.operator, "claimed_at": repr(self.claimed_at),
        }  # fmt: skip

    @classmethod
    def from_hash(cls, data: Mapping[bytes | str, bytes | str]) -> Ticket:
        text = {_text(k): _text(v) for k, v in data.items()}
        status: Status = "active" if text.get("status") == "active" else "waiting"
        return cls(
            conversation_id=text["conversation_id"], reason=text.get("reason", ""),
            priority=int(text.get("priority", "1")), language=text.get("language", "zh"),
            channel=text.get("channel", ""), sender=text.get("sender", ""),
            enqueued_at=float(text.get("enqueued_at", "0")), summary=json.loads(text.get("summary") or "{}"),
            status=status, operator=text.get("operator", ""), claimed_at=float(text.get("claimed_at", "0")),
        )  # fmt: skip

    def to_json(self, *, now: float | None = None) -> dict[str, Any]:
        waited = (self.claimed_at or (now if now is not None else time.time())) - self.enqueued_at
        return {
            "conversation_id": self.conversation_id, "reason": self.reason, "priority": self.priority,
            "language": self.language, "channel": self.channel, "enqueued_at": self.enqueued_at,
            "waited_s": round(max(waited, 0.0), 1), "summary": dict(self.summary), "status": self.status,
            "operator": self.operator, "claimed_at": self.claimed_at,
        }  # fmt: skip


def ticket_key(conversation_id: str) -> str:
    return f"{_PREFIX}ticket:{conversation_id}"


class HandoffQueue:
    """Tickets in Redis; every change is one atomic script, so two operators never take the same one."""

    def __init__(self, client: aioredis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    async def enqueue(self, ticket: Ticket) -> bool:
        """Add the ticket; False (and nothing changes) if the conversation is already queued or taken."""
        flat = [item for pair in ticket.to_hash().items() for item in pair]
        keys = [ticket_key(ticket.conversation_id), WAITING]
        return bool(await self._call(self._enqueue(keys=keys, args=[ticket.score, ticket.conversation_id, *flat])))

    async def ahead_of(self, score: float) -> int:
        """How many waiting tickets come before one with this score."""
        return int(await self._call(self._redis.zcount(WAITING, "-inf", f"({score}")))

    async def claim(self, conversation_id: str, operator: str, *, take_over: bool = False) -> Ticket:
        """Give the conversation to `operator`; another operator's conversation only with `take_over`."""
        keys = [ticket_key(conversation_id), WAITING, ACTIVE]
        args = [operator, repr(self._clock()), conversation_id, "1" if take_over else "0"]
        code, owner = await self._call(self._claim(keys=keys, args=args))
        if int(code) == 0:
            raise QueueError(f"conversation {conversation_id!r} is not waiting for a human")
        if int(code) == 2:
            raise QueueError(f"{_text(owner)} is already serving this conversation; take it over to answer")
        found = await self.get(conversation_id)
        if found is None:  # handed back between the two calls
            raise QueueError(f"conversation {conversation_id!r} is not waiting for a human")
        return found

    async def release(self, conversation_id: str) -> bool:
        """Remove the conversation's ticket (handed back or closed); False if it had none."""
        keys = [ticket_key(conversation_id), WAITING, ACTIVE]
        return bool(await self._call(self._release(keys=keys, args=[conversation_id])))

    async def get(self, conversation_id: str) -> Ticket | None:
        data = await self._call(self._redis.hgetall(ticket_key(conversation_id)))
        return Ticket.from_hash(data) if data else None

    async def update_summary(self, conversation_id: str, summary: Mapping[str, Any]) -> Ticket:
        ticket = await self.get(conversation_id)
        if ticket is None:
            raise QueueError(f"conversation {conversation_id!r} has no handoff ticket")
        encoded = json.dumps(summary, ensure_ascii=False)
        await self._call(self._redis.hset(ticket_key(conversation_id), "summary", encoded))
        return replace(ticket, summary=summary)

    async def waiting(self) -> list[Ticket]:
        """Waiting tickets, the one to take next first."""
        return await self._tickets(WAITING)

    async def active(self) -> list[Ticket]:
        """Tickets operators have taken, oldest claim first."""
        return await self._tickets(ACTIVE)

    async def seen(self, operator: str) -> None:
        """Record that an operator's console is open (the customer is told whether anyone is online)."""
        await self._call(self._redis.zadd(OPERATORS, {operator: self._clock()}))

    async def online(self) -> list[str]:
        since = self._clock() - ONLINE_S
        names = await self._call(self._redis.zrangebyscore(OPERATORS, since, "+inf"))
        return [_text(n) for n in names]

    async def _tickets(self, key: str) -> list[Ticket]:
        ids = await self._call(self._redis.zrange(key, 0, LISTED - 1))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id in ids:
                pipe.hgetall(ticket_key(_text(conversation_id)))
            rows = await self._call(pipe.execute())
        return [Ticket.from_hash(row) for row in rows if row]

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as err:
            raise SessionStoreError(f"the handoff queue's Redis failed: {err}") from err


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
