"""`action_answer`: knowledge first. An exact FAQ or knowledge-graph answer is used as written; otherwise N
candidates are generated from the retrieved facts, reranked, and the best one that passes the output checks
(grounding included) is said. When none does, the bot offers the closest FAQ questions, quotes the one close
fact, or says it does not know and offers a human. It never states what the facts do not."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.actions.answer_stream import stream_checked
from bot.actions.responses import ResponseRenderer
from bot.errors import GenerationError
from bot.events import BotUttered, Event, Session, UserUttered
from bot.generation.rerank import HeuristicReranker, Reranker
from bot.generation.sentences import complete_sentences
from bot.protocols import DecodingParams, Generator, PromptContext, Retriever, SafetyCheck, TraceSink
from bot.types import LANGUAGE_SLOT, Button, Candidate, Domain, Entity, Fact, Language
from safety.pipeline import SafetyPipeline

log = logging.getLogger(__name__)

HISTORY_TURNS = 4
MAX_CHOICES = 3
_DID_YOU_MEAN = {"zh": "您是想问下面哪个问题？", "en": "Did you mean one of these?"}
_NO_ANSWER = {
    "zh": "抱歉，这个问题我暂时没有找到答案。需要为您转接人工客服吗？",
    "en": "Sorry, I couldn't find an answer to that. Would you like me to connect you with a human agent?",
}


@dataclass(frozen=True, slots=True)
class AnswerOptions:
    min_score: float = 0.82
    top_k: int = 3
    generator_languages: tuple[Language, ...] = ("en",)
    candidates: int = 1
    params: DecodingParams = field(default_factory=DecodingParams)
    stream: bool = True
    deadline_s: float = 30.0  # for the generated text, from the start of generation


class AnswerAction:
    name = "action_answer"

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator | None,
        renderer: ResponseRenderer,
        options: AnswerOptions = AnswerOptions(),
        *,
        checks: Sequence[SafetyCheck] = (),
        reranker: Reranker | None = None,
    ) -> None:
        self._retriever = retriever
        self._generator = generator
        self._renderer = renderer
        self._options = options
        self._checks = SafetyPipeline(checks)
        self._reranker = reranker or HeuristicReranker()

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        message = session.latest_message()
        if message is None:
            return []
        language: Language = "zh" if session.slots.get(LANGUAGE_SLOT) == "zh" else "en"
        entities = message.nlu.entities if message.nlu is not None else ()
        # the NLU's text: personal data masked, and after a clarification the question it clarified
        question = message.nlu.text if message.nlu is not None else message.text
        with trace.stage("retrieval"):
            facts = await self._retrieve(question, entities, language)
        trace.add_facts(facts)
        usable = [f for f in facts if f.exact or f.score >= self._options.min_score]
        if not usable:
            return [self._no_answer(session, language)]
        if usable[0].exact:
            return [_quote(usable[0])]
        if self._generator is not None and language in self._options.generator_languages:
            context = PromptContext(question, tuple(usable), language, _history(session), _slots(session))
            said = await self._generated(context, session, trace)
            if said is not None:
                return [said]
        return [self._without_generation(usable, session, language)]

    async def _retrieve(self, question: str, entities: Sequence[Entity], language: Language) -> list[Fact]:
        """On the event loop when the retriever says it is cheap (about 0.3 ms of searching, where a worker
        thread would wait for the GIL behind other turns), otherwise in a thread (an e5 embedding takes 10 ms)."""
        search = functools.partial(
            self._retriever.retrieve, question, entities=entities, top_k=self._options.top_k, language=language
        )
        inline = getattr(self._retriever, "inline", None)
        if callable(inline) and inline(question):
            return search()
        return await asyncio.to_thread(search)

    async def _generated(self, context: PromptContext, session: Session, trace: TraceSink) -> BotUttered | None:
        assert self._generator is not None
        try:
            if trace.streaming and self._options.stream and self._options.candidates == 1:
                generated = stream_checked(self._generator, context, self._options.params, self._checks, session, trace)
            else:
                generated = self._best_candidate(context, session, trace)
            return await asyncio.wait_for(generated, self._options.deadline_s)
        except GenerationError as err:  # the facts are still there to quote
            log.warning("generation failed, answering without it: %s", err)
        except TimeoutError:  # the generator's thread finishes on its own; its text is dropped
            log.warning("no generated answer within %.1f s, answering without it", self._options.deadline_s)
        return None

    async def _best_candidate(self, context: PromptContext, session: Session, trace: TraceSink) -> BotUttered | None:
        """Generate N candidates, rerank them, and say the best one that passes the output checks."""
        assert self._generator is not None
        with trace.stage("generation", self._generator.name):
            candidates = await asyncio.to_thread(
                self._generator.generate, context, n=self._options.candidates, params=self._options.params
            )
        candidates = [dataclasses.replace(c, text=_finished(c)) for c in candidates if c.text.strip()]
        with trace.stage("rerank", self._reranker.name):
            scores = await asyncio.to_thread(self._reranker.score, context, candidates) if candidates else []
        ranked = sorted(
            (dataclasses.replace(c, score=s) for c, s in zip(candidates, scores, strict=True)), key=lambda c: -c.score
        )
        trace.add_candidates(ranked)
        for candidate in ranked:
            outcome = self._checks.run(candidate.text, stage="output", session=session, facts=context.facts)
            trace.add_verdicts(outcome.verdicts)
            if outcome.allowed:
                return BotUttered(text=outcome.text, fact_ids=candidate.fact_ids, template="generated")
        return None

    def _without_generation(self, usable: list[Fact], session: Session, language: Language) -> BotUttered:
        """No generator for the language, or no candidate survived: offer the closest questions or quote."""
        titles = list(dict.fromkeys(f.title for f in usable if f.source == "faq" and f.title))[:MAX_CHOICES]
        if len(titles) > 1:
            buttons = tuple(Button(title=title, payload=title) for title in titles)
            if self._renderer.has("utter_did_you_mean"):
                prompt = self._renderer.render("utter_did_you_mean", session.slots)
                return dataclasses.replace(prompt, buttons=prompt.buttons + buttons)
            return BotUttered(text=_DID_YOU_MEAN[language], buttons=buttons, template="did_you_mean")
        return _quote(usable[0])

    def _no_answer(self, session: Session, language: Language) -> BotUttered:
        if self._renderer.has("utter_no_answer"):
            return self._renderer.render("utter_no_answer", session.slots)
        return BotUttered(text=_NO_ANSWER[language], template="utter_no_answer")


def _quote(fact: Fact) -> BotUttered:
    return BotUttered(text=fact.text, fact_ids=(fact.id,), template=f"knowledge:{fact.source}")


def _finished(candidate: Candidate) -> str:
    """A candidate the token limit cut keeps its complete sentences only."""
    return complete_sentences(candidate.text) if candidate.finish_reason == "length" else candidate.text.strip()


def _slots(session: Session) -> dict[str, object]:
    """What the prompt may mention about the request: filled slots, not bookkeeping ones."""
    return {
        name: value
        for name, value in session.slots.items()
        if value is not None and name != LANGUAGE_SLOT and not name.startswith(("requested_", "_"))
    }


def _history(session: Session) -> tuple[tuple[str, str], ...]:
    said = [
        ("user" if isinstance(e, UserUttered) else "bot", e.text)
        for e in session.events
        if isinstance(e, UserUttered | BotUttered)
    ]
    return tuple(said[-2 * HISTORY_TURNS - 1 : -1])  # the question itself is passed apart
