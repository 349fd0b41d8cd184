"""The W3C `Server-Timing` response header for turns answered over HTTP: each stage of the turn, the session
store and hooks, the whole turn, and its Redis round trips. Browsers' developer tools show it; the load
benchmark reads it. Off unless KEFU_SERVER_TIMING is set, since it tells clients about the inside of a turn."""

from __future__ import annotations

from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.runtime import BotAnswer

_answers: ContextVar[list[BotAnswer] | None] = ContextVar("kefu_server_timing", default=None)


def record_timing(answer: BotAnswer) -> None:
    """Remember the request's answer for its header (a no-op outside ServerTiming)."""
    answers = _answers.get()
    if answers is not None:
        answers.append(answer)


def timing_header(answer: BotAnswer) -> str:
    stages = answer.trace.stages if answer.trace else ()
    parts = [f"{_token(stage.name)};dur={stage.ms:.2f}" for stage in stages]
    store_ms = max(answer.total_ms - sum(stage.ms for stage in stages), 0.0)
    parts += [f"store;dur={store_ms:.2f}", f"total;dur={answer.total_ms:.2f}"]
    parts.append(f'redis;desc="{answer.round_trips} round trips"')
    return ", ".join(parts)


def _token(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "stage"


class ServerTiming:
    """Pure ASGI middleware: adds the header to a response whose endpoint answered a turn. The endpoint runs
    in the request's own task, so the list set here is the one `record_timing` fills."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        answers: list[BotAnswer] = []
        reset = _answers.set(answers)

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start" and answers:
                headers = [*message.get("headers", []), (b"server-timing", timing_header(answers[-1]).encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, receive, send_with_timing)
        finally:
            _answers.reset(reset)
