"""A request body limit for every HTTP route (the console and admin API included): a declared Content-Length over
the limit is refused before the app runs, and a chunked body is stopped as soon as it grows past it. Routes may
keep smaller limits of their own (the REST channels' 64 KB)."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class _BodyTooLarge(Exception):
    """Raised into the app by `receive` once the body passes the limit; the middleware answers 413."""


class BodyLimit:
    """Pure ASGI (no BaseHTTPMiddleware): streaming responses and WebSockets pass through untouched."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdecimal() and int(declared) > self.max_bytes:
            await self._refuse(send, f"request body is {declared} bytes")
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _BodyTooLarge:
            if not started:  # else the response is cut short: the server closes the connection
                await self._refuse(send, "request body is over the limit")

    async def _refuse(self, send: Send, what: str) -> None:
        error = f"{what}; the limit is {self.max_bytes} bytes (KEFU_MAX_BODY_BYTES)"
        body = json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
