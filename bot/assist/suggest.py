"""Script suggestions (话术推荐) for the operator console: replies an operator can edit and send, refreshed as
the customer writes. Three sources, each suggestion naming its own: the knowledge base (graph answers, FAQ
answers, document passages), what operators replied to similar questions before (the archive), and a draft
from the generator grounded on the same facts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.assist.suggest_archive import ArchiveReplyIndex, join_question
from bot.events import BotUttered, Event, OperatorMessage, SlotSet, UserUttered
from bot.protocols import Generator, PromptContext, Retriever
from bot.types import LANGUAGE_SLOT, Candidate, Fact, Language

if TYPE_CHECKING:
    from bot.wiring import Runtime

__all__ = ["Suggester", "Suggestion", "suggester_for"]

log = logging.getLogger(__name__)

HISTORY_TURNS = 3  # said turns before the question that a draft may use, as the answer action does
NO_SLOTS: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One reply an operator may edit and send, and where it comes from."""

    text: str
    source: str  # "faq", "kg", "doc", "archive", "generator"
    score: float
    ref: str = ""  # the fact id, "conversation_id#session" for an archived reply, the fact ids of a draft
    title: str = ""  # what it answers: the FAQ question, the section heading, the past customer question

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "source": self.source, "score": self.score, "ref": self.ref, "title": self.title}


class Suggester:
    """Suggestions for a customer's question. Each source is optional; a generator that fails or is slow is
    left out, never an error, since the other suggestions are worth showing on their own."""

    def __init__(
        self,
        retriever: Retriever | None = None,
        archive_index: ArchiveReplyIndex | None = None,
        generator: Generator | None = None,
        *,
        per_source: int = 3,
        generator_timeout_s: float = 8.0,
        min_fact_score: float = 0.82,
    ) -> None:
        """`min_fact_score`: facts scoring lower are not suggested (nor given to the generator) unless the
        retriever marks them exact, as the answer action does; the project's `knowledge.min_score`."""
        self.retriever = retriever
        self.archive_index = archive_index
        self.generator = generator
        self.per_source = per_source
        self.generator_timeout_s = generator_timeout_s
        self.min_fact_score = min_fact_score
        # One draft at a time: a draft that outlived its timeout still occupies the model, and queueing
        # more behind it on every keystroke would only make them all late.
        self._generating = threading.Lock()
        self._drafts: set[asyncio.Task[list[Candidate]]] = set()

    @property
    def generating(self) -> bool:
        """Whether a draft is still being written (possibly one whose suggestion call gave up waiting)."""
        return self._generating.locked()

    def warm_up(self) -> None:
        """Load the knowledge base's indexes; the generator is the runtime's to warm."""
        warm = getattr(self.retriever, "warm_up", None)
        if callable(warm):
            warm()

    async def suggest(
        self,
        question: str,
        *,
        language: Language,
        history: Sequence[tuple[str, str]] = (),
        slots: Mapping[str, Any] = NO_SLOTS,
        use_generator: bool = True,
    ) -> list[Suggestion]:
        """Knowledge first (graph and FAQ answers lead), then past operator replies, then a draft; near
        duplicates once, the first kept."""
        question = question.strip()
        if not question:
            return []
        facts, archived = await asyncio.to_thread(self._searched, question, language)
        drafts: list[Suggestion] = []
        if use_generator:
            drafts = await self._drafted(PromptContext(question, tuple(facts), language, tuple(history), dict(slots)))
        known = [Suggestion(f.text, f.source, f.score, f.id, f.title) for f in facts]
        return _unique([*known, *archived, *drafts])

    async def suggest_for(
        self, events: Sequence[Event], *, language: Language, use_generator: bool = True
    ) -> list[Suggestion]:
        """Suggestions for a conversation: its latest customer text (button payloads skipped), the turns said
        before it and its slots."""
        question, before = _latest_question(events)
        history = _said(events[:before])[-2 * HISTORY_TURNS :]
        return await self.suggest(
            question, language=language, history=history, slots=_slots(events), use_generator=use_generator
        )

    def _searched(self, question: str, language: Language) -> tuple[list[Fact], list[Suggestion]]:
        # One after the other in one thread, not side by side: both embed the question, and the second finds
        # it in the embedder's cache (side by side, both miss it and queue on the one model: p50 34 ms instead
        # of 14 ms on the shop, bench/suggest_benchmark.py).
        return self._facts(question, language), self._archived(question, language)

    def _facts(self, question: str, language: Language) -> list[Fact]:
        if self.retriever is None or self.per_source <= 0:
            return []
        # kg, faq and doc share one ranking: fetch enough that each source can fill its own share
        found = self.retriever.retrieve(question, top_k=3 * self.per_source, language=language)
        usable = [f for f in found if f.exact or f.score >= self.min_fact_score]
        taken: dict[str, int] = {}
        kept: list[Fact] = []
        for fact in usable:
            taken[fact.source] = taken.get(fact.source, 0) + 1
            if taken[fact.source] <= self.per_source:
                kept.append(fact)
        return kept

    def _archived(self, question: str, language: Language) -> list[Suggestion]:
        if self.archive_index is None:
            return []
        hits = self.archive_index.search(question, self.per_source, language=language)
        return [Suggestion(h.reply, "archive", h.score, h.ref, h.question) for h in hits]

    async def _drafted(self, context: PromptContext) -> list[Suggestion]:
        """The generator's draft, or nothing when there is no generator, no fact to ground it on (an
        ungrounded draft is what kefu avoids), the model is busy with an earlier one, it fails or is late."""
        if self.generator is None or not context.facts:
            return []
        if not self._generating.acquire(blocking=False):
            log.info("suggestions: the generator is still writing an earlier draft; no draft this time")
            return []
        draft = asyncio.ensure_future(asyncio.to_thread(self._generate, self.generator, context))
        self._drafts.add(draft)  # a late draft runs on: keep it referenced until done
        draft.add_done_callback(_forget(self._drafts))
        try:
            candidates = await asyncio.wait_for(asyncio.shield(draft), self.generator_timeout_s)
        except TimeoutError:
            log.warning("suggestions: no draft within %.1f s; left out", self.generator_timeout_s)
            return []
        except Exception:  # the console's edge: whatever broke, the other suggestions still go out
            log.warning("suggestions: the generator failed; left out", exc_info=True)
            return []
        return [Suggestion(c.text.strip(), "generator", c.score, ",".join(c.fact_ids)) for c in candidates[:1]]

    def _generate(self, generator: Generator, context: PromptContext) -> list[Candidate]:
        try:
            return generator.generate(context, n=1)
        finally:
            self._generating.release()  # here, not in the caller: a timed-out caller is gone before it ends


def suggester_for(runtime: Runtime, *, archive_index: ArchiveReplyIndex | None = None) -> Suggester:
    """The runtime's suggester: its knowledge base and generator, and an archive index on the knowledge
    base's embedder (one model in memory, and its query cache shared with retrieval)."""
    knowledge = runtime.knowledge
    if archive_index is None and knowledge is not None:
        archive_index = ArchiveReplyIndex(knowledge.embedder.embed_queries)
    min_score = runtime.project.config.knowledge.min_score
    return Suggester(knowledge, archive_index, runtime.generator, min_fact_score=min_score)


def _forget(drafts: set[asyncio.Task[list[Candidate]]]) -> Any:
    def done(task: asyncio.Task[list[Candidate]]) -> None:
        drafts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("suggestions: a draft failed after its caller stopped waiting", exc_info=task.exception())

    return done


def _unique(suggestions: Iterable[Suggestion]) -> list[Suggestion]:
    seen: set[str] = set()
    kept: list[Suggestion] = []
    for suggestion in suggestions:
        key = _key(suggestion.text)
        if key and key not in seen:
            seen.add(key)
            kept.append(suggestion)
    return kept


def _key(text: str) -> str:
    """What two texts that differ only in case, spacing, punctuation or width share (，and , alike)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def _typed(event: Event) -> str:
    """The text the customer typed, or "" for other events and for a button's payload ("/intent{...}"):
    what they clicked is not what they asked."""
    if isinstance(event, UserUttered) and not event.text.startswith("/"):
        return event.text.strip()
    return ""


def _latest_question(events: Sequence[Event]) -> tuple[str, int]:
    """The customer's latest typed message with those typed just before it (no reply in between), and the
    position where they begin."""
    texts: list[str] = []
    start = len(events)
    for position in range(len(events) - 1, -1, -1):
        event = events[position]
        if text := _typed(event):
            texts.insert(0, text)
            start = position
        elif texts and isinstance(event, BotUttered | OperatorMessage):
            break
    return join_question(texts), start


def _said(events: Sequence[Event]) -> list[tuple[str, str]]:
    said: list[tuple[str, str]] = []
    for event in events:
        if text := _typed(event):
            said.append(("user", text))
        elif isinstance(event, BotUttered | OperatorMessage) and event.text.strip():
            said.append(("bot", event.text.strip()))
    return said


def _slots(events: Sequence[Event]) -> dict[str, Any]:
    """The filled slots a draft may mention, as the answer action gives them (no bookkeeping slots)."""
    slots: dict[str, Any] = {}
    for event in events:
        if isinstance(event, SlotSet):
            slots[event.name] = event.value
    return {
        name: value
        for name, value in slots.items()
        if value is not None and name != LANGUAGE_SLOT and not name.startswith(("requested_", "_"))
    }
