"""The Redis session store against a real Redis server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bot.errors import LockTimeoutError, SessionStoreError, StaleSessionError
from bot.events import ActionExecuted, Event, SessionStarted, SessionState, SlotSet, UserUttered, encode_event
from bot.sessions.connect import client_for_url
from bot.sessions.event_batches import MARKER
from bot.sessions.redis_store import RedisSessionStore, StoreOptions, keys
from bot.sessions.round_trips import counting_round_trips
from tests.sessions.conversations import shop_turns

pytestmark = pytest.mark.integration


def cid() -> str:
    return f"test-{uuid.uuid4().hex}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_commit_then_load_round_trips_events_and_state(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    conversation = cid()
    async with store.lock(conversation) as token:
        session = await store.load(conversation)
        assert isinstance(session.new_events[0], SessionStarted)
        session = session.with_events([UserUttered(text="你好"), SlotSet(name="order_id", value="SO20261001")])
        await store.commit(session, token)
    loaded = await store.load(conversation)
    assert [type(e) for e in loaded.events] == [SessionStarted, UserUttered, SlotSet]
    assert loaded.slots == {"order_id": "SO20261001"}
    assert loaded.version == 1 and loaded.new_events == ()  # one list element per commit


async def test_concurrent_turns_run_one_after_the_other_and_lose_nothing(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    conversation = cid()
    inside = 0
    overlaps = 0

    async def turn(n: int) -> None:
        nonlocal inside, overlaps
        async with store.lock(conversation) as token:
            inside += 1
            overlaps += inside > 1
            session = await store.load(conversation)
            await asyncio.sleep(0.01)  # a turn that takes a while gives the other a chance to interleave
            session = session.with_events([UserUttered(text=f"m{n}"), ActionExecuted(name=f"a{n}")])
            await store.commit(session, token)
            inside -= 1

    await asyncio.gather(*(turn(n) for n in range(8)))
    events = await store.history(conversation)
    texts = [e.text for e in events if isinstance(e, UserUttered)]
    actions = [e.name for e in events if isinstance(e, ActionExecuted)]
    assert overlaps == 0
    assert sorted(texts) == [f"m{n}" for n in range(8)]
    assert [t[1:] for t in texts] == [a[1:] for a in actions]  # each turn's events stay together


async def test_stale_commit_is_rejected(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    conversation = cid()
    async with store.lock(conversation) as token:
        first = await store.load(conversation)
        await store.commit(first.with_events([UserUttered(text="a")]), token)
        with pytest.raises(StaleSessionError):
            await store.commit(first.with_events([UserUttered(text="b")]), token)
    assert [e.text for e in await store.history(conversation) if isinstance(e, UserUttered)] == ["a"]


async def test_commit_after_the_lock_expired_is_rejected(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client, StoreOptions(lock_ttl_ms=50))
    conversation = cid()
    async with store.lock(conversation) as token:
        session = await store.load(conversation)
        time.sleep(0.1)  # noqa: ASYNC251 (a stalled process: its loop cannot extend the lock)
        async with store.lock(conversation):  # the next turn takes over the expired lock
            with pytest.raises(StaleSessionError, match="lock lost"):
                await store.commit(session.with_events([UserUttered(text="late")]), token)
    assert await store.history(conversation) == []


async def test_a_slow_turn_keeps_its_lock_past_the_ttl(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client, StoreOptions(lock_ttl_ms=90, lock_wait_s=0.05))
    conversation = cid()
    async with store.lock(conversation) as token:
        session = await store.load(conversation)
        await asyncio.sleep(0.4)  # a generated answer: longer than the TTL, the loop free meanwhile
        with pytest.raises(LockTimeoutError):  # nobody else got in
            async with store.lock(conversation):
                pass
        await store.commit(session.with_events([UserUttered(text="slow but sure")]), token)
    assert [e.text for e in await store.history(conversation) if isinstance(e, UserUttered)] == ["slow but sure"]
    assert await redis_client.exists(keys(conversation)[2]) == 0  # released, and the keeper stopped


async def test_lock_wait_is_bounded(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client, StoreOptions(lock_wait_s=0.05))
    conversation = cid()
    async with store.lock(conversation):
        with pytest.raises(LockTimeoutError, match="stayed locked"):
            async with store.lock(conversation):
                pass


async def test_inactivity_starts_a_new_session_and_keeps_the_old_events(redis_client: aioredis.Redis) -> None:
    clock = Clock()
    store = RedisSessionStore(redis_client, StoreOptions(expiration_s=60), clock=clock)
    conversation = cid()
    async with store.lock(conversation) as token:
        session = await store.load(conversation)
        session = session.with_events(
            [UserUttered(text="hi", timestamp=clock.now), SlotSet(name="x", value="1", timestamp=clock.now)]
        )
        await store.commit(session, token)
    clock.now += 61
    async with store.lock(conversation) as token:
        session = await store.load(conversation)
        assert [type(e) for e in session.events] == [SessionStarted, SlotSet]  # carried-over slot
        assert session.state.session_number == 2 and session.slots == {"x": "1"}
        await store.commit(session.with_events([UserUttered(text="again", timestamp=clock.now)]), token)
    current = await store.load(conversation)
    assert [e.text for e in current.events if isinstance(e, UserUttered)] == ["again"]
    assert len(await store.history(conversation)) == 6


async def test_an_expiration_of_zero_means_sessions_never_expire(redis_client: aioredis.Redis) -> None:
    clock = Clock()
    store = RedisSessionStore(redis_client, StoreOptions(expiration_s=0), clock=clock)
    conversation = cid()
    async with store.lock(conversation) as token:
        session = await store.load(conversation)
        await store.commit(session.with_events([UserUttered(text="hi", timestamp=clock.now)]), token)
    clock.now += 365 * 86400
    session = await store.load(conversation)
    assert session.state.session_number == 1 and [e.text for e in session.events if isinstance(e, UserUttered)] == [
        "hi"
    ]


@pytest.mark.parametrize(("keep", "carried"), [(True, {"x": "1", "y": "2"}), (False, {}), (("y",), {"y": "2"})])
async def test_a_new_session_carries_over_all_none_or_the_listed_slots(
    redis_client: aioredis.Redis, keep: bool | tuple[str, ...], carried: dict[str, str]
) -> None:
    clock = Clock()
    store = RedisSessionStore(redis_client, StoreOptions(expiration_s=60, carry_over_slots=keep), clock=clock)
    conversation = cid()
    async with store.lock(conversation) as token:
        session = (await store.load(conversation)).with_events(
            [SlotSet(name="x", value="1", timestamp=clock.now), SlotSet(name="y", value="2", timestamp=clock.now)]
        )
        await store.commit(session, token)
    clock.now += 61
    assert dict((await store.load(conversation)).slots) == carried


def test_all_keys_of_a_conversation_share_one_cluster_slot() -> None:
    assert len({key_slot(k.encode()) for k in keys("wx:oUser{1}")}) == 1


async def test_ids_that_differ_only_in_braces_stay_separate_conversations(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    tag = uuid.uuid4().hex
    ids = [f"rest:{tag}}}x", f"rest:{tag}_x", f"rest:{tag}%7Dx"]
    for n, conversation in enumerate(ids):
        async with store.lock(conversation) as token:
            session = await store.load(conversation)
            await store.commit(session.with_events([UserUttered(text=f"m{n}")]), token)
    for n, conversation in enumerate(ids):
        assert [e.text for e in await store.history(conversation) if isinstance(e, UserUttered)] == [f"m{n}"]
    exported = {cid async for cid, _ in store.conversations() if tag in cid}
    assert exported == set(ids)


async def test_unreachable_redis_gives_a_clear_error() -> None:
    client = client_for_url("redis://127.0.0.1:1/0")
    store = RedisSessionStore(client, describe="Redis at redis://127.0.0.1:1")
    with pytest.raises(SessionStoreError, match="unreachable"):
        await store.ping()
    await client.aclose()


async def say(store: RedisSessionStore, conversation: str, *events: Event) -> None:
    async with store.lock(conversation) as token:
        session = await store.load(conversation)
        await store.commit(session.with_events(events), token)


def texts(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, UserUttered)]


async def test_each_commit_is_one_element_and_a_new_session_starts_at_its_first(
    redis_client: aioredis.Redis,
) -> None:
    clock = Clock()
    store = RedisSessionStore(redis_client, StoreOptions(expiration_s=60), clock=clock)
    conversation = cid()
    events_key, state_key, _ = keys(conversation)
    for text in ("a", "b", "c"):
        await say(
            store,
            conversation,
            UserUttered(text=text, timestamp=clock.now),
            ActionExecuted(name="x", timestamp=clock.now),
        )
    assert await redis_client.llen(events_key) == 3 and await redis_client.hget(state_key, "start") == "0"
    clock.now += 61
    await say(store, conversation, UserUttered(text="d", timestamp=clock.now))
    await say(store, conversation, UserUttered(text="e", timestamp=clock.now))
    assert await redis_client.hget(state_key, "start") == "3"  # the element of the new session's first commit
    assert await redis_client.hget(state_key, "version") == "5"
    current = await store.load(conversation)
    assert [type(e) for e in current.events] == [SessionStarted, UserUttered, UserUttered] and current.version == 5
    assert texts(current.events) == ["d", "e"] and current.state.session_number == 2
    assert texts(await store.history(conversation)) == ["a", "b", "c", "d", "e"]


async def test_old_plain_json_events_load_beside_new_batches(redis_client: aioredis.Redis) -> None:
    clock = Clock()
    store = RedisSessionStore(redis_client, StoreOptions(expiration_s=60), clock=clock)
    conversation = cid()
    events_key, state_key, _ = keys(conversation)
    earlier = [SessionStarted(timestamp=clock.now - 500), UserUttered(text="long ago", timestamp=clock.now - 500)]
    current = [SessionStarted(timestamp=clock.now), UserUttered(text="old", timestamp=clock.now)]
    current += [SlotSet(name="order_id", value="SO20261002", timestamp=clock.now)]
    state = SessionState(slots={"order_id": "SO20261002"}, last_activity=clock.now, session_number=2, turns=1)
    # as kefu stored conversations before batches: one JSON event an element, the state as plain JSON
    await redis_client.rpush(events_key, *(encode_event(e) for e in earlier + current))
    await redis_client.hset(state_key, mapping={"state": json.dumps(state.to_dict()), "start": 2, "version": 5})
    before = await store.load(conversation)
    assert before.events == tuple(current) and before.version == 5 and before.state == state
    await say(store, conversation, UserUttered(text="new", timestamp=clock.now), ActionExecuted(name="x"))
    await say(store, conversation, UserUttered(text="newer", timestamp=clock.now))
    raw = await redis_client.execute_command("LRANGE", events_key, 0, -1, NEVER_DECODE=True)
    assert [r[:2] for r in raw] == [b'{"', b'{"', b'{"', b'{"', b'{"', MARKER, MARKER]
    after = await store.load(conversation)
    assert texts(after.events) == ["old", "new", "newer"] and after.version == 7
    assert after.slots == {"order_id": "SO20261002"} and after.state.turns == 3
    assert texts(await store.history(conversation)) == ["long ago", "old", "new", "newer"]
    async with store.lock(conversation) as token:  # a view from before the last commits is still refused
        with pytest.raises(StaleSessionError, match="version changed"):
            await store.commit(before.with_events([UserUttered(text="late")]), token)
    exported = [events async for name, events in store.conversations() if name == conversation]
    assert [texts(events) for events in exported] == [["long ago", "old", "new", "newer"]]


@pytest.mark.parametrize("element", [MARKER + b"\x00garbage", b'{"event":"user"'])
async def test_a_corrupt_element_is_a_session_store_error(
    redis_client: aioredis.Redis, element: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisSessionStore(redis_client)
    conversation, healthy = cid(), cid()
    await say(store, conversation, UserUttered(text="fine"))
    await say(store, healthy, UserUttered(text="also fine"))
    await redis_client.rpush(keys(conversation)[0], element)
    await redis_client.hset(keys(conversation)[1], "version", 2)
    with pytest.raises(SessionStoreError, match=f"conversation '{conversation}' cannot be read: .*corrupt"):
        await store.load(conversation)
    with pytest.raises(SessionStoreError, match="corrupt"):
        await store.history(conversation)
    with caplog.at_level(logging.WARNING, logger="bot.sessions.redis_store"):  # exports and the archiver go on
        listed = {name async for name, _ in store.conversations() if name in (conversation, healthy)}
    assert listed == {healthy}
    assert "cannot be read" in caplog.text and conversation not in caplog.text  # ids may be personal data
    await redis_client.delete(*keys(conversation))


async def test_a_turn_is_one_round_trip_to_load_and_one_to_commit(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client)
    conversation = cid()
    await say(store, conversation, UserUttered(text="warm"))  # the scripts are loaded into Redis once
    async with store.lock(conversation) as token:
        with counting_round_trips() as loading:
            session = await store.load(conversation)
        with counting_round_trips() as committing:
            await store.commit(session.with_events([UserUttered(text="hi"), ActionExecuted(name="x")]), token)
    assert (loading.count, committing.count) == (1, 1)


async def test_a_held_turn_is_one_round_trip_to_lock_and_load_and_one_to_commit_and_release(
    redis_client: aioredis.Redis,
) -> None:
    store = RedisSessionStore(redis_client)
    conversation = cid()
    await say(store, conversation, UserUttered(text="warm"))
    async with store.hold(conversation):  # the script is loaded into Redis once
        pass
    with counting_round_trips() as trips:
        async with store.hold(conversation) as held:
            assert [e.text for e in held.session.events if isinstance(e, UserUttered)] == ["warm"]
            await store.commit_and_release(held, held.session.with_events([UserUttered(text="hi")]))
            released = await redis_client.exists(keys(conversation)[2]) == 0
    assert trips.count == 3 and released  # lock and load, commit and release, and the test's own EXISTS
    async with store.hold(conversation) as held:  # nothing to commit: the block's end releases it
        assert await store.commit_and_release(held, held.session) is held.session
        assert await redis_client.exists(keys(conversation)[2]) == 1
    assert await redis_client.exists(keys(conversation)[2]) == 0
    assert [e.text for e in await store.history(conversation) if isinstance(e, UserUttered)] == ["warm", "hi"]


async def test_a_held_conversation_waits_for_the_holder_and_then_sees_its_commit(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client, StoreOptions(lock_wait_s=5))
    conversation = cid()
    order: list[str] = []

    async def second() -> None:
        async with store.hold(conversation) as held:
            order.append("second holds")
            assert [e.text for e in held.session.events if isinstance(e, UserUttered)] == ["first"]

    async with store.hold(conversation) as held:
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        order.append("first commits")
        await store.commit_and_release(held, held.session.with_events([UserUttered(text="first")]))
    await waiting
    assert order == ["first commits", "second holds"]
    short = RedisSessionStore(redis_client, StoreOptions(lock_wait_s=0.1))
    async with store.hold(conversation):
        with pytest.raises(LockTimeoutError, match="stayed locked"):
            async with short.hold(conversation):
                pass


async def test_a_ten_turn_shop_conversation_takes_under_4_kb_of_redis(redis_client: aioredis.Redis) -> None:
    store = RedisSessionStore(redis_client, StoreOptions(expiration_s=0))
    conversation = cid()
    turns = shop_turns()
    for turn in turns:
        await say(store, conversation, *(e for e in turn if not isinstance(e, SessionStarted)))  # load starts it
    stored = await store.history(conversation)
    assert stored[1:] == [e for turn in turns for e in turn][1:]  # all of it, less the start's own timestamp
    used = [await redis_client.memory_usage(key, samples=0) or 0 for key in keys(conversation)[:2]]
    assert sum(used) < 4096, used
