"""Rasa's REST channel: `POST /webhooks/rest/webhook` with `{"sender", "message"}`, answered with a JSON list."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.errors import BadRequestError
from bot.runtime import BotAnswer
from bot.types import Message

MAX_BODY_BYTES = 64 * 1024


class RestChannel:
    name = "rest"

    def routes(self, on_message: Any) -> list[Route]:
        async def webhook(request: Request) -> JSONResponse:
            try:
                message = parse_request(await request.body())
            except BadRequestError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            answer: BotAnswer = await on_message(message)
            return JSONResponse([_rasa_message(message.sender_id, reply) for reply in answer.replies])

        return [Route("/webhooks/rest/webhook", webhook, methods=["POST"])]


def parse_request(body: bytes) -> Message:
    """The Message in a REST request body, or BadRequestError saying what is wrong with it."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestError(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequestError(f'body is not JSON ({err}); send {{"sender": "id", "message": "text"}}') from err
    if not isinstance(data, dict):
        raise BadRequestError('body must be a JSON object like {"sender": "id", "message": "text"}')
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
    )


def _rasa_message(recipient: str, reply: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"recipient_id": recipient, "text": reply.text}
    if reply.buttons:
        out["buttons"] = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
    out["kefu"] = {"trace_id": reply.trace_id, "fact_ids": list(reply.fact_ids), "id": uuid.uuid4().hex[:12]}
    return out
