"""Rasa's REST channel: `POST /webhooks/rest/webhook` with `{"sender", "message"}`, answered with a JSON list;
`POST /webhooks/rest/stream`, the same request answered as server-sent events: `partial` events carry a
generated reply sentence by sentence as each passes the output checks, then one `message` event per reply and
`done`; and `POST /webhooks/rest/feedback`: thumbs on a reply (its `kefu.id`) or CSAT for the conversation.
A message's recommended questions (猜你想问) come as `quick_replies` beside Rasa's `buttons`, in the same
`[{"title", "payload"}]` shape: sending a payload back as the message asks that question."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from bot.channels.base import TurnHandler
from bot.channels.transcript import buttons_json
from bot.errors import BadRequestError
from bot.events import FeedbackGiven
from bot.runtime import BotAnswer
from bot.types import Message, Reply

MAX_BODY_BYTES = 64 * 1024


OnFeedback = Callable[[str, FeedbackGiven], Awaitable[None]]


class RestChannel:
    name = "rest"

    def __init__(self, on_feedback: OnFeedback | None = None) -> None:
        self._on_feedback = on_feedback

    def routes(self, on_message: TurnHandler) -> list[BaseRoute]:
        async def webhook(request: Request) -> JSONResponse:
            try:
                message = parse_request(await request.body(), client_address(request))
            except BadRequestError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            answer: BotAnswer = await on_message(message)
            return JSONResponse([_rasa_message(message.sender_id, reply) for reply in answer.replies])

        async def stream(request: Request) -> Response:
            try:
                message = parse_request(await request.body(), client_address(request))
            except BadRequestError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            events = sse_events(on_message, message)
            first = await anext(events)  # a refusal (over the length or rate limit) is still a plain HTTP error
            return StreamingResponse(
                resumed(first, events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )

        async def feedback(request: Request) -> JSONResponse:
            try:
                sender, event = parse_feedback(await request.body())
                if self._on_feedback is None:
                    return JSONResponse({"error": "this server records no feedback"}, status_code=404)
                await self._on_feedback(sender, event)
            except BadRequestError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            return JSONResponse({"recorded": True})

        return [
            Route("/webhooks/rest/webhook", webhook, methods=["POST"]),
            Route("/webhooks/rest/stream", stream, methods=["POST"]),
            Route("/webhooks/rest/feedback", feedback, methods=["POST"]),
        ]


def parse_feedback(body: bytes) -> tuple[str, FeedbackGiven]:
    """`{"sender", "reply_id", "rating"}` (thumbs: 1 or -1) or `{"sender", "csat": 1-5}`, with an optional
    "comment": the conversation and the event, or BadRequestError saying what is wrong."""
    data = json_object(body, '{"sender": "id", "reply_id": "...", "rating": 1}')
    sender = data.get("sender")
    if not isinstance(sender, str) or not sender.strip():
        raise BadRequestError('"sender" must be a non-empty string identifying the conversation')
    return sender, feedback_event(data)


def feedback_event(data: Mapping[str, Any]) -> FeedbackGiven:
    """The thumbs or CSAT in a parsed feedback body (the conversation named elsewhere), or BadRequestError."""
    comment = data.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise BadRequestError('"comment" must be a string of at most 2000 characters')
    if "csat" in data:
        csat = data["csat"]
        if isinstance(csat, float) and csat.is_integer():  # JSON has one kind of number: 3.0 is the integer 3
            csat = int(csat)
        if not isinstance(csat, int) or isinstance(csat, bool):
            raise BadRequestError('"csat" must be an integer from 1 to 5')
        return FeedbackGiven(rating=csat, kind="csat", comment=comment)
    rating, reply_id = data.get("rating"), data.get("reply_id")
    if rating not in (1, -1) or isinstance(rating, bool) or not isinstance(reply_id, str):
        raise BadRequestError('thumbs need "reply_id" (the "kefu.id" of a reply) and "rating" 1 or -1')
    return FeedbackGiven(rating=int(rating), kind="thumbs", reply_id=reply_id, comment=comment)


async def sse_events(
    on_message: Any, message: Message, shape: Callable[[Reply], dict[str, Any]] | None = None
) -> AsyncGenerator[str, None]:
    """Server-sent events of one turn: the partial text as the turn produces it, then the replies, each as
    `shape` writes it (default: a Rasa message)."""
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    turn = asyncio.ensure_future(on_message(message, on_partial=lambda rid, text: queue.put_nowait((rid, text))))
    try:
        while not turn.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, turn}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                reply_id, text = getter.result()
                yield _sse("partial", {"reply_id": reply_id, "text": text})
            else:
                getter.cancel()
        answer: BotAnswer = turn.result()
        for reply in answer.replies:
            yield _sse("message", shape(reply) if shape else _rasa_message(message.sender_id, reply))
        yield _sse("done", {"duplicate": answer.duplicate})
    finally:
        if not turn.done():  # the client went away: the turn still completes and is committed
            await asyncio.shield(turn)


async def resumed(first: str, events: AsyncGenerator[str, None]) -> AsyncGenerator[str, None]:
    """`events` again, its first event already taken (to answer a refusal with a plain error instead)."""
    try:
        yield first
        async for event in events:
            yield event
    finally:  # a client that went away: sse_events still lets the turn complete and commit
        await events.aclose()


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def client_address(connection: HTTPConnection) -> str:
    """The client's address for the per-address rate limit; behind a proxy, uvicorn's --forwarded-allow-ips
    decides whether X-Forwarded-For is believed, so it is not read here."""
    return connection.client.host if connection.client else ""


def parse_request(body: bytes, client: str = "") -> Message:
    """The Message in a REST request body from the address `client`, or BadRequestError saying what is wrong."""
    data = json_object(body, '{"sender": "id", "message": "text"}')
    sender, text = data.get("sender"), data.get("message")
    if not isinstance(sender, str) or not sender.strip():
        raise BadRequestError('"sender" must be a non-empty string identifying the conversation')
    if not isinstance(text, str):
        raise BadRequestError('"message" must be a string')
    message_id = data.get("message_id")
    metadata = data.get("metadata")
    return Message(
        conversation_id=sender,
        channel="rest",
        sender_id=sender,
        message_id=message_id if isinstance(message_id, str) else "",
        text=text,
        received_at=time.time(),
        meta=metadata if isinstance(metadata, dict) else {},
        client=client,
    )


def json_object(body: bytes, example: str) -> dict[str, Any]:
    """The JSON object in `body`, or BadRequestError saying what is wrong and showing `example`."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestError(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        data = strict_json(body)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequestError(f"body is not JSON ({err}); send {example}") from err
    if not isinstance(data, dict):
        raise BadRequestError(f"body must be a JSON object like {example}")
    return data


def strict_json(raw: bytes | str) -> Any:
    """`json.loads`, refusing with ValueError what no store or channel could carry on: nesting past Python's
    recursion limit, and lone surrogates (`"\\ud800"` is valid JSON, but no UTF-8 text can hold it)."""
    try:
        data = json.loads(raw)
        json.dumps(data, ensure_ascii=False).encode()
    except RecursionError as err:
        raise ValueError("nested too deeply") from err
    except UnicodeEncodeError as err:
        raise ValueError("a string holds a lone surrogate, \\ud800 to \\udfff; send UTF-8 text") from err
    return data


def _rasa_message(recipient: str, reply: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"recipient_id": recipient, "text": reply.text}
    if reply.buttons:
        out["buttons"] = buttons_json(reply.buttons)
    if reply.quick_replies:  # recommended questions (猜你想问): sending a payload back as the message asks it
        out["quick_replies"] = buttons_json(reply.quick_replies)
    if reply.image:
        out["image"] = reply.image
    if reply.custom:
        out["custom"] = dict(reply.custom)
    out["kefu"] = {
        "trace_id": reply.trace_id,
        "fact_ids": list(reply.fact_ids),
        "id": reply.reply_id or uuid.uuid4().hex[:12],
    }
    return out
