"""Sessions, the handoff queue and change notices on a local Redis Cluster of three masters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bot.assist.handoff_queue import HandoffQueue, Ticket
from bot.assist.notify import Notifier
from bot.events import ActionExecuted, UserUttered
from bot.sessions.connect import client_for_url
from bot.sessions.redis_store import RedisSessionStore, keys
from bot.sessions.round_trips import counting_round_trips
from tests.sessions.redis_servers import local_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    with local_cluster(tmp_path_factory.mktemp("cluster")) as ports:
        yield ports


@pytest.fixture
async def clients(cluster_ports: list[int]) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """Two cluster clients entering through different nodes, as two kefu processes would."""
    first = client_for_url(f"redis+cluster://127.0.0.1:{cluster_ports[0]}")
    second = client_for_url(f"redis+cluster://127.0.0.1:{cluster_ports[2]}")
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_conversations_spread_over_the_nodes_and_each_stays_in_one_slot(
    clients: tuple[aioredis.Redis, aioredis.Redis], cluster_ports: list[int]
) -> None:
    store = RedisSessionStore(clients[0])
    conversations = [f"wechat:o{n}Xy}}{{z" for n in range(30)]  # braces in ids must not break the hash tag
    for cid in conversations:
        async with store.lock(cid) as token:
            session = await store.load(cid)
            await store.commit(session.with_events([UserUttered(text="你好")]), token)
    owners = set()
    for cid in conversations:
        slots = {key_slot(k.encode()) for k in keys(cid)}
        assert len(slots) == 1
        owners.add((await clients[0].cluster_keyslot(keys(cid)[0]), *slots))  # type: ignore[attr-defined]
    assert all(server == ours for server, ours in owners)
    per_node = []
    for port in cluster_ports:
        node = aioredis.Redis(port=port)
        per_node.append(await node.dbsize())
        await node.aclose()
    assert all(count > 0 for count in per_node), per_node  # no node left out
    stored = {cid async for cid, _ in store.conversations()}
    assert set(conversations) <= stored


async def test_two_processes_take_turns_on_one_conversation_and_lose_nothing(
    clients: tuple[aioredis.Redis, aioredis.Redis],
) -> None:
    stores = [RedisSessionStore(client) for client in clients]
    cid = f"web:cluster-{time.time_ns()}"

    async def turn(n: int) -> None:
        store = stores[n % 2]
        async with store.lock(cid) as token:
            session = await store.load(cid)
            await asyncio.sleep(0.005)
            await store.commit(session.with_events([UserUttered(text=f"m{n}"), ActionExecuted(name=f"a{n}")]), token)

    await asyncio.gather(*(turn(n) for n in range(12)))
    history = await stores[1].history(cid)
    said = [e.text for e in history if isinstance(e, UserUttered)]
    assert sorted(said, key=lambda t: int(t[1:])) == [f"m{n}" for n in range(12)]
    for user, action in zip(history[1::2], history[2::2], strict=True):  # each turn's events stay together
        assert isinstance(user, UserUttered) and isinstance(action, ActionExecuted)
        assert action.name == "a" + user.text[1:]


async def test_a_turn_costs_the_same_round_trips_on_a_cluster(clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    store = RedisSessionStore(clients[0])
    cid = f"web:trips-{time.time_ns()}"
    async with store.hold(cid) as held:  # the first call loads the scripts on the node
        await store.commit_and_release(held, held.session.with_events([UserUttered(text="hi")]))
    with counting_round_trips() as trips:
        async with store.hold(cid) as held:
            await store.commit_and_release(held, held.session.with_events([UserUttered(text="again")]))
    assert trips.count == 2  # lock and load, commit and unlock


async def test_handoff_queue_and_notices_work_across_nodes(clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    queue, other_queue = HandoffQueue(clients[0]), HandoffQueue(clients[1])
    cid = f"web:handoff-{time.time_ns()}"
    ticket = Ticket(cid, "requested:request_human", 2, "zh", "web", cid, time.time(), {"problem": "退款"})
    assert await queue.enqueue(ticket)
    assert cid in [t.conversation_id for t in await other_queue.waiting()]
    assert (await other_queue.claim(cid, "小王")).operator == "小王"
    assert await queue.release(cid)

    listener, publisher = Notifier(clients[0]), Notifier(clients[1])
    async with listener.listen(f"conversation:{cid}") as changes:
        await asyncio.sleep(0.2)  # the subscription is made in the background
        await publisher.publish(cid, console=False)
        assert await asyncio.wait_for(changes.get(), 5) == cid
    await listener.close()
    await publisher.close()
