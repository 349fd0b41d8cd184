"""The versioned REST API for other servers (a CRM, a ticket system, an app backend): `/api/v1`, JSON in and
out, an API key on every call, described by `GET /api/v1/openapi.json` and `GET /api/v1/docs`.

- `POST /api/v1/conversations/{id}/messages` `{"text", "message_id"?, "metadata"?, "stream"?}`: the replies,
  or with `stream: true` server-sent events as the Rasa stream sends them (bot/channels/rest.py);
- `GET /api/v1/conversations/{id}/messages?after=SEQ&limit=N`: the transcript after `seq`;
- `POST /api/v1/conversations/{id}/feedback` `{"reply_id", "rating": 1|-1}` or `{"csat": 1-5}`;
- `GET /api/v1/traces/{trace_id}`: how a turn of this process was answered.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from bot.channels.api_keys import ENV_KEYS, ENV_KEYS_FILE, ApiKeys
from bot.channels.base import TurnHandler
from bot.channels.openapi import API, HISTORY_LIMIT, docs_html, openapi_schema
from bot.channels.rest import MAX_BODY_BYTES, feedback_event, json_object, resumed, sse_events
from bot.channels.transcript import buttons_json, transcript
from bot.errors import BadRequestError, RateLimitedError, SessionStoreError
from bot.events import BotUttered
from bot.runtime import Bot
from bot.types import Message, Reply

log = logging.getLogger(__name__)

_CONVERSATION_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_MESSAGE_EXAMPLE = '{"text": "你好", "message_id": "m-1"}'
_FEEDBACK_EXAMPLE = '{"reply_id": "a1b2c3", "rating": 1} or {"csat": 5, "comment": "..."}'
_HOW_TO_AUTHENTICATE = (
    "missing or wrong API key; send the header `Authorization: Bearer <key>` or `X-API-Key: <key>` "
    f"with a key from the server's {ENV_KEYS}"
)
_API_OFF = (
    f"the API is off; set {ENV_KEYS} (comma-separated keys, `name:key` to name a caller) or {ENV_KEYS_FILE} "
    "on the server to turn it on"
)

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An answer other than 200, with the message the caller sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiV1Channel:
    """`/api/v1` over one Bot; messages go through the turn handler, reads and feedback to the bot."""

    name = "api"

    def __init__(self, bot: Bot, keys: ApiKeys) -> None:
        self._bot = bot
        self._keys = keys
        self._schema = openapi_schema()
        self._schema_json = json.dumps(self._schema, ensure_ascii=False).encode()

    def routes(self, handler: TurnHandler) -> list[BaseRoute]:
        async def send(request: Request) -> Response:
            return await self._send(request, handler)

        send_message = self._guarded(send, "send_message")
        list_messages = self._guarded(self._history, "list_messages")

        async def messages(request: Request) -> Response:
            # one route for both methods: a 405 to any other method then lists both in `Allow`
            return await (send_message if request.method == "POST" else list_messages)(request)

        conversation = f"{API}/conversations/{{conversation_id}}"
        return [
            Route(f"{API}/openapi.json", self._openapi, methods=["GET"]),
            Route(f"{API}/docs", self._docs, methods=["GET"]),
            Route(f"{conversation}/messages", messages, methods=["GET", "POST"]),
            Route(f"{conversation}/feedback", self._guarded(self._feedback, "feedback"), methods=["POST"]),
            Route(f"{API}/traces/{{trace_id}}", self._guarded(self._trace, "trace"), methods=["GET"]),
        ]

    def _guarded(self, endpoint: Endpoint, operation: str) -> Endpoint:
        """`endpoint` behind the API key; its ApiError, BadRequestError (400), RateLimitedError (429) and
        SessionStoreError (503) become JSON errors."""

        async def guarded(request: Request) -> Response:
            if not self._keys.enabled:
                return _error(403, _API_OFF)
            caller = self._keys.caller(_presented_key(request))
            if caller is None:
                client = request.client.host if request.client else "?"
                log.warning("refused an /api/v1 %s call from %s: missing or wrong API key", operation, client)
                return _error(401, _HOW_TO_AUTHENTICATE, headers={"WWW-Authenticate": 'Bearer realm="kefu"'})
            log.debug("/api/v1 %s by %s", operation, caller)  # the key's name, never the key
            try:
                return await endpoint(request)
            except ApiError as err:
                return _error(err.status, str(err))
            except BadRequestError as err:
                return _error(400, str(err))
            except RateLimitedError as err:  # nothing was stored: the caller sends it again after Retry-After
                return _error(429, str(err), {"Retry-After": str(err.retry_after)})
            except SessionStoreError as err:  # the details name the Redis: for the operator's log only
                log.error("/api/v1 %s: %s", operation, err)
                return _error(503, "the conversation store is unavailable; try again shortly", {"Retry-After": "5"})

        return guarded

    async def _openapi(self, request: Request) -> Response:
        return Response(self._schema_json, media_type="application/json")

    async def _docs(self, request: Request) -> Response:
        return HTMLResponse(docs_html(self._schema, str(request.base_url)))

    async def _send(self, request: Request, handler: TurnHandler) -> Response:
        conversation_id = _conversation_id(request)
        message, stream = parse_message(conversation_id, await _body(request))
        if stream:
            return await _stream(handler, message)
        try:
            answer = await handler(message)
        except BadRequestError as err:  # the bot refused the message, e.g. over its length limit
            raise ApiError(_refusal_status(err), str(err)) from err
        replies = [reply_json(reply) for reply in answer.replies]
        return JSONResponse({"conversation_id": conversation_id, "replies": replies, "duplicate": answer.duplicate})

    async def _history(self, request: Request) -> Response:
        conversation_id = _conversation_id(request)
        after = _int_param(request, "after", default=-1, low=-1, high=None)
        limit = _int_param(request, "limit", default=100, low=1, high=HISTORY_LIMIT)
        events = await self._bot.store.history(conversation_id)
        if not events:
            raise ApiError(404, f"conversation {conversation_id!r} has no messages")
        said = transcript(events, after=after)
        return JSONResponse(
            {"conversation_id": conversation_id, "messages": said[:limit], "has_more": len(said) > limit}
        )

    async def _feedback(self, request: Request) -> Response:
        conversation_id = _conversation_id(request)
        data = json_object(await _body(request), _FEEDBACK_EXAMPLE)
        _only(data, {"reply_id", "rating", "csat", "comment"}, _FEEDBACK_EXAMPLE)
        if "csat" in data and ("rating" in data or "reply_id" in data):
            raise BadRequestError(f"send thumbs or CSAT, not both: {_FEEDBACK_EXAMPLE}")
        event = feedback_event(data)
        history = await self._bot.store.history(conversation_id)
        if not history:
            raise ApiError(404, f"conversation {conversation_id!r} has no messages to rate")
        if event.reply_id and event.reply_id not in {e.reply_id for e in history if isinstance(e, BotUttered)}:
            raise ApiError(404, f"conversation {conversation_id!r} has no reply {event.reply_id!r} to rate")
        await self._bot.record_feedback(conversation_id, event)
        return JSONResponse({"recorded": True})

    async def _trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        trace = self._bot.trace(trace_id) if len(trace_id) <= 128 else None
        if trace is None:
            raise ApiError(
                404,
                "no such trace in this process: each process keeps the traces of its latest turns "
                "(ask the process that answered, soon after)",
            )
        return JSONResponse({**dataclasses.asdict(trace), "total_ms": trace.total_ms})


def parse_message(conversation_id: str, body: bytes) -> tuple[Message, bool]:
    """The Message in a send-message body, and whether the caller asked for a stream; BadRequestError says
    what is wrong."""
    data = json_object(body, _MESSAGE_EXAMPLE)
    _only(data, {"text", "message_id", "metadata", "stream"}, _MESSAGE_EXAMPLE)
    text, message_id = data.get("text"), data.get("message_id", "")
    metadata, stream = data.get("metadata", {}), data.get("stream", False)
    if not isinstance(text, str) or not text.strip():
        raise BadRequestError(f'"text" must be a non-empty string, e.g. {_MESSAGE_EXAMPLE}')
    if not isinstance(message_id, str) or len(message_id) > 128 or ("message_id" in data and not message_id):
        raise BadRequestError('"message_id", when given, must be a string of 1-128 characters')
    if not isinstance(metadata, dict):
        raise BadRequestError('"metadata", when given, must be a JSON object')
    if not isinstance(stream, bool):
        raise BadRequestError('"stream", when given, must be true or false')
    message = Message(
        conversation_id=conversation_id,
        channel="api",
        sender_id=conversation_id,
        message_id=message_id,
        text=text,
        received_at=time.time(),
        meta=metadata,
    )
    return message, stream


def reply_json(reply: Reply) -> dict[str, Any]:
    """A reply as the API shows it (the `Reply` schema)."""
    out: dict[str, Any] = {
        "id": reply.reply_id,
        "text": reply.text,
        "buttons": buttons_json(reply.buttons),
        "quick_replies": buttons_json(reply.quick_replies),
        "fact_ids": list(reply.fact_ids),
        "trace_id": reply.trace_id,
        "handoff": reply.handoff,
    }
    if reply.image:
        out["image"] = reply.image
    if reply.custom:
        out["custom"] = dict(reply.custom)
    return out


async def _stream(handler: TurnHandler, message: Message) -> Response:
    """Server-sent events; a refusal before the first event (a message over the limit) is still a JSON error."""
    events = sse_events(handler, message, shape=reply_json)
    try:
        first = await anext(events)
    except BadRequestError as err:
        raise ApiError(_refusal_status(err), str(err)) from err

    return StreamingResponse(
        resumed(first, events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _presented_key(request: Request) -> str:
    """The key in `X-API-Key`, else in `Authorization: Bearer`; "" when there is none."""
    header = request.headers.get("x-api-key", "").strip()
    if header:
        return header
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


async def _body(request: Request) -> bytes:
    """The body, refused with 413 past MAX_BODY_BYTES before it is all read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {MAX_BODY_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body is over the limit of {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _conversation_id(request: Request) -> str:
    conversation_id: str = request.path_params["conversation_id"]
    if not _CONVERSATION_ID.fullmatch(conversation_id):
        raise BadRequestError(
            "conversation id must be 1-128 characters of A-Z a-z 0-9 _ . : @ - (e.g. crm-42 or user@shop)"
        )
    return conversation_id


def _int_param(request: Request, name: str, *, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise BadRequestError(f"query parameter {name!r} must be an integer {bounds}, e.g. ?{name}={default}")
    return value


def _only(data: dict[str, Any], allowed: set[str], example: str) -> None:
    """Unknown fields are refused rather than ignored: a misspelt `message_id` would silently lose dedupe."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequestError(f"unknown field(s) {unknown}; the fields are {sorted(allowed)}, e.g. {example}")


def _refusal_status(err: BadRequestError) -> int:
    return 413 if "limit" in str(err) else 400  # the bot words its length refusal "... the limit is N"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
