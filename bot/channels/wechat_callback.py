"""What the WeChat Official Account and WeCom callbacks share: request checks (query parameters, timestamp
window, body size), the safe-mode envelope, and `CallbackCore`, which turns a parsed message into a turn and
answers inside the platform's 5-second deadline or, past it, delivers the answer later through the send API.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.channels.base import TurnHandler
from bot.channels.wechat_api import user_ref
from bot.channels.wechat_crypto import MessageCipher, SignatureError, sign, signature_matches
from bot.channels.wechat_menus import MenuMemory, Menus, menu_number
from bot.channels.wechat_replies import SORRY_TEXT, UNSUPPORTED_TEXT, Outgoing, render
from bot.channels.wechat_xml import MAX_BODY_BYTES, encrypted_envelope, news_reply, parse_xml, text_reply
from bot.errors import BadRequestError, KefuError, RateLimitedError
from bot.runtime import BotAnswer
from bot.types import Message, Reply

log = logging.getLogger(__name__)

GREET_PAYLOAD = "/greet"
Push = Callable[[str, Outgoing], Awaitable[None]]


class BodyTooLargeError(BadRequestError):
    """The request body is over the limit: answered 413 before it is read further."""


def error_response(err: BadRequestError) -> Response:
    """A refused callback: 403 that says nothing for a bad signature or timestamp, 413, or 400 with the reason."""
    if isinstance(err, SignatureError):
        return PlainTextResponse("forbidden", status_code=403)
    if isinstance(err, BodyTooLargeError):
        return PlainTextResponse("request body too large", status_code=413)
    return PlainTextResponse(str(err), status_code=400)


def require(params: QueryParams, *names: str) -> list[str]:
    """The query parameters `names`, or BadRequestError naming the missing ones."""
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise BadRequestError(f"missing query parameter(s): {', '.join(missing)}")
    return [params[name] for name in names]


def check_timestamp(timestamp: str, window_s: float) -> None:
    """Refuse a callback signed further than `window_s` from now: a captured request cannot be replayed later."""
    if not timestamp.isdecimal() or len(timestamp) > 12:
        raise BadRequestError("timestamp must be Unix seconds")
    if abs(time.time() - int(timestamp)) > window_s:
        raise SignatureError("timestamp outside the accepted window")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes rather than after reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise BodyTooLargeError(f"body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError(f"body over {limit} bytes")
    return bytes(body)


def open_envelope(
    cipher: MessageCipher, token: str, signature: str, timestamp: str, nonce: str, body: bytes
) -> dict[str, str]:
    """The message inside a safe-mode body, after checking msg_signature over its `Encrypt` element."""
    encrypted = parse_xml(body).get("Encrypt")
    if not encrypted:
        raise BadRequestError("safe-mode body has no <Encrypt> element")
    if not signature_matches(signature, token, timestamp, nonce, encrypted):
        raise SignatureError("msg_signature mismatch")
    return parse_xml(cipher.decrypt(encrypted))


def seal(cipher: MessageCipher, token: str, xml: str) -> str:
    """A passive reply encrypted and signed for safe mode."""
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    encrypted = cipher.encrypt(xml)
    return encrypted_envelope(encrypted, sign(token, timestamp, nonce, encrypted), timestamp, nonce)


class CallbackCore:
    """One channel's turn logic, between the verified callback and the platform's APIs.

    A turn that takes longer than `deadline_s` keeps running in a referenced background task; the request is
    answered "success" and the answer goes out through `push` when the turn finishes. `menus` keeps each
    conversation's last numbered menu (in this process's memory when none is given).
    """

    def __init__(self, channel: str, push: Push, *, deadline_s: float, menus: Menus | None = None) -> None:
        self.channel = channel
        self.menus = menus if menus is not None else MenuMemory()
        self._push = push
        self._deadline_s = deadline_s
        self._pending: set[asyncio.Task[None]] = set()

    async def answer(self, fields: Mapping[str, str], handler: TurnHandler) -> str | None:
        """The passive reply XML to a parsed callback, or None to answer "success" (nothing, or later)."""
        user = fields.get("FromUserName", "")
        if not user:
            raise BadRequestError("message has no FromUserName")
        message = await self._message(user, fields)
        if message is None:
            return None
        if isinstance(message, str):
            return _reply_xml(fields, Outgoing(message))
        replies = await self._run(handler, message)
        if not replies:
            return None
        outgoing = render(replies)
        await self.menus.remember(self._conversation(user), outgoing.menu)
        return _reply_xml(fields, outgoing)

    async def deliver(self, recipient: str, replies: Sequence[Reply]) -> None:
        """Push `replies` to `recipient` now, as one message rendered like a passive reply."""
        outgoing = render(replies)
        if not outgoing.text and outgoing.article is None:
            return
        await self._push(recipient, outgoing)
        await self.menus.remember(self._conversation(recipient), outgoing.menu)

    async def drain(self) -> None:
        """Wait for the late deliveries in flight (server shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _message(self, user: str, fields: Mapping[str, str]) -> Message | str | None:
        """The message for the bot, a text to answer at once without the bot, or None for an ignored event."""
        kind = fields.get("MsgType", "")
        event_id = f"{user}:{fields.get('CreateTime', '')}"  # events have no MsgId; WeChat's retries repeat both
        if kind == "event":
            if fields.get("Event", "").lower() != "subscribe":
                return None
            return self._build(user, event_id, GREET_PAYLOAD, {"event": "subscribe"})
        if kind != "text":
            return UNSUPPORTED_TEXT
        text, message_id = fields.get("Content", ""), fields.get("MsgId") or event_id
        number = menu_number(text)
        menu = await self.menus.recall(self._conversation(user)) if number is not None else ()
        if number is None or not 1 <= number <= len(menu):  # no menu, or not one of its numbers: plain text
            return self._build(user, message_id, text, {})
        button = menu[number - 1]
        return self._build(user, message_id, button.payload, {"button": {"number": number, "title": button.title}})

    def _conversation(self, user: str) -> str:
        return f"{self.channel}:{user}"  # never collides with another channel's conversations

    def _build(self, user: str, message_id: str, text: str, meta: dict[str, Any]) -> Message:
        return Message(
            conversation_id=self._conversation(user),
            channel=self.channel,
            sender_id=user,
            message_id=message_id,
            text=text,
            received_at=time.time(),
            meta=meta,
        )

    async def _run(self, handler: TurnHandler, message: Message) -> tuple[Reply, ...] | None:
        turn = asyncio.ensure_future(self._turn(handler, message))
        try:
            # shielded: the deadline ends the wait, not the turn, which is still committed and delivered
            answer = await asyncio.wait_for(asyncio.shield(turn), self._deadline_s)
        except TimeoutError:
            self._finish_later(turn, message.sender_id)
            return None
        except asyncio.CancelledError:  # the platform hung up: the answer can still be pushed
            self._finish_later(turn, message.sender_id)
            raise
        return None if answer.duplicate else answer.replies

    async def _turn(self, handler: TurnHandler, message: Message) -> BotAnswer:
        try:
            return await handler(message)
        except RateLimitedError as err:  # nothing was stored; the user may write again after the wait
            log.info("%s user %s is over the rate limit", self.channel, user_ref(message.sender_id))
            return BotAnswer((Reply(text=err.polite),), None)
        except KefuError as err:  # e.g. a message over the length limit; a 500 would only make WeChat retry
            log.warning("%s turn of user %s refused: %s", self.channel, user_ref(message.sender_id), err)
        except Exception:  # the edge of the channel: a bug becomes a polite reply, not a retried 500
            log.exception("%s turn of user %s failed", self.channel, user_ref(message.sender_id))
        return BotAnswer((Reply(text=SORRY_TEXT),), None)

    def _finish_later(self, turn: asyncio.Future[BotAnswer], user: str) -> None:
        task = asyncio.create_task(self._deliver_late(turn, user))
        self._pending.add(task)  # referenced until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._pending.discard)

    async def _deliver_late(self, turn: asyncio.Future[BotAnswer], user: str) -> None:
        answer = await turn
        if answer.duplicate or not answer.replies:
            return
        try:
            await self.deliver(user, answer.replies)
        except KefuError as err:
            log.warning("%s late answer to user %s lost: %s", self.channel, user_ref(user), err)
        except Exception:
            log.exception("%s late answer to user %s lost", self.channel, user_ref(user))


def _reply_xml(fields: Mapping[str, str], outgoing: Outgoing) -> str | None:
    to_user, from_user, now = fields.get("FromUserName", ""), fields.get("ToUserName", ""), int(time.time())
    if outgoing.article is not None:
        return news_reply(to_user, from_user, outgoing.article, now)
    return text_reply(to_user, from_user, outgoing.text, now) if outgoing.text else None
