"""`kefu run`: one process, or `--workers N` processes that share nothing but Redis, so any of them serves
any message of any conversation."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from starlette.applications import Starlette

from bot.sessions.connect import EmbeddedRedis, check_reachable
from bot.settings import Settings

GRACEFUL_SHUTDOWN_S = 10
PROJECT_ENV = "KEFU_RUN_PROJECT"  # how the supervising process tells its workers which project to serve


def serve(path: Path, settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    """Train what changed, then serve until stopped. Several workers share the `REDIS_URL` Redis or, without
    one, an embedded Redis that this (supervising) process keeps for them."""
    import uvicorn

    from bot.server import create_app
    from bot.wiring import build_runtime, open_project, train

    if settings.redis_url:  # before anything slow: a wrong URL is the most common first-run mistake
        asyncio.run(check_reachable(settings.redis_url))
    project = open_project(path, settings)
    train(project, progress=True)  # once, here: the workers only load what it saved
    print(
        f"kefu serves {path} on http://{host}:{port} with {workers} worker{'s' if workers > 1 else ''}: the chat "
        "widget's demo page at /, POST /webhooks/rest/webhook, /api/v1 (docs at /api/v1/docs), GET /health"
    )
    options = {
        "host": host,
        "port": port,
        "log_level": settings.log_level.lower(),
        "ws_max_size": 64 * 1024,
        # The widget's frames are a few hundred bytes: deflating them saved little on the wire and cost about
        # 0.3 ms of server CPU per turn (the load benchmark over the WebSocket).
        "ws_per_message_deflate": False,
        # On SIGTERM, connections still open (widget sockets, a client holding a keep-alive) get this long to
        # finish; without a bound, a stuck one kept a worker, and so `kefu run`, from ever exiting.
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    if workers == 1:
        uvicorn.run(create_app(build_runtime(project, settings), settings), **options)  # type: ignore[arg-type]
        return
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(project.data_dir / "redis")
        os.environ["REDIS_URL"] = "unix://" + embedded.start()
    os.environ[PROJECT_ENV] = str(path.resolve())
    try:
        uvicorn.run("bot.serve:worker_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    finally:
        if embedded is not None:
            embedded.stop()


def worker_app() -> Starlette:
    """The app of one worker process; uvicorn calls this in each worker it starts."""
    from bot.server import create_app
    from bot.wiring import build_runtime, open_project

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    project = open_project(Path(os.environ[PROJECT_ENV]), settings)
    return create_app(build_runtime(project, settings), settings)
