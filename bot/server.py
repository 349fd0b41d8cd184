"""The ASGI app: health, the admin API, and every channel's routes around one Bot."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.assist.archive import Archive, open_archive, session_idle_s, start_archiver
from bot.assist.console import Console, ConsoleParts
from bot.assist.console_auth import ConsoleAuth
from bot.assist.operators import ConsoleSessions, OperatorAccounts
from bot.assist.suggest import Suggester, suggester_for
from bot.channels.base import Channel
from bot.channels.limits import BodyLimit
from bot.channels.origins import AllowedOrigins, ScopedCors
from bot.channels.registry import HideQueryStrings, channels_from_env
from bot.errors import BadRequestError, KefuError, RateLimitedError
from bot.recommend.archive_seed import seed_from_archive
from bot.recommend.shared_counts import keep_synced
from bot.runtime import BotAnswer
from bot.server_timing import ServerTiming, record_timing
from bot.settings import Settings
from bot.trace import PartialSink
from bot.types import Message
from bot.wiring import Runtime

log = logging.getLogger(__name__)

ARCHIVE_EVERY_S = 60.0  # how often ended conversations move from Redis to the archive


def create_app(runtime: Runtime, settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    bot = runtime.bot
    desk = runtime.desk
    origins = AllowedOrigins(settings.cors_origin_list)
    channels = channels_from_env(bot, desk.notifier if desk else None, origins)
    logging.getLogger("uvicorn.access").addFilter(HideQueryStrings())
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    archive = open_archive(runtime.project, settings)
    suggester = suggester_for(runtime)
    console = _console(runtime, archive, channels, suggester)

    async def on_message(message: Message, on_partial: PartialSink | None = None) -> BotAnswer:
        answer = await bot.handle(message, on_partial=on_partial)
        record_timing(answer)
        return answer

    async def health(request: Request) -> JSONResponse:
        try:
            await bot.store.ping()
        except KefuError as err:
            return JSONResponse({"status": "degraded", "sessions": str(err)}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def reload_knowledge(request: Request) -> JSONResponse:
        refused = _refuse_admin(request, admin_token)
        if refused is not None:
            return refused
        if runtime.knowledge is None:
            return JSONResponse({"error": "this bot has no knowledge base"}, status_code=404)
        try:
            report = await asyncio.to_thread(runtime.knowledge.reload)
        except KefuError as err:  # the old knowledge keeps answering
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse(report.to_json())

    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=413 if "limit" in str(exc) else 400)

    async def rate_limited(request: Request, exc: Exception) -> JSONResponse:
        wait = exc.retry_after if isinstance(exc, RateLimitedError) else 1  # registered for that class only
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": str(wait)})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        one_thread_for_tensors()  # the event loop's thread, where cheap parses run
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(initializer=one_thread_for_tensors))
        await asyncio.to_thread(bot.warm_up)
        runtime.warm_up_generator_in_background()
        await archive.open()  # a wrong KEFU_ARCHIVE_URL stops the start with the reason
        archiver = start_archiver(bot, archive, ARCHIVE_EVERY_S, idle_s=session_idle_s(runtime.project))
        learner = asyncio.create_task(_learn_past_replies(suggester, archive), name="kefu-past-replies")
        tasks = [archiver, learner, *_share_recommendation_counts(runtime, archive)]
        log.info("kefu is ready")
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await archive.close()
        await runtime.aclose()

    routes = [
        Route("/health", health),
        Route("/admin/knowledge/reload", reload_knowledge, methods=["POST"]),
        *(route for channel in channels for route in channel.routes(on_message)),
        *(console.routes() if console else ()),
    ]
    middleware = [  # CORS outermost, so that a 413 reaches the page that sent it
        Middleware(ScopedCors, origins=origins),
        Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        *([Middleware(ServerTiming)] if settings.server_timing else []),
    ]
    handlers = {BadRequestError: bad_request, RateLimitedError: rate_limited}
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers)


def one_thread_for_tensors() -> None:
    """Run the calling thread's tensor and vector-search operations on one thread (OpenMP's setting is per
    thread, hence also the initializer of the threads that `asyncio.to_thread` uses). A turn's work is tiny (an
    NLU forward pass takes about 0.5 ms, a knowledge search 0.3 ms), so a second thread gains nothing, while
    each parallel region waits for a core that another worker process or turn may hold: on two busy cores a
    knowledge search took 10 ms with two threads and 0.3 ms with one. Results stay the same to the bit for the
    searches and to the stored 4 decimals for the NLU; training runs on one thread too (`bot.model_files`)."""
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)


async def _learn_past_replies(suggester: Suggester, archive: Archive) -> None:
    """Keep the operators' past replies searchable for suggestions as the archive grows."""
    if suggester.archive_index is None:
        return
    while True:
        try:
            await suggester.archive_index.refresh(archive)
        except KefuError as err:
            log.warning("could not index past operator replies: %s", err)
        await asyncio.sleep(ARCHIVE_EVERY_S)


def _share_recommendation_counts(runtime: Runtime, archive: Archive) -> list[asyncio.Task[None]]:
    """What each process learns about recommendations reaches the others (and outlives restarts) via Redis; a
    Redis without counts is first seeded from the archive."""
    stage = runtime.bot.parts.recommend
    if stage is None or not stage.recommender.options.learning:
        return []
    options, counts, client = stage.recommender.options, stage.recommender.counts, runtime.bot.store.client

    async def learn() -> None:
        await seed_from_archive(client, archive, counts)
        await keep_synced(client, counts, every_s=options.sync_every_s, hot_days=options.hot_days)

    return [asyncio.create_task(learn(), name="kefu-recommendation-counts")]


def _console(runtime: Runtime, archive: Archive, channels: Sequence[Channel], suggester: Suggester) -> Console | None:
    """The operator console, with the channels that deliver operators' messages; accounts are read now, so
    a malformed accounts file stops the start with its line."""
    if runtime.desk is None:
        return None
    runtime.desk.use_channels(channels)
    client = runtime.bot.store.client
    accounts = OperatorAccounts.load(runtime.project.data_dir)
    if not len(accounts):
        log.info("the operator console has no accounts yet: run `kefu operators add NAME`")
    auth = ConsoleAuth(accounts, ConsoleSessions(client))
    return Console(ConsoleParts(runtime.desk, auth, archive, suggester))


def _refuse_admin(request: Request, token: str) -> JSONResponse | None:
    """None when the request carries the admin token; the refusal otherwise (compared in constant time)."""
    if not token:
        return JSONResponse({"error": "the admin API is off; set KEFU_ADMIN_TOKEN to turn it on"}, status_code=403)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return JSONResponse(
            {"error": "missing or wrong admin token; send the header Authorization: Bearer $KEFU_ADMIN_TOKEN"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None
