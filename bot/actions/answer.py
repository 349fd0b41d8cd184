"""`action_answer`: knowledge first. An exact FAQ or knowledge-graph answer is used as written; otherwise
the generator answers from the retrieved facts; with no usable fact the bot says it does not know."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from bot.actions.responses import ResponseRenderer
from bot.errors import GenerationError
from bot.events import BotUttered, Event, Session, UserUttered
from bot.protocols import DecodingParams, Generator, PromptContext, Retriever, SafetyCheck, TraceSink
from bot.types import LANGUAGE_SLOT, Candidate, Domain, Fact, Language

log = logging.getLogger(__name__)

HISTORY_TURNS = 4


@dataclass(frozen=True, slots=True)
class AnswerOptions:
    min_score: float = 0.82
    top_k: int = 3
    generator_languages: tuple[Language, ...] = ("en",)
    candidates: int = 1
    params: DecodingParams = field(default_factory=DecodingParams)


class AnswerAction:
    name = "action_answer"

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator | None,
        renderer: ResponseRenderer,
        options: AnswerOptions = AnswerOptions(),
        *,
        grounding: SafetyCheck | None = None,
    ) -> None:
        self._retriever = retriever
        self._generator = generator
        self._renderer = renderer
        self._options = options
        self._grounding = grounding

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        message = session.latest_message()
        if message is None:
            return []
        language: Language = "zh" if session.slots.get(LANGUAGE_SLOT) == "zh" else "en"
        entities = message.nlu.entities if message.nlu is not None else ()
        # the NLU's text: personal data masked, and after a clarification the question it clarified
        question = message.nlu.text if message.nlu is not None else message.text
        with trace.stage("retrieval"):
            facts = await asyncio.to_thread(
                self._retriever.retrieve, question, entities=entities, top_k=self._options.top_k, language=language
            )
        trace.add_facts(facts)
        usable = [f for f in facts if f.exact or f.score >= self._options.min_score]
        if usable and usable[0].exact:
            return [_quote(usable[0])]
        if usable and self._generator is not None and language in self._options.generator_languages:
            candidate = await self._generate(session, question, usable, language, trace)
            if candidate is not None:
                return [BotUttered(text=candidate.text, fact_ids=candidate.fact_ids, template="generated")]
        if usable:  # no generator for this language, or no grounded candidate: the closest fact as written
            return [BotUttered(text=usable[0].text, fact_ids=(usable[0].id,), template=f"knowledge:{usable[0].source}")]
        return (
            [self._renderer.render("utter_no_answer", session.slots)] if self._renderer.has("utter_no_answer") else []
        )

    async def _generate(
        self, session: Session, question: str, facts: list[Fact], language: Language, trace: TraceSink
    ) -> Candidate | None:
        if self._generator is None:
            return None
        context = PromptContext(question, tuple(facts), language, _history(session), dict(session.slots))
        with trace.stage("generation", self._generator.name):
            try:
                candidates = await asyncio.to_thread(
                    self._generator.generate, context, n=self._options.candidates, params=self._options.params
                )
            except GenerationError as err:  # the facts are still there to quote
                log.warning("generation failed, quoting the best fact instead: %s", err)
                return None
        trace.add_candidates(candidates)
        grounded = [c for c in candidates if c.text.strip() and self._is_grounded(c, session, facts, trace)]
        return max(grounded, key=lambda c: c.score) if grounded else None

    def _is_grounded(self, candidate: Candidate, session: Session, facts: list[Fact], trace: TraceSink) -> bool:
        if self._grounding is None:
            return True
        verdict = self._grounding.check(candidate.text, stage="output", session=session, facts=facts)
        trace.add_verdicts([verdict])
        return verdict.allowed


def _quote(fact: Fact) -> BotUttered:
    return BotUttered(text=fact.text, fact_ids=(fact.id,), template=f"knowledge:{fact.source}")


def _history(session: Session) -> tuple[tuple[str, str], ...]:
    said = [
        ("user" if isinstance(e, UserUttered) else "bot", e.text)
        for e in session.events
        if isinstance(e, UserUttered | BotUttered)
    ]
    return tuple(said[-2 * HISTORY_TURNS - 1 : -1])  # the question itself is passed apart
