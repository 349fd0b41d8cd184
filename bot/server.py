"""The ASGI app: health, and every channel's routes around one Bot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.channels.rest import RestChannel
from bot.errors import BadRequestError, KefuError
from bot.runtime import BotAnswer
from bot.types import Message
from bot.wiring import Runtime

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> Starlette:
    bot = runtime.bot

    async def on_message(message: Message) -> BotAnswer:
        return await bot.handle(message)

    async def health(request: Request) -> JSONResponse:
        try:
            await bot.store.ping()
        except KefuError as err:
            return JSONResponse({"status": "degraded", "sessions": str(err)}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=413 if "limit" in str(exc) else 400)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(bot.warm_up)
        runtime.warm_up_generator_in_background()
        log.info("kefu is ready")
        yield
        await runtime.aclose()

    routes = [Route("/health", health), *RestChannel().routes(on_message)]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={BadRequestError: bad_request})
