"""The load generator's clients: multi-turn conversations over the REST webhook (kefu's or Rasa's) and over the
widget's WebSocket, each turn timed end to end; the server's own per-stage figures come from its
`Server-Timing` header (kefu with KEFU_SERVER_TIMING=1).

Each simulated customer holds one keep-alive HTTP/1.1 connection, as a browser or an app does. It is written on
asyncio streams rather than httpx because the load generator shares the server's cores: httpx spent about 1.5 ms
of CPU per turn, several times what the bare connection spends, and the server ran short of that CPU."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websockets

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TIMEOUT_S = 60.0
IDLE_S = 4.0  # a connection idle for longer is not reused: uvicorn closes it after 5 s, maybe as a request goes out

# Ten turns each, in both languages; no message asks for a human (a handed-off conversation stops answering).
CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    (
        "你好",
        "你们满多少钱可以免运费啊",
        "一般几天能到",
        "支持哪些付款方式",
        "能开发票吗",
        "退货政策是怎样的",
        "退款多久到账",
        "帮我查下订单SO20261002",
        "好的，非常感谢你",
        "拜拜",
    ),
    (
        "hello there",
        "how much is shipping?",
        "how long does delivery take",
        "which payment methods do you accept",
        "can I get an invoice",
        "what is your return policy",
        "when will I get my refund",
        "where is order SO20261010",
        "thanks a lot",
        "bye",
    ),
    (
        "在吗",
        "帮我查查我买的东西发货了没有",
        "单号是SO20261004",
        "怎么修改收货地址",
        "账号怎么注销",
        "X1 Pro 多少钱",
        "有什么颜色",
        "可以用花呗吗",
        "谢谢",
        "再见",
    ),
    (
        "hi",
        "where's my stuff? I ordered last week",
        "it's SO20261007",
        "do you ship abroad",
        "can I pay by credit card",
        "how do I reset my password",
        "is the X1 Pro waterproof",
        "can I return it after 10 days",
        "great, thank you",
        "goodbye",
    ),
)


@dataclass(frozen=True, slots=True)
class TurnRecord:
    channel: str  # rest, ws or rasa
    ms: float  # end to end, as the client saw it
    ok: bool
    stages: tuple[tuple[str, float], ...] = ()  # the server's Server-Timing figures, when it sends them
    round_trips: int | None = None  # Redis round trips of the turn, from Server-Timing
    error: str = ""  # why a failed turn failed


@dataclass(slots=True)
class Load:
    """What one run at one concurrency produced."""

    concurrency: int
    seconds: float = 0.0
    turns: list[TurnRecord] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return sum(t.ok for t in self.turns) / self.seconds if self.seconds else 0.0


def check_loopback(url: str) -> str:
    """The load generator only ever targets this machine: refuses any other host."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to send load to {host or url!r}: the load generator only targets loopback")
    return url.rstrip("/")


def parse_server_timing(header: str) -> tuple[tuple[tuple[str, float], ...], int | None]:
    """`nlu;dur=1.2, redis;desc="5"` -> ((("nlu", 1.2),), 5)."""
    stages: list[tuple[str, float]] = []
    round_trips = None
    for metric in filter(None, (part.strip() for part in header.split(","))):
        name, *params = (p.strip() for p in metric.split(";"))
        values = dict(p.split("=", 1) for p in params if "=" in p)
        if name == "redis" and "desc" in values:
            round_trips = int(values["desc"].strip('"').split()[0])
        elif "dur" in values:
            stages.append((name, float(values["dur"])))
    return tuple(stages), round_trips


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to `url`'s host, for JSON POSTs answered with a Content-Length body."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._prefix = parts.path.rstrip("/")
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._used = 0.0  # when the last answer came

    async def post_json(self, path: str, body: object) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body; OSError or EOFError when the connection fails."""
        payload = json.dumps(body, ensure_ascii=False).encode()
        host, port = self._address
        head = f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        if self._streams is not None and (self._streams[0].at_eof() or time.monotonic() - self._used > IDLE_S):
            await self.close()
        if self._streams is None:
            self._streams = await asyncio.open_connection(host, port)
        reader, writer = self._streams
        try:
            writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            status, headers, answer = await _response(reader)
        except BaseException:  # an interrupted exchange leaves the connection unusable
            await self.close()
            raise
        self._used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, answer

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status = int((await reader.readuntil(b"\r\n")).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise ConnectionError("a response without Content-Length; only JSON answers are expected")
    return status, headers, await reader.readexactly(int(headers["content-length"]))


async def rest_conversation(
    http: HttpConnection, turns: Sequence[str], channel: str, prefix: str = "load-", think: float = 0.0
) -> list[TurnRecord]:
    sender = f"{prefix}{uuid.uuid4().hex[:16]}"
    records = []
    for text in turns:
        await _pause(think)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(TIMEOUT_S):
                said = {"sender": sender, "message": text}
                status, headers, body = await http.post_json("/webhooks/rest/webhook", said)
            answer = json.loads(body) if status == 200 else None
            stages, trips = parse_server_timing(headers.get("server-timing", ""))
            error = _rest_problem(status, answer, kefu=channel != "rasa")
            ok = not error
        except (OSError, EOFError, ValueError, TimeoutError) as err:
            ok, stages, trips, error = False, (), None, type(err).__name__
        records.append(TurnRecord(channel, (time.perf_counter() - started) * 1000, ok, stages, trips, error))
    return records


async def ws_conversation(url: str, turns: Sequence[str], think: float = 0.0) -> list[TurnRecord]:
    """One widget tab: hello, then each message timed from sending it to its `done` frame."""
    records = []
    address = "ws" + url.removeprefix("http") + "/ws"
    async with websockets.connect(address, max_size=2**20) as socket:
        await socket.send(json.dumps({"type": "hello", "conversation_id": None, "after": -1}))
        await _until(socket, "messages")
        for n, text in enumerate(turns):
            await _pause(think)
            started = time.perf_counter()
            message_id = f"m{n}-{uuid.uuid4().hex[:8]}"
            await socket.send(json.dumps({"type": "message", "id": message_id, "text": text}))
            frames = await _until(socket, "done")
            said = [m for f in frames if f.get("type") == "messages" for m in f.get("messages", ())]
            error = "" if frames[-1].get("id") == message_id else "done for another message"
            # a failed turn is answered with an apology that is not stored, so no bot message reaches the widget
            error = error or ("" if any(m.get("role") == "bot" for m in said) else "no bot reply")
            records.append(TurnRecord("ws", (time.perf_counter() - started) * 1000, not error, error=error))
    return records


def _rest_problem(status: int, answer: object, *, kefu: bool) -> str:
    """Why a REST answer is a failure ("" when it is not): kefu answers a failed turn with an apology that
    carries no trace id, with status 200."""
    if status != 200 or not isinstance(answer, list):
        return f"HTTP {status}"
    if kefu and not all(isinstance(m, dict) and m.get("kefu", {}).get("trace_id") for m in answer):
        return "apology for a failed turn"
    return ""


async def _pause(think: float) -> None:
    """A customer reading and typing: `think` seconds on average (0: the next message at once)."""
    if think > 0:
        await asyncio.sleep(random.uniform(0, 2 * think))


async def _until(socket: websockets.ClientConnection, kind: str) -> list[dict[str, Any]]:
    """The frames received up to and including the first of type `kind`."""
    frames = []
    while True:
        frames.append(json.loads(await socket.recv()))
        if frames[-1].get("type") == kind:
            return frames


async def drive(
    url: str,
    concurrency: int,
    *,
    seconds: float,
    max_turns: int,
    channels: Sequence[str],
    rasa: bool = False,
    think: float = 0.0,
) -> Load:
    """`concurrency` simulated customers, each holding conversations one after another, until `seconds` pass or
    `max_turns` turns were sent (a conversation in progress finishes its turns). Without `think` time the
    server runs saturated and latency is mostly queueing; with it, customers pause as people do."""
    load = Load(concurrency)
    deadline = time.perf_counter() + seconds
    scripts = itertools.cycle(CONVERSATIONS)
    kinds = itertools.cycle(channels)

    async def customer() -> None:
        http = HttpConnection(url)
        try:
            while time.perf_counter() < deadline and len(load.turns) < max_turns:
                kind, turns = next(kinds), next(scripts)
                try:
                    if kind == "ws":
                        load.turns.extend(await ws_conversation(url, turns, think))
                    else:
                        channel = "rasa" if rasa else "rest"
                        load.turns.extend(await rest_conversation(http, turns, channel, think=think))
                except (OSError, websockets.WebSocketException) as err:
                    load.turns.append(TurnRecord(kind, 0.0, False, error=type(err).__name__))
        finally:
            await http.close()

    started = time.perf_counter()
    await asyncio.gather(*(customer() for _ in range(concurrency)))
    load.seconds = time.perf_counter() - started
    return load
