"""Real HTTP peers for the OpenAI tests: uvicorn serving an app in a thread, scripted servers, small chat models."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bot.errors import GenerationError
from bot.generation.chat import Completion
from bot.generation.prompts import ChatMessage
from bot.protocols import DecodingParams


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Seen:
    """What a scripted server received."""

    bodies: list[Any] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.bodies)


Answer = Callable[[int, Any, Request], Awaitable[Response]]


def scripted(answer: Answer) -> tuple[Starlette, Seen]:
    """A chat-completions server that answers request number i (from 0) with `answer(i, body, request)`."""
    seen = Seen()

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        seen.bodies.append(json.loads(raw) if raw else None)
        seen.authorization.append(request.headers.get("authorization", ""))
        return await answer(seen.count - 1, seen.bodies[-1], request)

    return Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])]), seen


def completion_json(*texts: str, finish: str = "stop", usage: tuple[int, int] | None = (5, 3)) -> Response:
    """A chat.completion response with one choice per text."""
    choices = [
        {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish}
        for i, t in enumerate(texts)
    ]
    body: dict[str, Any] = {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m"}
    body["choices"] = choices
    if usage:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return Response(json.dumps(body), media_type="application/json")


def error_json(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


class EchoChat:
    """A ChatModel that answers `echo: <last message>` and remembers the decoding parameters it was given."""

    name = "echo"

    def __init__(self) -> None:
        self.params: list[DecodingParams] = []

    def complete(
        self, messages: Sequence[ChatMessage], *, n: int = 1, params: DecodingParams | None = None
    ) -> list[Completion]:
        params = params or DecodingParams()
        self.params.append(params)
        copies = n if params.temperature > 0 else 1  # as TransformersChat: greedy decoding gives one answer
        return [Completion(f"echo: {messages[-1]['content']}", "stop", 7, 3)] * copies

    def stream_chat(self, messages: Sequence[ChatMessage], *, params: DecodingParams | None = None) -> Iterator[str]:
        [completion] = self.complete(messages, params=params)
        words = completion.text.split(" ")
        yield from [words[0], *(" " + w for w in words[1:])]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class SlowChat(EchoChat):
    """Streams five pieces, `delay` seconds apart; `fail_after` pieces then GenerationError (None: never)."""

    name = "slow"

    def __init__(self, delay: float = 0.2, fail_after: int | None = None) -> None:
        super().__init__()
        self.delay, self.fail_after = delay, fail_after
        self.produced = 0
        self.closed = threading.Event()  # set when a stream ended, read to its end or not

    def stream_chat(self, messages: Sequence[ChatMessage], *, params: DecodingParams | None = None) -> Iterator[str]:
        try:
            for i in range(5):
                if i == self.fail_after:
                    raise GenerationError("the model broke down")
                time.sleep(self.delay)
                self.produced += 1
                yield f"piece{i} "
        finally:
            self.closed.set()


class OneAtATime(EchoChat):
    """A ChatModel that ignores `n` and answers with its seed, as many servers' models do."""

    def complete(
        self, messages: Sequence[ChatMessage], *, n: int = 1, params: DecodingParams | None = None
    ) -> list[Completion]:
        params = params or DecodingParams()
        self.params.append(params)
        return [Completion(f"seed {params.seed}", "stop", 7, 3)]


class FailingChat(EchoChat):
    """A ChatModel whose every call fails."""

    name = "failing"

    def complete(
        self, messages: Sequence[ChatMessage], *, n: int = 1, params: DecodingParams | None = None
    ) -> list[Completion]:
        raise GenerationError("out of memory at /secret/path")

    def stream_chat(self, messages: Sequence[ChatMessage], *, params: DecodingParams | None = None) -> Iterator[str]:
        raise GenerationError("out of memory at /secret/path")
