"""Several `kefu run` processes on one Redis: any of them serves any message of any conversation, and losing one
under load loses no event, answers no message twice and keeps each conversation's order."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import websockets

from bot.events import BotUttered, Event, UserUttered
from bot.sessions.connect import EmbeddedRedis, client_for_url
from bot.sessions.redis_store import RedisSessionStore
from tests.bot.servers import Server

pytestmark = pytest.mark.integration

KEY = "scale-out-test-key-0123456789"
QUESTIONS = ["你好", "运费怎么算", "How much is the X1 Pro?", "退货政策是什么？", "能开发票吗", "thanks", "拜拜"]


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[str]:
    redis = EmbeddedRedis(tmp_path / "shared-redis")
    yield "unix://" + redis.start()
    redis.stop()


def _data_dir(server_data: Path, name: str) -> Path:
    """A data folder of its own (archive, logs) with the session's trained models."""
    data = server_data.parent / name
    data.mkdir()
    for entry in ("models", "index"):
        (data / entry).symlink_to((server_data / entry).resolve())
    return data


def _send(server: Server, conversation: str, message_id: str, text: str) -> dict:
    response = httpx.post(
        f"{server.url}/api/v1/conversations/{conversation}/messages",
        json={"text": text, "message_id": message_id},
        headers={"X-API-Key": KEY},
        timeout=60,
    )
    response.raise_for_status()
    return dict(response.json())


def _history(redis_url: str, conversation: str) -> list[Event]:
    async def read() -> list[Event]:
        client = client_for_url(redis_url)
        try:
            return await RedisSessionStore(client).history(conversation)
        finally:
            await client.aclose()

    return asyncio.run(read())


def _turns(events: list[Event]) -> list[tuple[str, list[str]]]:
    """(message id, the bot's reply texts) per stored user message, in order."""
    turns: list[tuple[str, list[str]]] = []
    for event in events:
        if isinstance(event, UserUttered):
            turns.append((event.message_id, []))
        elif isinstance(event, BotUttered) and turns:
            turns[-1][1].append(event.text)
    return turns


def test_messages_alternate_between_servers_and_losing_one_under_load_loses_nothing(
    server_data: Path, shared_redis: str
) -> None:
    env = {"REDIS_URL": shared_redis, "KEFU_API_KEYS": KEY, "KEFU_RATE_LIMIT": "off"}
    a = Server(_data_dir(server_data, "a"), env=env)
    b = Server(_data_dir(server_data, "b"), env=env)
    try:
        # one conversation, its messages alternating between the two servers
        alternating = f"alt-{uuid.uuid4().hex[:8]}"
        answered = [
            _send(server, alternating, f"m{n}", text)
            for n, (server, text) in enumerate(zip(itertools.cycle((a, b)), QUESTIONS, strict=False))
        ]
        assert all(answer["replies"] and not answer["duplicate"] for answer in answered)
        turns = _turns(_history(shared_redis, alternating))
        assert [message_id for message_id, _ in turns] == [f"m{n}" for n in range(len(QUESTIONS))]
        assert [replies for _, replies in turns] == [[r["text"] for r in answer["replies"]] for answer in answered]
        # the same message delivered to both servers is answered once
        assert _send(a, alternating, "m0", QUESTIONS[0]) == {
            "conversation_id": alternating,
            "replies": [],
            "duplicate": True,
        }

        sent, received = _load_while_killing(a, b)
    finally:
        a.stop() if a.process.poll() is None else None
        b.stop()

    for conversation, message_ids in sent.items():
        stored = _turns(_history(shared_redis, conversation))
        assert [message_id for message_id, _ in stored] == message_ids  # none lost, none twice, in order
        for message_id, replies in stored:
            assert replies, f"{conversation}/{message_id} has no reply"
            if message_id in received:  # what the customer got is what was stored, once
                assert replies == received[message_id]


def _load_while_killing(a: Server, b: Server) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Eight customers writing to either server at random; server a is killed a third of the way through.
    A message whose server died is sent again, with its id, to the other one, as a load balancer would."""
    sent: dict[str, list[str]] = {}
    received: dict[str, list[str]] = {}
    progress = itertools.count()
    killed = threading.Event()
    lock = threading.Lock()

    def customer(n: int) -> None:
        conversation = f"load-{n}-{uuid.uuid4().hex[:8]}"
        rng = random.Random(n)
        for turn, text in enumerate(QUESTIONS * 2):
            message_id = f"{conversation}-{turn}"
            with lock:
                sent.setdefault(conversation, []).append(message_id)
            servers = [a, b] if rng.random() < 0.5 else [b, a]
            for server in servers:
                if server is a and killed.is_set():
                    continue
                try:
                    answer = _send(server, conversation, message_id, text)
                except httpx.TransportError:
                    continue  # that server is gone: try the other one
                if not answer["duplicate"]:
                    received[message_id] = [r["text"] for r in answer["replies"]]
                break
            else:
                raise AssertionError(f"no server answered {message_id}")
            if next(progress) == 30:
                a.kill()
                killed.set()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(customer, range(8)))
    assert killed.is_set()
    return sent, received


def test_kefu_run_with_workers_serves_one_conversation_from_any_worker(server_data: Path) -> None:
    server = Server(server_data, workers=2, env={"KEFU_RATE_LIMIT": "off"})
    try:
        sender = f"workers-{uuid.uuid4().hex[:8]}"
        for text in QUESTIONS[:4]:
            with httpx.Client(timeout=60) as fresh:  # a new connection each time: uvicorn's workers share the port
                reply = fresh.post(f"{server.url}/webhooks/rest/webhook", json={"sender": sender, "message": text})
            assert reply.status_code == 200 and reply.json()[0]["text"]
        workers = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
        assert len(workers) >= 2
        asyncio.run(_stop_with_widgets_open(server, 20))
        assert server.process.returncode == 0
    finally:
        if server.process.poll() is None:
            server.stop()


async def _stop_with_widgets_open(server: Server, count: int) -> None:
    """SIGTERM while customers' widget sockets are open: the workers close them and the process exits."""
    sockets = [await websockets.connect(server.url.replace("http", "ws") + "/ws") for _ in range(count)]
    for socket in sockets:
        await socket.send(json.dumps({"type": "hello", "conversation_id": None, "after": -1}))
        assert json.loads(await socket.recv())["type"] == "welcome"
    await asyncio.to_thread(server.stop)
    for socket in sockets:
        await socket.close()
