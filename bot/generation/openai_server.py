"""An OpenAI-compatible chat-completions server over any ChatModel, to run kefu's model as its own service."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, overload

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.errors import GenerationError
from bot.generation.chat import ChatModel, Completion
from bot.generation.prompts import ChatMessage
from bot.protocols import DecodingParams

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
MAX_TOKENS = 4096
MAX_N = 8
MAX_STOPS = 4  # as the OpenAI API
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# (lowest, highest, whether the lowest itself is allowed)
_RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0.0, 2.0, True),
    "top_p": (0.0, 1.0, False),
    "frequency_penalty": (-2.0, 2.0, True),
    "presence_penalty": (-2.0, 2.0, True),
    "repetition_penalty": (0.0, 10.0, False),
}
_FAILED = "the model failed to generate an answer; see the server's log"


class ApiError(Exception):
    """A request the server refuses, answered in OpenAI's error format."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def response(self, code: str | None = None) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": code}
        return JSONResponse({"error": error}, status_code=self.status)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat-completions request."""

    messages: list[ChatMessage]
    n: int
    params: DecodingParams
    stream: bool


def openai_app(
    model: ChatModel, *, model_name: str, api_key: str | None = None, max_body_bytes: int = 1_000_000
) -> Starlette:
    """A Starlette app serving `GET /v1/models` and `POST /v1/chat/completions` over `model`."""
    created = int(time.time())

    async def models(request: Request) -> Response:
        if denied := _deny(request, api_key):
            return denied
        card = {"id": model_name, "object": "model", "created": created, "owned_by": "kefu"}
        return JSONResponse({"object": "list", "data": [card]})

    async def chat(request: Request) -> Response:
        if denied := _deny(request, api_key):
            return denied
        try:
            parsed = parse_chat_request(await _read_json(request, max_body_bytes))
        except ApiError as err:
            return err.response()
        reply = _Reply(model_name)
        if parsed.stream:
            return await _stream(model, parsed, reply)
        try:
            completions = await asyncio.to_thread(_complete_n, model, parsed)
        except Exception:  # the edge: a model's failure becomes a 500, never a traceback for the client
            log.exception("generation with %s failed", model.name)
            return ApiError(500, _FAILED, kind="server_error").response()
        return JSONResponse(reply.completion(completions))

    routes = [Route("/v1/models", models, methods=["GET"]), Route("/v1/chat/completions", chat, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods, in OpenAI's error format too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return ApiError(status, f"{request.method} {request.url.path}: {detail}").response()


def _deny(request: Request, api_key: str | None) -> Response | None:
    """A 401 unless the request carries `Authorization: Bearer <api_key>` (or no key is set)."""
    if api_key is None:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode()):
        return None
    refused = ApiError(401, "invalid API key: send the server's key as `Authorization: Bearer <key>`")
    return refused.response("invalid_api_key")


async def _read_json(request: Request, limit: int) -> Any:
    """The JSON body, refusing one over `limit` bytes before it is all read."""
    too_large = ApiError(413, f"the request body exceeds {limit} bytes")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return json.loads(body)
    except ValueError as err:
        raise ApiError(400, f"the body is not valid JSON: {err}") from err


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate a chat-completions body; ApiError (400) names the field that is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if body.get("model") is not None and not isinstance(body["model"], str):
        raise ApiError(400, "model must be a string", param="model")
    stream = body.get("stream", False) or False
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be a boolean", param="stream")
    n = _int(body, "n", 1, 1, MAX_N)
    if stream and n > 1:
        raise ApiError(400, "n > 1 is not supported with stream", param="n")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    seed = _int(body, "seed", None, -(2**63), 2**63 - 1)
    params = DecodingParams(
        max_new_tokens=_int(body, key, DEFAULT_MAX_TOKENS, 1, MAX_TOKENS),
        temperature=_float(body, "temperature", 1.0),  # OpenAI's default, not kefu's greedy one
        top_p=_float(body, "top_p", 1.0),
        repetition_penalty=_float(body, "repetition_penalty", 1.0),
        frequency_penalty=_float(body, "frequency_penalty", 0.0),
        presence_penalty=_float(body, "presence_penalty", 0.0),
        stop=_stops(body.get("stop")),
        seed=seed,
    )
    return ChatRequest(_messages(body.get("messages")), n, params, stream)


@overload
def _int(body: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int: ...
@overload
def _int(body: Mapping[str, Any], key: str, default: None, low: int, high: int) -> int | None: ...
def _int(body: Mapping[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{key} must be an integer", param=key)
    if not low <= value <= high:
        raise ApiError(400, f"{key} must be between {low} and {high}, got {value}", param=key)
    return value


def _float(body: Mapping[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{key} must be a number", param=key)
    low, high, low_allowed = _RANGES[key]
    if not (low <= value if low_allowed else low < value) or value > high:
        bound = "from" if low_allowed else "above"
        raise ApiError(400, f"{key} must be {bound} {low:g} up to {high:g}, got {value}", param=key)
    return float(value)


def _stops(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, "stop must be a string or a list of strings", param="stop")
    if len(stops) > MAX_STOPS:
        raise ApiError(400, f"stop takes at most {MAX_STOPS} sequences", param="stop")
    return tuple(s for s in stops if s)


def _messages(value: Any) -> list[ChatMessage]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    messages: list[ChatMessage] = []
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{param} must be an object with role and content", param=param)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise ApiError(400, f"{param}.role must be system, user or assistant", param=f"{param}.role")
        messages.append({"role": ROLES[role], "content": _content(message.get("content"), f"{param}.content")})
    return messages


def _content(value: Any, param: str) -> str:
    """String content, or the list-of-parts form with text parts only (joined by new lines)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str) for part in value
    ):
        return "\n".join(part["text"] for part in value)
    raise ApiError(400, f'{param} must be a string or a list of {{"type": "text", "text": ...}} parts', param=param)


def _complete_n(model: ChatModel, request: ChatRequest) -> list[Completion]:
    """`n` completions: greedy decoding gives one answer, repeated; sampling asks again with another seed."""
    params, n = request.params, request.n
    completions = model.complete(request.messages, n=n, params=params)
    for round_ in range(1, n):
        if not completions or len(completions) >= n:
            break
        if params.temperature == 0:
            completions = (completions * n)[:n]
            break
        seed = None if params.seed is None else params.seed + round_
        more = replace(params, seed=seed)
        completions += model.complete(request.messages, n=n - len(completions), params=more)
    if not completions:
        raise GenerationError(f"{model.name} returned no completion")
    return completions[:n]


class _Reply:
    """The response bodies of one request: a completion, or the chunks of a stream."""

    def __init__(self, model_name: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model_name = model_name

    def completion(self, completions: Sequence[Completion]) -> dict[str, Any]:
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(completions)
        ]
        prompt_tokens = completions[0].prompt_tokens
        completion_tokens = sum(c.completion_tokens for c in completions)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return {**self._head("chat.completion"), "choices": choices, "usage": usage}

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _event({**self._head("chat.completion.chunk"), "choices": [choice]})

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model_name}


def _event(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


_END = object()


async def _stream(model: ChatModel, request: ChatRequest, reply: _Reply) -> Response:
    """Server-sent chunks; a model that fails before its first piece gets a plain 500 instead."""
    pieces = _pieces_in_thread(model, request)
    try:
        first = await anext(pieces, None)
    except Exception:
        log.exception("streaming with %s failed", model.name)
        return ApiError(500, _FAILED, kind="server_error").response()
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of the pieces
    return StreamingResponse(
        _events(model, request, reply, first, pieces), media_type="text/event-stream", headers=headers
    )


async def _events(
    model: ChatModel, request: ChatRequest, reply: _Reply, first: str | None, pieces: AsyncIterator[str]
) -> AsyncIterator[str]:
    yield reply.chunk({"role": "assistant", "content": ""})
    text = first or ""
    try:
        if first:
            yield reply.chunk({"content": first})
        async for piece in pieces:
            text += piece
            yield reply.chunk({"content": piece})
        # the model streams no finish reason: an answer as long as allowed was most likely cut
        used = await asyncio.to_thread(model.count_tokens, text)
        yield reply.chunk({}, "length" if used >= request.params.max_new_tokens else "stop")
    except Exception:  # the status is sent already: the error goes in the stream, as OpenAI does
        log.exception("streaming with %s failed", model.name)
        yield _event({"error": {"message": _FAILED, "type": "server_error", "param": None, "code": None}})
        return
    yield "data: [DONE]\n\n"


async def _pieces_in_thread(model: ChatModel, request: ChatRequest) -> AsyncIterator[str]:
    """The model's pieces, decoded in a worker thread so that the event loop stays free for other requests."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    abandoned = threading.Event()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed: nobody is listening any more
            abandoned.set()

    def produce() -> None:
        try:
            _drain(model.stream_chat(request.messages, params=request.params), put, abandoned)
        except Exception as err:
            put(err)
        finally:
            put(_END)

    # the future needs no await: produce() catches everything, and ends after its next piece once abandoned
    loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        abandoned.set()


def _drain(pieces: Iterator[str], put: Callable[[Any], None], abandoned: threading.Event) -> None:
    try:
        for piece in pieces:
            if abandoned.is_set():  # the client went away: stop decoding
                break
            put(piece)
    finally:
        close = getattr(pieces, "close", None)
        if callable(close):  # lets the model finish its step and release its lock now
            close()
