"""The operator console served by `kefu run` at `/console`: the handoff queue, each conversation's transcript
with the bot's trace and summary, script suggestions, a reply box, hand-back, archive search and analytics.

The page is plain HTML and JS (bot/assist/console/, no build step) over the JSON API below; a WebSocket at
`/console/ws` says which conversation changed so the page refreshes what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot.assist.analytics import compute_analytics
from bot.assist.archive import Archive
from bot.assist.console_auth import ConsoleAuth, error
from bot.assist.console_trace import turn_traces
from bot.assist.handoff import HandoffDesk
from bot.assist.handoff_queue import QueueError
from bot.assist.notify import CONSOLE
from bot.assist.summary import SummaryError, render
from bot.assist.summary_view import latest_session
from bot.channels.rest import json_object
from bot.channels.transcript import transcript
from bot.errors import KefuError
from bot.events import Event, SuggestionRated
from bot.types import Language

log = logging.getLogger(__name__)

MAX_REPLY_CHARS = 4000
SEEN_EVERY_S = 30.0
_PAGES = {"": "index.html", "login": "login.html", "analytics": "analytics.html"}
_ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}


class SuggestionSource(Protocol):
    async def suggest_for(self, events: Sequence[Event], *, language: Language, use_generator: bool = True) -> Any: ...


@dataclass(frozen=True, slots=True)
class ConsoleParts:
    desk: HandoffDesk
    auth: ConsoleAuth
    archive: Archive
    suggester: SuggestionSource | None = None


class Console:
    def __init__(self, parts: ConsoleParts) -> None:
        self._parts = parts
        self._desk = parts.desk
        self._store = parts.desk.store

    def routes(self) -> list[BaseRoute]:
        auth, api = self._parts.auth, self._parts.auth.guarded
        return [
            *(Route(f"/console/{path}".rstrip("/"), _page(name)) for path, name in _PAGES.items()),
            Route("/console/assets/{name}", _asset),
            Route("/console/api/login", auth.login, methods=["POST"]),
            Route("/console/api/logout", auth.logout, methods=["POST"]),
            Route("/console/api/me", api(self.me)),
            Route("/console/api/queue", api(self.queue)),
            Route("/console/api/conversation/{cid:path}", api(self.conversation)),
            Route("/console/api/claim/{cid:path}", api(self.claim), methods=["POST"]),
            Route("/console/api/messages/{cid:path}", api(self.send), methods=["POST"]),
            Route("/console/api/handback/{cid:path}", api(self.hand_back), methods=["POST"]),
            Route("/console/api/summary/{cid:path}", api(self.edit_summary), methods=["POST"]),
            Route("/console/api/suggestions/{cid:path}", api(self.suggestions)),
            Route("/console/api/archive", api(self.search_archive)),
            Route("/console/api/archive/{cid:path}", api(self.archived)),
            Route("/console/api/analytics", api(self.analytics)),
            WebSocketRoute("/console/ws", self.socket),
        ]

    async def me(self, request: Request, operator: str) -> Response:
        return JSONResponse({"operator": operator, "online": await self._desk.queue.online()})

    async def queue(self, request: Request, operator: str) -> Response:
        await self._desk.queue.seen(operator)
        now = time.time()
        waiting, active = await self._desk.queue.waiting(), await self._desk.queue.active()
        return JSONResponse(
            {
                "operator": operator,
                "waiting": [t.to_json(now=now) for t in waiting],
                "active": [t.to_json(now=now) for t in active],
                "online": await self._desk.queue.online(),
            }
        )

    async def conversation(self, request: Request, operator: str) -> Response:
        cid = request.path_params["cid"]
        events = await self._store.history(cid)
        if not events:
            return error(f"no conversation {cid!r}", 404)
        ticket = await self._desk.queue.get(cid)
        summary = self._desk.summary(events)
        if ticket is not None and ticket.summary:
            with contextlib.suppress(SummaryError):
                summary = type(summary).from_dict(ticket.summary)
        return JSONResponse(
            {
                "conversation_id": cid,
                "ticket": ticket.to_json() if ticket else None,
                "transcript": transcript(events),
                "turns": turn_traces(events),
                "summary": summary.to_dict(),
                "summary_text": render(summary),
            }
        )

    async def claim(self, request: Request, operator: str) -> Response:
        data = json_object(await request.body(), '{"take_over": false}')
        try:
            ticket = await self._desk.claim(
                request.path_params["cid"], operator, take_over=data.get("take_over") is True
            )
        except QueueError as err:
            return error(str(err), 409)
        return JSONResponse({"ticket": ticket.to_json()})

    async def send(self, request: Request, operator: str) -> Response:
        data = json_object(await request.body(), '{"text": "您好，我来帮您查一下", "suggestion": {"text", "source"}?}')
        text = data.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_REPLY_CHARS:
            return error(f'"text" must be a non-empty string of at most {MAX_REPLY_CHARS} characters')
        ratings = _ratings(data, text.strip(), operator)
        try:
            ticket = await self._desk.reply(request.path_params["cid"], operator, text.strip(), ratings=ratings)
        except QueueError as err:
            return error(str(err), 409)
        return JSONResponse({"sent": True, "ticket": ticket.to_json(), "rated": [r.outcome for r in ratings]})

    async def hand_back(self, request: Request, operator: str) -> Response:
        if not await self._desk.hand_back(request.path_params["cid"], operator):
            return error("this conversation is not with a human", 409)
        return JSONResponse({"handed_back": True})

    async def edit_summary(self, request: Request, operator: str) -> Response:
        changes = json_object(await request.body(), '{"problem": "...", "next_step": "..."}')
        try:
            ticket = await self._desk.edit_summary(request.path_params["cid"], changes)
        except (QueueError, SummaryError) as err:
            return error(str(err), 409 if isinstance(err, QueueError) else 400)
        await self._desk.notifier.publish(ticket.conversation_id)
        return JSONResponse({"summary": dict(ticket.summary)})

    async def suggestions(self, request: Request, operator: str) -> Response:
        suggester = self._parts.suggester
        if suggester is None:
            return JSONResponse({"suggestions": []})
        events = latest_session(await self._store.history(request.path_params["cid"]))
        language: Language = self._desk.summary(events).language
        found = await suggester.suggest_for(
            events, language=language, use_generator=request.query_params.get("generator") == "1"
        )
        return JSONResponse({"suggestions": [s.to_json() for s in found]})

    async def search_archive(self, request: Request, operator: str) -> Response:
        limit = _int(request.query_params.get("limit"), 20, 1, 200)
        hits = await self._parts.archive.search(request.query_params.get("q") or None, limit=limit)
        return JSONResponse({"sessions": [_summary_json(h) for h in hits]})

    async def archived(self, request: Request, operator: str) -> Response:
        found = await self._parts.archive.get(request.path_params["cid"])
        return JSONResponse({"sessions": [{**s.to_dict(), "events": []} for s in found]})

    async def analytics(self, request: Request, operator: str) -> Response:
        days = _int(request.query_params.get("days"), 7, 1, 366)
        sessions = await self._parts.archive.sessions(since=time.time() - days * 86400)
        figures = await asyncio.to_thread(compute_analytics, sessions)
        return JSONResponse(figures.to_json())

    async def socket(self, websocket: WebSocket) -> None:
        operator = await self._parts.auth.operator(websocket)
        if operator is None:
            await websocket.close(code=4401)
            return
        await websocket.accept()
        helpers = [asyncio.create_task(self._keep_seen(operator)), asyncio.create_task(self._tell(websocket))]
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass  # the page only listens; reading is how a closed socket (or a server shutdown) is noticed
        finally:
            for task in helpers:
                task.cancel()

    async def _tell(self, websocket: WebSocket) -> None:
        try:
            async with self._desk.notifier.listen(CONSOLE) as changes:
                while True:
                    cid = await changes.get()
                    await websocket.send_json({"type": "changed", "conversation_id": cid})
        except (WebSocketDisconnect, RuntimeError, KefuError):
            return

    async def _keep_seen(self, operator: str) -> None:
        while True:
            with contextlib.suppress(KefuError):
                await self._desk.queue.seen(operator)
            await asyncio.sleep(SEEN_EVERY_S)


def _ratings(data: dict[str, Any], sent: str, operator: str) -> list[SuggestionRated]:
    """What the operator did with the suggestions shown: took one as is, edited it, or wrote their own."""
    chosen, shown = data.get("suggestion"), data.get("shown")
    if isinstance(chosen, dict) and isinstance(chosen.get("text"), str):
        as_is = chosen["text"].strip() == sent
        return [
            SuggestionRated(
                suggestion=chosen["text"], outcome="accepted" if as_is else "edited", sent="" if as_is else sent,
                source=str(chosen.get("source", "")), operator=operator,
            )
        ]  # fmt: skip
    if isinstance(shown, list) and shown and isinstance(shown[0], dict) and isinstance(shown[0].get("text"), str):
        top = shown[0]
        return [
            SuggestionRated(
                suggestion=top["text"], outcome="ignored", sent=sent, source=str(top.get("source", "")),
                operator=operator,
            )
        ]  # fmt: skip
    return []


def _summary_json(hit: Any) -> dict[str, Any]:
    return {name: getattr(hit, name) for name in hit.__dataclass_fields__}


def _int(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(raw))) if raw else default
    except ValueError:
        return default


def _page(name: str) -> Any:
    async def page(request: Request) -> Response:
        return HTMLResponse(_read(name), headers=_HEADERS)

    return page


async def _asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _ASSETS:
        return error("no such asset", 404)
    return Response(_read(name), media_type=f"{_ASSETS[name]}; charset=utf-8", headers=_HEADERS)


_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
}


def _read(name: str) -> str:
    return resources.files("bot.assist").joinpath("console", name).read_text(encoding="utf-8")
