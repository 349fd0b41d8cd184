"""Sessions in Redis: an append-only event log, derived state, a per-conversation lock.

Keys carry a hash tag so one conversation stays in one Redis Cluster slot:
`kefu:{cid}:events` (list: one element per commit, its events deflated together, see `event_batches`; plain
JSON events of older versions still read), `kefu:{cid}:state` (hash: the derived state, deflated; `start`, the
element where the current session starts; `version`, the element count), `kefu:{cid}:lock`. A turn costs two
round trips: one script takes the lock and loads the session, one atomic script commits and releases the lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

from bot.errors import LockTimeoutError, SessionStoreError, StaleSessionError
from bot.events import Event, Session, SessionStarted, SessionState, SlotSet
from bot.sessions.event_batches import MARKER, decode_elements, deflate, encode_batch, inflate

log = logging.getLogger(__name__)

_LOAD = """
local start = tonumber(redis.call('HGET', KEYS[2], 'start') or '0')
local state = redis.call('HGET', KEYS[2], 'state')
local events = redis.call('LRANGE', KEYS[1], start, -1)
return {start, state or '', events}
"""

# A turn's first round trip: take the lock (KEYS[3]; ARGV[1] the token, ARGV[2] its TTL in ms) and, when it was
# free, load as _LOAD does; nil while another turn holds it.
_LOCK_AND_LOAD = (
    """
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
"""
    + _LOAD
)

# Refuses a commit whose lock expired or whose session view is stale; otherwise appends the commit's element
# and updates the state. A start of -1 keeps the stored one (the session began in an earlier commit).
_COMMIT = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {err='lock lost'} end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[2]) then return {err='version changed'} end
local n = redis.call('RPUSH', KEYS[1], ARGV[5])
local start = ARGV[4]
if start == '-1' then start = redis.call('HGET', KEYS[2], 'start') or '0' end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'start', start, 'version', n)
if ARGV[6] == '1' then redis.call('DEL', KEYS[3]) end
return n
"""
_KEEP_START = -1

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RAW: dict[str, Any] = {NEVER_DECODE: True}  # redis-py's option for one reply left undecoded

# The derived state's keys and usual values, the most common last; stored `Z1` state needs exactly these bytes
# (never edit them: a new dictionary takes a new marker).
_STATE_ZDICT = (
    b'{"slots":{"product":"","order_id":"SO2026","requested_slot":"order_id"},"active_form":"order_form",'
    b'"handed_off":true,"handoff_reason":"requested:request_human","last_activity":17,"slots":{"language":"zh",'
    b'"requested_slot":null,"order_id":"SO2026","product":"","language":"en"},"last_activity":17,'
    b'"session_number":1,"turns":1'
)
_STATE_DEFAULTS = SessionState().to_dict()


def keys(conversation_id: str) -> tuple[str, str, str]:
    """The events, state and lock keys of one conversation (one cluster slot)."""
    events, state, lock = (conversation_key(conversation_id, name) for name in ("events", "state", "lock"))
    return events, state, lock


def conversation_key(conversation_id: str, name: str) -> str:
    """The key `name` of one conversation, `kefu:{<cid>}:<name>`: in the slot of all its keys (e.g. the WeChat
    channel's `menu`)."""
    return f"kefu:{{{_escape(conversation_id)}}}:{name}"


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


@dataclass(slots=True)
class Held:
    """A conversation's lock held for one turn, and its session as loaded under it."""

    token: str
    session: Session
    released: bool = False  # by `commit_and_release`


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
        self._lock_and_load_script = client.register_script(_LOCK_AND_LOAD)
        self._commit_script = client.register_script(_COMMIT)
        self._unlock_script = client.register_script(_UNLOCK)
        self._extend_script = client.register_script(_EXTEND)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis this store uses, for the parts that share it (the handoff queue, change notices)."""
        return self._redis

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[Held]:
        """Take the conversation's lock and load its session, one round trip per try (a turn then commits and
        releases in one more: `commit_and_release`); waits at most `lock_wait_s`, then raises LockTimeoutError.
        The lock goes back when the block ends, if the commit did not give it back."""
        lock_key = keys(conversation_id)[2]
        token = secrets.token_hex(16)
        script_keys = [*keys(conversation_id)]
        args = [token, self._options.lock_ttl_ms]
        deadline = time.monotonic() + self._options.lock_wait_s
        delay = 0.002
        while (loaded := await self._call(self._run_raw(self._lock_and_load_script, script_keys, args))) is None:
            self._wait_or_give_up(conversation_id, deadline)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        held = Held(token, self._session_of(conversation_id, *loaded))
        keeper = asyncio.create_task(self._keep_locked(lock_key, token))
        try:
            yield held
        finally:
            keeper.cancel()
            if not held.released:
                await self._call(self._unlock_script(keys=[lock_key], args=[token]))

    @asynccontextmanager
    async def lock(self, conversation_id: str) -> AsyncIterator[str]:
        """Hold the conversation's lock; waits at most `lock_wait_s`, then raises LockTimeoutError."""
        lock_key = keys(conversation_id)[2]
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self._options.lock_wait_s
        delay = 0.002
        while not await self._call(self._redis.set(lock_key, token, nx=True, px=self._options.lock_ttl_ms)):
            self._wait_or_give_up(conversation_id, deadline)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        keeper = asyncio.create_task(self._keep_locked(lock_key, token))
        try:
            yield token
        finally:
            keeper.cancel()
            await self._call(self._unlock_script(keys=[lock_key], args=[token]))

    def _wait_or_give_up(self, conversation_id: str, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise LockTimeoutError(
                f"conversation {conversation_id!r} stayed locked for {self._options.lock_wait_s:.0f}s; "
                "another turn is still running or a worker died holding it (the lock expires by itself)"
            )

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
        loaded = await self._call(self._run_raw(self._load_script, [events_key, state_key]))
        return self._session_of(conversation_id, *loaded)

    def _session_of(self, conversation_id: str, start: int, raw_state: bytes, elements: Sequence[bytes]) -> Session:
        version = int(start) + len(elements)  # elements, one per commit
        events = tuple(_events_of(conversation_id, elements))
        state = decode_state(raw_state) if raw_state else _replay(events)
        now = self._clock()
        expiration = self._options.expiration_s
        if events and (expiration <= 0 or now - state.last_activity <= expiration):  # 0: sessions never expire
            return Session(conversation_id, events, state, version)
        keep = self._options.carry_over_slots
        carried = {k: v for k, v in state.slots.items() if keep is True or (keep and k in keep)}
        fresh = Session(conversation_id, (), SessionState(session_number=state.session_number), version)
        return fresh.with_events(_session_start(now, carried))

    async def commit_and_release(self, held: Held, session: Session) -> Session:
        """`commit`, giving the lock back in the same round trip."""
        if not session.new_events:
            return session
        committed = await self.commit(session, held.token, release=True)
        held.released = True
        return committed

    async def commit(self, session: Session, lock_token: str, *, release: bool = False) -> Session:
        """Append the turn's new events, as one element, and the derived state in one atomic step; `release`
        also deletes the lock (see `commit_and_release`)."""
        if not session.new_events:
            return session
        events_key, state_key, lock_key = keys(session.conversation_id)
        # A session whose events are all new (a first or a fresh one) starts at the element this commit adds.
        fresh = len(session.new_events) == len(session.events)
        args: list[Any] = [
            lock_token,
            session.version,
            encode_state(session.state),
            session.version if fresh else _KEEP_START,
            encode_batch(session.new_events),
            1 if release else 0,
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
        return _events_of(conversation_id, await self._call(self._all_elements(keys(conversation_id)[0])))

    async def conversations(self, batch: int = 500) -> AsyncIterator[tuple[str, list[Event]]]:
        """Every stored conversation with all its events, for exports and the archiver (SCAN: the server stays
        responsive). One whose events cannot be decoded is skipped with a warning, not the end of the others."""
        async for key in self._redis.scan_iter(match="kefu:{*}:events", count=batch):
            name = key.decode() if isinstance(key, bytes) else str(key)
            conversation_id = _unescape(name[len("kefu:{") : -len("}:events")])
            elements = await self._call(self._all_elements(key))
            try:
                events = decode_elements(elements)
            except SessionStoreError as err:
                ref = hashlib.sha256(conversation_id.encode()).hexdigest()[:12]  # ids may be phone numbers
                log.warning("skipped conversation %s, whose stored events cannot be read: %s", ref, err)
                continue
            yield conversation_id, events

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()

    async def _all_elements(self, events_key: str) -> Any:
        return await self._raw("LRANGE", events_key, 0, -1)

    async def _run_raw(self, script: AsyncScript, script_keys: list[str], args: Sequence[Any] = ()) -> Any:
        """Run a registered script with its reply undecoded, loading it first into a Redis that does not know it
        yet (as `AsyncScript.__call__` does)."""
        command = ("EVALSHA", script.sha, len(script_keys), *script_keys, *args)
        try:
            return await self._raw(*command)
        except NoScriptError:
            await self._redis.script_load(script.script)
            return await self._raw(*command)

    async def _raw(self, *command: Any) -> Any:
        """One command whose reply stays bytes: the clients decode replies as UTF-8, which deflated data is not."""
        return await self._redis.execute_command(*command, **_RAW)  # type: ignore[no-untyped-call]

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


def _events_of(conversation_id: str, elements: Sequence[bytes]) -> list[Event]:
    try:
        return decode_elements(elements)
    except SessionStoreError as err:
        raise SessionStoreError(
            f"conversation {conversation_id!r} cannot be read: {err}. Its keys ({keys(conversation_id)[0]} and the "
            "state beside it) can be inspected with redis-cli, or deleted to start it afresh"
        ) from err


def encode_state(state: SessionState) -> bytes:
    """The derived state as stored: JSON without fields at their defaults, deflated. Small enough (under 64
    bytes for a few slots) that Redis keeps the state hash in its compact encoding."""
    data = {k: v for k, v in state.to_dict().items() if v != _STATE_DEFAULTS[k]}
    return MARKER + deflate(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(), _STATE_ZDICT)


def decode_state(raw: bytes | str) -> SessionState:
    """The stored state: deflated, or the plain JSON of versions before batches."""
    data = raw.encode() if isinstance(raw, str) else raw
    text = inflate(data[len(MARKER) :], _STATE_ZDICT) if data.startswith(MARKER) else data
    try:
        return SessionState.from_dict(json.loads(text))
    except (ValueError, TypeError, AttributeError) as err:  # damaged bytes: the store's error, not json's
        raise SessionStoreError(f"a stored session state is corrupt: {err!r}") from err


def _replay(events: tuple[Event, ...]) -> SessionState:
    state = SessionState()
    for event in events:
        state = state.apply(event)
    return state


def _session_start(now: float, carried: Mapping[str, Any]) -> list[Event]:
    started: list[Event] = [SessionStarted(timestamp=now)]
    started += [SlotSet(name=k, value=v, timestamp=now) for k, v in carried.items() if v is not None]
    return started
