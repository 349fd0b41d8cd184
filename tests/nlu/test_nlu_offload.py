"""Where a parse runs: a cheap NLU on the event loop, any other in a worker thread."""

from __future__ import annotations

import threading
from pathlib import Path

from bot.events import Session
from bot.nlu.offload import is_inline, parse
from bot.nlu.pipeline import TrainedNlu
from bot.nlu.static_embedder import StaticEmbedder
from bot.types import Message, NluResult

MESSAGE = Message("c1", "rest", "u1", "m1", "你好", received_at=0.0)


class _RecordingNlu:
    def __init__(self, *, inline: bool | None) -> None:
        if inline is not None:
            self.inline = inline
        self.thread: threading.Thread | None = None

    def parse(self, message: Message, session: Session) -> NluResult:
        self.thread = threading.current_thread()
        return NluResult(text=message.text, intent="greet", confidence=1.0)


async def test_a_cheap_nlu_parses_on_the_event_loop() -> None:
    nlu = _RecordingNlu(inline=True)
    result = await parse(nlu, MESSAGE, Session("c1"))
    assert result.intent == "greet"
    assert nlu.thread is threading.current_thread()


async def test_an_nlu_that_says_nothing_or_no_parses_in_a_thread() -> None:
    for nlu in (_RecordingNlu(inline=None), _RecordingNlu(inline=False)):
        await parse(nlu, MESSAGE, Session("c1"))
        assert nlu.thread is not None
        assert nlu.thread is not threading.current_thread()


class _SlowEmbedder:  # an e5-like embedder: no `inline`, so a parse may take milliseconds
    name = "slow"
    dim = 4


def test_the_trained_nlu_is_inline_unless_its_embedder_may_be_slow(tmp_path: Path) -> None:
    assert is_inline(TrainedNlu(tmp_path))
    assert is_inline(TrainedNlu(tmp_path, embedder=StaticEmbedder(tmp_path / "table")))
    assert not is_inline(TrainedNlu(tmp_path, embedder=_SlowEmbedder()))  # type: ignore[arg-type]
