"""Where a parse runs: on the event loop when the NLU says it is cheap, otherwise in a worker thread.

A parse by the trained model with static features costs about a millisecond of CPU and does no I/O. Handing
it to a thread costs more than that under load: the event loop then waits for the GIL behind the parsing
thread (up to a switch interval, 5 ms, at every socket call) and the worker pool queues. A parse that can be
slow (an HTTP NLU, an e5 embedding of a new text) still goes to a thread, so it never stalls other turns.
"""

from __future__ import annotations

import asyncio

from bot.events import Session
from bot.protocols import NLU
from bot.types import Message, NluResult


def is_inline(nlu: NLU) -> bool:
    """Whether `nlu` declares its parses cheap and free of I/O (an `inline` attribute that is true)."""
    return bool(getattr(nlu, "inline", False))


async def parse(nlu: NLU, message: Message, session: Session) -> NluResult:
    if is_inline(nlu):
        return nlu.parse(message, session)
    return await asyncio.to_thread(nlu.parse, message, session)
