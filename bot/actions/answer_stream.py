"""A generated answer streamed to the user a sentence at a time, each sentence checked before it is shown:
nothing past a blocking point ever reaches the screen."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing

from bot.events import BotUttered, Session
from bot.generation.sentences import SentenceBuffer
from bot.protocols import DecodingParams, Generator, PromptContext, TraceSink
from bot.types import Candidate
from safety.pipeline import SafetyPipeline

_MORE_HELP = {
    "zh": "其他问题我可以为您转接人工客服。",
    "en": "For anything else, I can connect you with a human agent.",
}
_END = object()


async def stream_checked(
    generator: Generator,
    context: PromptContext,
    params: DecodingParams,
    checks: SafetyPipeline,
    session: Session,
    trace: TraceSink,
) -> BotUttered | None:
    """Stream `generator`'s answer through `trace.partial`; None when not even the first sentence passed."""
    reply_id = uuid.uuid4().hex[:12]
    shown: list[str] = []
    generated: list[str] = []
    blocked = False
    with trace.stage("generation", f"{generator.name} (streamed)"):
        async with aclosing(_sentences(generator, context, params, generated)) as sentences:
            async for sentence in sentences:
                outcome = checks.run(sentence, stage="output", session=session, facts=context.facts)
                trace.add_verdicts(outcome.verdicts)
                if not outcome.allowed:
                    blocked = True
                    break
                shown.append(outcome.text)
                trace.partial(reply_id, outcome.text)
    trace.add_candidates([Candidate("".join(generated).strip(), tuple(f.id for f in context.facts), generator.name)])
    if not shown:
        return None
    if blocked:  # the answer stops where it would have said something unsupported: say what comes next
        ending = _MORE_HELP[context.language]
        trace.partial(reply_id, ending)
        shown.append(ending)
    separator = "" if context.language == "zh" else " "
    text = separator.join(part.strip() for part in shown)
    return BotUttered(text=text, fact_ids=tuple(f.id for f in context.facts), template="generated", reply_id=reply_id)


async def _sentences(
    generator: Generator, context: PromptContext, params: DecodingParams, generated: list[str]
) -> AsyncGenerator[str, None]:
    """The generator's sentences as they complete; the model runs in a thread, the event loop stays free.
    Leaving early stops the model at its next token."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        pieces = generator.stream(context, params=params)
        try:
            for piece in pieces:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
                if stop.is_set():
                    break
        except Exception as err:  # handed to the consumer, which raises it in the turn
            loop.call_soon_threadsafe(queue.put_nowait, err)
        finally:
            close = getattr(pieces, "close", None)
            if callable(close):
                close()
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    worker = asyncio.ensure_future(asyncio.to_thread(produce))
    buffer = SentenceBuffer()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            generated.append(str(item))
            for sentence in buffer.feed(str(item)):
                yield sentence
        rest = buffer.flush()
        if rest.strip():
            yield rest
    finally:
        stop.set()
        task = asyncio.current_task()
        if task is None or not task.cancelling():  # past the turn's deadline the thread ends on its own
            await worker
