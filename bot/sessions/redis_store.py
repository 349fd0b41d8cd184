"""Sessions in Redis: an append-only event log, derived state, a per-conversation lock.

Keys carry a hash tag so one conversation stays in one Redis Cluster slot:
`kefu:{cid}:events` (list of JSON events), `kefu:{cid}:state` (hash: derived state, session start),
`kefu:{cid}:lock`. Load is one script call, commit is one atomic script call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bot.errors import LockTimeoutError, SessionStoreError, StaleSessionError
from bot.events import Event, Session, SessionStarted, SessionState, SlotSet, decode_event, encode_event

log = logging.getLogger(__name__)

_LOAD = """
local start = tonumber(redis.call('HGET', KEYS[2], 'start') or '0')
local state = redis.call('HGET', KEYS[2], 'state')
local events = redis.call('LRANGE', KEYS[1], start, -1)
return {start, state or '', events}
"""

# Refuses a commit whose lock expired or whose session view is stale; otherwise appends and updates state.
_COMMIT = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {err='lock lost'} end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[2]) then return {err='version changed'} end
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 5))
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'start', ARGV[4], 'version', n)
return n
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def keys(conversation_id: str) -> tuple[str, str, str]:
    """The events, state and lock keys of one conversation (one cluster slot)."""
    tag = "{" + _escape(conversation_id) + "}"
    return f"kefu:{tag}:events", f"kefu:{tag}:state", f"kefu:{tag}:lock"


def _escape(conversation_id: str) -> str:
    """The id without "}" (it would end the hash tag early), reversibly: "a}b" and "a_b" stay apart."""
    return conversation_id.replace("%", "%25").replace("}", "%7D")


def _unescape(tag: str) -> str:
    return tag.replace("%7D", "}").replace("%25", "%")


@dataclass(frozen=True, slots=True)
class StoreOptions:
    lock_ttl_ms: int = 15_000
    lock_wait_s: float = 20.0  # longer than the TTL: a lock whose holder died always expires within the wait
    expiration_s: float = 30 * 60.0  # 0: never
    carry_over_slots: bool | tuple[str, ...] = True  # all, none, or these slots


class RedisSessionStore:
    """The `SessionStore` of the design, over any Redis (embedded, single server or cluster)."""

    def __init__(
        self,
        client: aioredis.Redis,
        options: StoreOptions = StoreOptions(),
        *,
        clock: Callable[[], float] = time.time,
        describe: str = "Redis",
    ) -> None:
        self._redis = client
        self._options = options
        self._clock = clock
        self._describe = describe
        self._load_script = client.register_script(_LOAD)
        self._commit_script = client.register_script(_COMMIT)
        self._unlock_script = client.register_script(_UNLOCK)
        self._extend_script = client.register_script(_EXTEND)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis this store uses, for the parts that share it (the handoff queue, change notices)."""
        return self._redis

    @asynccontextmanager
    async def lock(self, conversation_id: str) -> AsyncIterator[str]:
        """Hold the conversation's lock; waits at most `lock_wait_s`, then raises LockTimeoutError."""
        lock_key = keys(conversation_id)[2]
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self._options.lock_wait_s
        delay = 0.002
        while not await self._call(self._redis.set(lock_key, token, nx=True, px=self._options.lock_ttl_ms)):
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"conversation {conversation_id!r} stayed locked for {self._options.lock_wait_s:.0f}s; "
                    "another turn is still running or a worker died holding it (the lock expires by itself)"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        keeper = asyncio.create_task(self._keep_locked(lock_key, token))
        try:
            yield token
        finally:
            keeper.cancel()
            await self._call(self._unlock_script(keys=[lock_key], args=[token]))

    async def _keep_locked(self, lock_key: str, token: str) -> None:
        """Extend the lock while its turn runs (a generated answer may take longer than the TTL); a process
        that dies stops extending, and its lock expires after at most one TTL."""
        ttl = self._options.lock_ttl_ms
        while True:
            await asyncio.sleep(ttl / 3000)
            try:
                if not await self._extend_script(keys=[lock_key], args=[token, ttl]):
                    return  # lost already: the commit will be refused and the turn retried
            except RedisError:
                log.warning("could not extend a conversation lock; it may expire under a slow turn")

    async def load(self, conversation_id: str) -> Session:
        """The conversation's current session; starts a new one after inactivity (old events stay archived)."""
        events_key, state_key, _ = keys(conversation_id)
        start, raw_state, raw_events = await self._call(self._load_script(keys=[events_key, state_key]))
        version = int(start) + len(raw_events)
        events = tuple(decode_event(raw) for raw in raw_events)
        state = SessionState.from_dict(json.loads(raw_state)) if raw_state else _replay(events)
        now = self._clock()
        expiration = self._options.expiration_s
        if events and (expiration <= 0 or now - state.last_activity <= expiration):  # 0: sessions never expire
            return Session(conversation_id, events, state, version)
        keep = self._options.carry_over_slots
        carried = {k: v for k, v in state.slots.items() if keep is True or (keep and k in keep)}
        fresh = Session(conversation_id, (), SessionState(session_number=state.session_number), version)
        return fresh.with_events(_session_start(now, carried))

    async def commit(self, session: Session, lock_token: str) -> Session:
        """Append the turn's new events and the derived state in one atomic step."""
        if not session.new_events:
            return session
        events_key, state_key, lock_key = keys(session.conversation_id)
        session_start = session.version + len(session.new_events) - len(session.events)
        args: list[Any] = [
            lock_token,
            session.version,
            json.dumps(session.state.to_dict(), ensure_ascii=False),
            session_start,
            *(encode_event(e) for e in session.new_events),
        ]
        try:
            version = await self._redis_call_commit(events_key, state_key, lock_key, args)
        except ResponseError as err:
            raise StaleSessionError(
                f"commit of conversation {session.conversation_id!r} refused ({err}); the turn will be retried"
            ) from err
        return Session(session.conversation_id, session.events, session.state, int(version))

    async def history(self, conversation_id: str) -> list[Event]:
        """Every stored event of the conversation, archived sessions included."""
        raw = await self._call(self._redis.lrange(keys(conversation_id)[0], 0, -1))
        return [decode_event(r) for r in raw]

    async def conversations(self, batch: int = 500) -> AsyncIterator[tuple[str, list[Event]]]:
        """Every stored conversation with all its events, for exports (SCAN: the server stays responsive)."""
        async for key in self._redis.scan_iter(match="kefu:{*}:events", count=batch):
            name = key.decode() if isinstance(key, bytes) else str(key)
            raw = await self._call(self._redis.lrange(key, 0, -1))
            yield _unescape(name[len("kefu:{") : -len("}:events")]), [decode_event(r) for r in raw]

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()

    async def _redis_call_commit(self, events_key: str, state_key: str, lock_key: str, args: list[Any]) -> Any:
        try:
            return await self._commit_script(keys=[events_key, state_key, lock_key], args=args)
        except ResponseError:
            raise
        except RedisError as err:
            raise SessionStoreError(f"{self._describe} failed during commit: {err}") from err

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except RedisError as err:
            raise SessionStoreError(
                f"{self._describe} is unreachable or failed: {err}. Check that it runs, or unset REDIS_URL "
                "to use the embedded Redis"
            ) from err


def _replay(events: tuple[Event, ...]) -> SessionState:
    state = SessionState()
    for event in events:
        state = state.apply(event)
    return state


def _session_start(now: float, carried: Mapping[str, Any]) -> list[Event]:
    started: list[Event] = [SessionStarted(timestamp=now)]
    started += [SlotSet(name=k, value=v, timestamp=now) for k, v in carried.items() if v is not None]
    return started
