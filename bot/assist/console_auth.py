"""Signing operators in and out of the console, and the guard every console route goes through.

The session cookie is HttpOnly, SameSite=Strict and scoped to `/console`; state-changing calls must send
JSON, which a page on another site cannot do without a CORS preflight that kefu never grants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from bot.assist.operators import NAME, SESSION_TTL_S, ConsoleSessions, OperatorAccounts
from bot.channels.rest import json_object

COOKIE = "kefu_console"
Handler = Callable[[Request, str], Awaitable[Response]]
_NO_ACCOUNTS = (
    "no operator accounts yet: run `kefu operators add NAME` in the project folder (or set KEFU_OPERATORS_FILE), "
    "then sign in"
)


class ConsoleAuth:
    def __init__(self, accounts: OperatorAccounts, sessions: ConsoleSessions) -> None:
        self.accounts = accounts
        self.sessions = sessions

    async def operator(self, connection: HTTPConnection) -> str | None:
        """Who is signed in on this request or socket, if anyone."""
        return await self.sessions.operator(connection.cookies.get(COOKIE, ""))

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The handler, called with the operator's name; 401 without a session, 415 for a non-JSON change."""

        async def guard(request: Request) -> Response:
            operator = await self.operator(request)
            if operator is None:
                return JSONResponse({"error": "sign in first: POST /console/api/login"}, status_code=401)
            if request.method == "POST" and not _is_json(request):
                return JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
            return await handler(request, operator)

        return guard

    async def login(self, request: Request) -> Response:
        if not _is_json(request):
            return JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
        data = json_object(await request.body(), '{"name": "xiaowang", "password": "..."}')
        name, password = data.get("name"), data.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or not NAME.fullmatch(name):
            return JSONResponse({"error": 'send {"name": ..., "password": ...}'}, status_code=400)
        if not len(self.accounts):
            return JSONResponse({"error": _NO_ACCOUNTS}, status_code=403)
        if await self.sessions.paused(name):
            return JSONResponse(
                {"error": "too many wrong passwords for this name; try again in 15 minutes"}, status_code=429
            )
        if not self.accounts.check(name, password):
            await self.sessions.failed(name)
            return JSONResponse({"error": "wrong name or password"}, status_code=401)
        await self.sessions.succeeded(name)
        response = JSONResponse({"operator": name})
        response.set_cookie(
            COOKIE, await self.sessions.start(name), max_age=SESSION_TTL_S, path="/console", httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    async def logout(self, request: Request) -> Response:
        token = request.cookies.get(COOKIE, "")
        if token:
            await self.sessions.end(token)
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(COOKIE, path="/console")
        return response


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def error(message: str, status: int = 400, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)
