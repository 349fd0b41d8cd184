"""Shared by the WeChat and WeCom channel tests: a fake bot (a `TurnHandler` with Bot.handle's dedupe) and a fake
WeChat / WeCom server API recording the token and send calls. The platforms' own side is the real wechatpy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.runtime import BotAnswer
from bot.trace import PartialSink
from bot.types import Message, Reply

API_BASE = "http://api.test"
WELCOME = "欢迎关注！ / Welcome!"

Answer = Callable[[Message], Sequence[Reply]]


def echo(message: Message) -> Sequence[Reply]:
    if message.text == "/greet":
        return [Reply(text=WELCOME)]
    return [Reply(text=f"echo: {message.text}")]


class FakeBot:
    """Stands in for `Bot.handle`: a message already seen (same channel and message id) is a duplicate that gets
    no answer; otherwise it is recorded and answered by `answer`, after `delay` seconds."""

    def __init__(self, answer: Answer = echo, *, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.messages: list[Message] = []
        self._seen: set[tuple[str, str]] = set()

    async def __call__(self, message: Message, on_partial: PartialSink | None = None) -> BotAnswer:
        key = (message.channel, message.message_id)
        if message.message_id and key in self._seen:
            return BotAnswer((), None, duplicate=True)
        self._seen.add(key)
        self.messages.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        return BotAnswer(tuple(self.answer(message)), None)


class FakeApi:
    """The platform's token and send APIs (WeChat's and WeCom's paths). `send_errcodes` are answered to the next
    sends, one each, then 0."""

    def __init__(self) -> None:
        self.token_calls: list[dict[str, str]] = []
        self.sends: list[tuple[str, str, dict[str, Any]]] = []  # path, access token, payload
        self.send_errcodes: list[int] = []
        routes: list[BaseRoute] = [
            Route("/cgi-bin/token", self._token),
            Route("/cgi-bin/gettoken", self._token),
            Route("/cgi-bin/message/custom/send", self._send, methods=["POST"]),
            Route("/cgi-bin/message/send", self._send, methods=["POST"]),
        ]
        self.app = Starlette(routes=routes)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app))

    async def _token(self, request: Request) -> JSONResponse:
        self.token_calls.append(dict(request.query_params))
        return JSONResponse({"access_token": f"ACCESS-{len(self.token_calls)}", "expires_in": 7200})

    async def _send(self, request: Request) -> JSONResponse:
        payload = json.loads(await request.body())
        self.sends.append((request.url.path, request.query_params["access_token"], payload))
        errcode = self.send_errcodes.pop(0) if self.send_errcodes else 0
        return JSONResponse({"errcode": errcode, "errmsg": "ok" if errcode == 0 else "refused"})


def text_xml(content: str, *, msg_id: str = "1001", user: str = "oUser-1", to: str = "gh_shop") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(event: str, *, user: str = "oUser-1", to: str = "gh_shop", create_time: int = 1700000000) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    )


def image_xml(*, user: str = "oUser-1", to: str = "gh_shop") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
        "<PicUrl><![CDATA[http://mmbiz.example/pic.jpg]]></PicUrl><MediaId><![CDATA[media-1]]></MediaId>"
        "<MsgId>2002</MsgId></xml>"
    )
