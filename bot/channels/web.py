"""The web chat widget's channel: one WebSocket per browser tab at `/ws`, the widget script at
`/widget/kefu-widget.js` and a demo page at `/`.

The protocol (JSON text frames) is built so that a reconnecting widget loses and repeats nothing:
- client `hello {conversation_id?, after, lang?}`: the server answers `welcome {conversation_id, hot?,
  hot_by_lang?}` (a new random id when none or an invalid one was given; while the conversation has no user
  message, `hot`, the hot questions in `lang` (zh or en) as `[{title, payload}]`, and `hot_by_lang`, those of
  both languages as `{zh: [...], en: [...]}`) and `messages` with everything said after position `after`. A
  bot entry's recommended questions come as `quick_replies`, in the shape of `buttons`. A `messages` frame
  carries `lang` (zh or en), the language the bot now answers in, once a message of the customer set it;
- client `message {id, text}`: `ack {id}`, `typing {on}`, `partial {reply_id, text}` while a generated reply
  streams, then `messages` (the stored transcript since the last one sent, the user's message included) and
  `done {id}`. A message id the bot already saw (a resend after a reconnect) is answered only with the
  transcript, once the turn that took it has committed;
- client `feedback {reply_id, rating}` (thumbs) or `csat {rating}`: `recorded`;
- anything malformed: `error {error}`, and the connection stays open.

Between frames the server sends `messages` on its own when the conversation changes elsewhere (a human
agent wrote, the conversation was handed back): change notices over Redis reach whichever process holds
the socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot.assist.notify import Notifier, conversation_topic
from bot.channels.base import TurnHandler
from bot.channels.origins import AllowedOrigins
from bot.channels.rest import client_address, strict_json
from bot.channels.transcript import transcript
from bot.errors import BadRequestError, KefuError, RateLimitedError
from bot.events import Event, FeedbackGiven, SlotSet, UserUttered
from bot.runtime import Bot
from bot.types import LANGUAGE_SLOT, Language, Message

log = logging.getLogger(__name__)

MAX_FRAME_CHARS = 16 * 1024
_CONVERSATION_ID = re.compile(r"web:[A-Za-z0-9_-]{16,64}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class WebChannel:
    """Serves the widget; conversations are `web:<random>` so a browser can only reach its own."""

    name = "web"

    def __init__(self, bot: Bot, notifier: Notifier | None = None, origins: AllowedOrigins | None = None) -> None:
        self._bot = bot
        self._notifier = notifier
        self._origins = origins or AllowedOrigins()

    def routes(self, handler: TurnHandler) -> list[BaseRoute]:
        async def socket(websocket: WebSocket) -> None:
            origin = websocket.headers.get("origin")
            await websocket.accept()
            if not self._origins.allows(origin, websocket.headers.get("host")):
                self._origins.refused(origin or "")  # accepted first so the page sees 1008, not a failed handshake
                await websocket.close(code=1008, reason="origin not allowed (KEFU_CORS_ORIGINS)")
                return
            await _Connection(websocket, self._bot, handler, self._notifier).serve()

        return [
            WebSocketRoute("/ws", socket),
            Route("/widget/kefu-widget.js", _script),
            Route("/", _demo_page),
        ]


async def _script(request: Request) -> Response:
    return Response(
        _asset("kefu-widget.js"), media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


async def _demo_page(request: Request) -> Response:
    return HTMLResponse(_asset("demo.html"))


def _asset(name: str) -> str:
    return resources.files("bot.channels").joinpath("widget", name).read_text(encoding="utf-8")


class _Connection:
    def __init__(self, websocket: WebSocket, bot: Bot, handler: TurnHandler, notifier: Notifier | None) -> None:
        self._ws = websocket
        self._bot = bot
        self._handler = handler
        self._notifier = notifier
        self._conversation = ""
        self._seen = -1  # the last transcript position this socket has sent
        self._sending = asyncio.Lock()  # frames from the reader and from change notices never interleave
        self._follower: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        try:
            while True:
                frame = await self._receive()
                if frame is not None:
                    await self._dispatch(frame)
        except WebSocketDisconnect:
            return
        except KefuError as err:  # Redis went away: the widget reconnects and resends what was not answered
            log.warning("web socket closed: %s", type(err).__name__)
            await self._ws.close(code=1011)
        finally:
            if self._follower is not None:
                self._follower.cancel()

    async def _follow(self, conversation_id: str) -> None:
        """Sync whenever the conversation changes elsewhere (an operator wrote)."""
        assert self._notifier is not None
        try:
            async with self._notifier.listen(conversation_topic(conversation_id)) as changes:
                while True:
                    await changes.get()
                    await self._sync()
        except (WebSocketDisconnect, RuntimeError, KefuError):
            return  # the socket closed under us, or Redis went away: the widget's reconnect catches up

    async def _receive(self) -> dict[str, Any] | None:
        raw = await self._ws.receive_text()
        problem = ""
        frame: Any = None
        if len(raw) > MAX_FRAME_CHARS:
            problem = f"frame of {len(raw)} characters; the limit is {MAX_FRAME_CHARS}"
        else:
            try:
                frame = strict_json(raw)
            except ValueError as err:  # not JSON, nested too deeply, or a lone surrogate
                problem = f'frames are JSON objects such as {{"type": "message", "id": "m1", "text": "hi"}} ({err})'
        if not problem and (not isinstance(frame, dict) or not isinstance(frame.get("type"), str)):
            problem = 'a frame needs a "type": hello, message, feedback or csat'
        if problem:
            await self._error(problem)
            return None
        return dict(frame)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "hello":
            await self._hello(frame)
        elif not self._conversation:
            await self._error('say "hello" first: {"type": "hello", "conversation_id": null, "after": -1}')
        elif kind == "message":
            await self._message(frame)
        elif kind in ("feedback", "csat"):
            await self._feedback(frame)
        else:
            await self._error(f"unknown frame type {kind!r}; use hello, message, feedback or csat")

    async def _hello(self, frame: dict[str, Any]) -> None:
        wanted = frame.get("conversation_id")
        known = isinstance(wanted, str) and _CONVERSATION_ID.fullmatch(wanted) is not None
        self._conversation = str(wanted) if known else f"web:{secrets.token_urlsafe(18)}"
        after = frame.get("after")
        self._seen = after if known and isinstance(after, int) and not isinstance(after, bool) else -1
        welcome: dict[str, Any] = {"type": "welcome", "conversation_id": self._conversation}
        hot = await self._hot(known)
        if any(hot.values()):
            # both languages, so the widget's chips can follow the customer into the other one
            welcome.update(hot=hot["en" if frame.get("lang") == "en" else "zh"], hot_by_lang=hot)
        await self._send(welcome)
        await self._sync()
        if self._notifier is not None:
            if self._follower is not None:
                self._follower.cancel()
            self._follower = asyncio.create_task(self._follow(self._conversation))

    async def _hot(self, known: bool) -> dict[Language, list[dict[str, str]]]:
        """The hot questions (猜你想问) to show under the greeting, by language: none once the customer has said
        something."""
        recommend = self._bot.parts.recommend
        if recommend is None:
            return {}
        if known and any(isinstance(e, UserUttered) for e in await self._bot.store.history(self._conversation)):
            return {}
        languages: tuple[Language, ...] = ("zh", "en")
        return {  # cheap once warm
            language: [{"title": q.text, "payload": q.text} for q in recommend.recommender.hot(language)]
            for language in languages
        }

    async def _message(self, frame: dict[str, Any]) -> None:
        message_id, text = frame.get("id"), frame.get("text")
        if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id) or not isinstance(text, str):
            await self._error('a message needs "id" (1-64 letters, digits, _ or -) and "text" (a string)')
            return
        await self._send({"type": "ack", "id": message_id})
        await self._send({"type": "typing", "on": True})
        try:
            answer = await self._turn(message_id, text)
            if answer.duplicate:  # a resend: the first delivery's turn may still run; its commit is what to show
                async with self._bot.store.lock(self._conversation):
                    pass
        except BadRequestError as err:
            await self._send({"type": "error", "id": message_id, "error": str(err)})
        except RateLimitedError as err:  # nothing was stored: the widget may send it again later
            await self._send({"type": "error", "id": message_id, "error": err.polite, "retry_after": err.retry_after})
        finally:
            await self._sync()
            await self._send({"type": "typing", "on": False})
            await self._send({"type": "done", "id": message_id})

    async def _turn(self, message_id: str, text: str) -> Any:
        partials: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        conversation, address = self._conversation, client_address(self._ws)
        message = Message(conversation, "web", conversation, message_id, text, time.time(), client=address)

        def on_partial(reply_id: str, part: str) -> None:
            partials.put_nowait({"type": "partial", "reply_id": reply_id, "text": part})

        turn = asyncio.ensure_future(self._handler(message, on_partial=on_partial))
        try:
            while not turn.done() or not partials.empty():
                getter = asyncio.ensure_future(partials.get())
                await asyncio.wait({getter, turn}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    await self._send(getter.result())
                else:
                    getter.cancel()
        finally:
            if not turn.done():  # the browser went away: the turn still completes and is committed
                await asyncio.shield(turn)
        return turn.result()

    async def _feedback(self, frame: dict[str, Any]) -> None:
        rating = frame.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool):
            await self._error('"rating" must be an integer: 1 or -1 for thumbs, 1 to 5 for csat')
            return
        if frame["type"] == "csat":
            event = FeedbackGiven(rating=rating, kind="csat")
        else:
            event = FeedbackGiven(rating=rating, kind="thumbs", reply_id=str(frame.get("reply_id", "")))
        try:
            await self._bot.record_feedback(self._conversation, event)
        except BadRequestError as err:
            await self._error(str(err))
            return
        await self._send({"type": "recorded", "kind": event.kind, "reply_id": event.reply_id})

    async def _sync(self) -> None:
        async with self._sending:
            events = await self._bot.store.history(self._conversation)
            said = transcript(events, after=self._seen)
            if said:
                self._seen = said[-1]["seq"]
            frame: dict[str, Any] = {"type": "messages", "messages": said}
            language = _language(events)
            if language is not None:
                frame["lang"] = language
            await self._ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def _send(self, frame: dict[str, Any]) -> None:
        async with self._sending:
            await self._ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def _error(self, text: str) -> None:
        await self._send({"type": "error", "error": text})


def _language(events: Sequence[Event]) -> Language | None:
    """The language the bot answers in: the `language` slot that the customer's messages set, if any yet."""
    slot = next((e.value for e in reversed(events) if isinstance(e, SlotSet) and e.name == LANGUAGE_SLOT), None)
    return "zh" if slot == "zh" else "en" if slot == "en" else None
