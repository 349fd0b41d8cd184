"""The answer strategy: exact knowledge as written, else N candidates reranked and checked, else a clarifying
question or "I don't know" with a human offered; streaming that never shows a blocked sentence."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import ClassVar

import pytest

from bot.actions.answer import AnswerAction, AnswerOptions
from bot.actions.responses import ResponseRenderer
from bot.events import Session, SlotSet, UserUttered
from bot.generation.chat import ChatGenerator, Completion
from bot.generation.prompts import PromptBuilder, estimate_tokens
from bot.generation.rerank import HeuristicReranker, repetition
from bot.generation.sentences import SentenceBuffer, complete_sentences, split_sentences
from bot.generation.stops import StopCutter
from bot.protocols import DecodingParams, PromptContext
from bot.trace import TraceRecorder
from bot.types import LANGUAGE_SLOT, Candidate, Domain, Fact, NluResult
from safety.grounding import GroundingCheck
from safety.lexicon import Lexicon, LexiconCheck, Term

EXPRESS = Fact("faq_express", "Express shipping takes 1-2 business days and costs ¥15.", "faq", 0.88, "faq:x", "en",
               title="How fast is express shipping?")  # fmt: skip
STANDARD = Fact("faq_standard", "Standard shipping takes 3-5 business days and is free over ¥99.", "faq", 0.86,
                "faq:y", "en", title="How long does standard shipping take?")  # fmt: skip


class Scripted:
    """A chat model that answers from a script: the selection logic is under test here, not a model."""

    name = "scripted"

    def __init__(self, *answers: str, delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.calls: list[list[dict[str, str]]] = []

    def complete(self, messages, *, n=1, params=None):
        self.calls.append(list(messages))
        return [Completion(text) for text in self.answers[:n]]

    def stream_chat(self, messages, *, params=None):
        self.calls.append(list(messages))
        for word in self.answers[0].split(" "):
            time.sleep(self.delay)
            yield word + " "

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)


class Facts:
    def __init__(self, *facts: Fact) -> None:
        self.facts = list(facts)

    def retrieve(self, query, *, entities=(), top_k=5, filters=None, language=None):
        return self.facts[:top_k]


def ask(question: str, language: str = "en") -> Session:
    nlu = NluResult(question, "ask_shipping", 0.9, language=language)
    return Session("a").with_events([SlotSet(name=LANGUAGE_SLOT, value=language), UserUttered(text=question, nlu=nlu)])


def action(model: Scripted, *facts: Fact, candidates: int = 1, checks=None) -> AnswerAction:
    options = AnswerOptions(min_score=0.8, candidates=candidates, params=DecodingParams(temperature=0.7))
    generator = ChatGenerator(model, PromptBuilder(brand="KeFu Shop"))
    checks = [GroundingCheck()] if checks is None else checks
    return AnswerAction(Facts(*facts), generator, ResponseRenderer(Domain(())), options, checks=checks)


async def test_the_best_ranked_candidate_that_passes_every_check_is_said() -> None:
    model = Scripted(
        "Express express express express express express express express shipping shipping shipping.",
        "Express shipping takes 1-2 business days and costs ¥15.",
        "Express shipping takes 1 day and costs ¥9.",  # ranks well on words, but its numbers are made up
    )
    trace = TraceRecorder("a")
    [said] = await action(model, EXPRESS, candidates=3).run(ask("How fast is express?"), Domain(()), trace)
    assert said.text == "Express shipping takes 1-2 business days and costs ¥15." and said.template == "generated"
    frozen = trace.freeze()
    assert len(frozen.candidates) == 3 and frozen.candidates[0].score >= frozen.candidates[-1].score
    assert frozen.candidates[-1].text.startswith("Express express")  # repetition ranks last
    assert [s.name for s in frozen.stages] == ["retrieval", "generation", "rerank"]


async def test_a_lexicon_block_on_the_best_candidate_moves_to_the_next() -> None:
    lexicon = LexiconCheck(Lexicon([Term("lightning", "compliance", "en")]))
    model = Scripted(
        "Express shipping takes 1-2 business days and costs ¥15, lightning fast.",
        "Express is quick, usually a day or two.",
    )
    trace = TraceRecorder("a")
    [said] = await action(model, EXPRESS, candidates=2, checks=[GroundingCheck(), lexicon]).run(
        ask("How fast is express?"), Domain(()), trace
    )
    assert said.text == "Express is quick, usually a day or two."
    assert trace.freeze().candidates[0].text.endswith("lightning fast.")  # ranked first, then blocked
    assert any(not v.allowed and v.check == lexicon.name for v in trace.freeze().verdicts)


async def test_when_no_candidate_survives_the_closest_questions_are_offered() -> None:
    model = Scripted("It takes 7 days.", "It costs ¥30.")
    [said] = await action(model, EXPRESS, STANDARD, candidates=2).run(ask("how long is shipping"), Domain(()),
                                                                      TraceRecorder("a"))  # fmt: skip
    assert said.template == "did_you_mean" and said.text == "Did you mean one of these?"
    assert [b.title for b in said.buttons] == [EXPRESS.title, STANDARD.title]
    assert [b.payload for b in said.buttons] == [EXPRESS.title, STANDARD.title]  # a click asks that question


async def test_with_one_fact_and_no_surviving_candidate_the_fact_is_quoted() -> None:
    [said] = await action(Scripted("It takes 7 days."), EXPRESS).run(ask("express?"), Domain(()), TraceRecorder("a"))
    assert said.text == EXPRESS.text and said.template == "knowledge:faq"


async def test_without_usable_facts_the_bot_says_it_does_not_know_and_offers_a_human() -> None:
    weak = Fact("faq_x", "Gift wrapping costs ¥5.", "faq", 0.5, "faq:x", "en", title="Gift wrapping?")
    model = Scripted("Anything.")
    [said] = await action(model, weak).run(ask("Do you have a store in Berlin?"), Domain(()), TraceRecorder("a"))
    assert said.template == "utter_no_answer" and "human agent" in said.text
    [zh] = await action(model, weak).run(ask("柏林有门店吗？", "zh"), Domain(()), TraceRecorder("a"))
    assert "人工客服" in zh.text
    assert model.calls == []  # nothing to ground an answer on: the model is not even asked


async def test_a_truncated_candidate_keeps_its_complete_sentences() -> None:
    class Cut(Scripted):
        def complete(self, messages, *, n=1, params=None):
            return [Completion("Express shipping takes 1-2 business days. It costs ¥15 and you", "length")]

    [said] = await action(Cut(), EXPRESS).run(ask("express?"), Domain(()), TraceRecorder("a"))
    assert said.text == "Express shipping takes 1-2 business days."


async def test_streaming_shows_checked_sentences_and_stops_before_an_ungrounded_one() -> None:
    model = Scripted("Express shipping takes 1-2 business days. It costs ¥15. Orders before 9 ship the same day. Bye.")
    shown: list[tuple[str, str]] = []
    trace = TraceRecorder("a", on_partial=lambda rid, text: shown.append((rid, text)))
    [said] = await action(model, EXPRESS).run(ask("How fast is express?"), Domain(()), trace)
    texts = [text for _, text in shown]
    assert texts[:2] == ["Express shipping takes 1-2 business days. ", "It costs ¥15. "]
    assert not any("9" in t for t in texts) and not any("Bye" in t for t in texts)  # nothing past the block
    assert texts[-1] == "For anything else, I can connect you with a human agent."
    assert {rid for rid, _ in shown} == {said.reply_id}
    assert said.text == "Express shipping takes 1-2 business days. It costs ¥15. " + texts[-1]
    blocked = [v for v in trace.freeze().verdicts if not v.allowed]
    assert [v.category for v in blocked] == ["ungrounded"] and "9" in blocked[0].reason


async def test_streaming_whose_first_sentence_is_blocked_shows_nothing_and_falls_back() -> None:
    shown: list[str] = []
    trace = TraceRecorder("a", on_partial=lambda rid, text: shown.append(text))
    [said] = await action(Scripted("It takes 7 days. Fine."), EXPRESS).run(ask("express?"), Domain(()), trace)
    assert shown == [] and said.text == EXPRESS.text


async def test_generation_runs_off_the_event_loop() -> None:
    """A slow streamed generation leaves the loop free: a ticker keeps ticking while it runs."""
    model = Scripted("Express shipping takes 1-2 business days and costs ¥15.", delay=0.05)
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    trace = TraceRecorder("a", on_partial=lambda rid, text: None)
    await action(model, EXPRESS).run(ask("How fast is express?"), Domain(()), trace)
    done.set()
    await task
    assert len(ticks) >= 10  # ~0.4 s of generation; a blocked loop would have ticked once
    assert threading.active_count() >= 1


@pytest.mark.parametrize("cheap", [True, False])
async def test_a_cheap_search_runs_on_the_event_loop_and_another_in_a_thread(cheap: bool) -> None:
    class Watched(Facts):
        threads: ClassVar[list[int]] = []

        def inline(self, query: str) -> bool:
            return cheap

        def retrieve(self, query, **kwargs):
            self.threads.append(threading.get_ident())
            return super().retrieve(query, **kwargs)

    retriever = Watched(EXPRESS)
    answer = AnswerAction(retriever, None, ResponseRenderer(Domain(())), AnswerOptions(min_score=0.8))
    said = await answer.run(ask("How fast is express?"), Domain(()), TraceRecorder("a"))
    assert said and (retriever.threads == [threading.get_ident()]) is cheap


def test_prompt_fits_the_token_budget_dropping_old_turns_then_weak_facts() -> None:
    facts = tuple(
        Fact(f"f{i}", f"Fact number {i}: " + "words " * 60, "faq", 0.9 - i / 100, "c", "en") for i in range(5)
    )
    history = tuple((("user" if i % 2 == 0 else "bot"), f"turn {i} " + "chat " * 40) for i in range(8))
    context = PromptContext("What is the newest question?", facts, "en", history)
    roomy = PromptBuilder(max_prompt_tokens=10_000).messages(context)
    assert len(roomy) == 10 and all(f"[f{i}]" in roomy[0]["content"] for i in range(5))
    tight = PromptBuilder(max_prompt_tokens=400).messages(context)
    assert sum(estimate_tokens(m["content"]) + 4 for m in tight) <= 400
    assert tight[-1]["content"] == "What is the newest question?" and len(tight) == 2  # every old turn went first
    kept = [i for i in range(5) if f"[f{i}]" in tight[0]["content"]]
    assert kept == list(range(len(kept))) and 1 <= len(kept) < 5  # then the weakest facts
    tiny = PromptBuilder(max_prompt_tokens=160).messages(context)
    assert "[f0]" in tiny[0]["content"] and sum(estimate_tokens(m["content"]) + 4 for m in tiny) <= 160


def test_persona_voice_and_slots_reach_the_prompt_in_each_language() -> None:
    from bot.generation.prompts import Persona

    builder = PromptBuilder(persona=Persona("星耀商城", {"zh": "语气亲切，称呼顾客为“亲”。", "en": "Warm and brief."}))
    zh = builder.messages(PromptContext("多久到", (EXPRESS,), "zh", slots={"order_id": "SO12345678"}))[0]["content"]
    assert "星耀商城" in zh and "称呼顾客为“亲”" in zh and "order_id：SO12345678" in zh
    en = builder.messages(PromptContext("how fast", (EXPRESS,), "en"))[0]["content"]
    assert "Warm and brief." in en and "[faq_express]" in en and "What we know" not in en


def test_sentences_split_at_chinese_and_english_ends_but_not_inside_numbers() -> None:
    assert split_sentences("It costs ¥15.5! 好的。还有吗？ ok") == ["It costs ¥15.5! ", "好的。", "还有吗？ ", "ok"]
    buffer, out = SentenceBuffer(), []
    for piece in ["It co", "sts 3", ".5 yuan. Fa", "st! 好", "的。x"]:
        out += list(buffer.feed(piece))
    assert out == ["It costs 3.5 yuan. ", "Fast! ", "好的。"] and buffer.flush() == "x"
    assert complete_sentences("It takes 2 days. It costs") == "It takes 2 days."


def test_stop_sequences_cut_whole_and_streamed_text_alike() -> None:
    cutter = StopCutter(["\nUser:", "###"])
    text = "Sure, it ships today.\nUser: and more"
    assert cutter.cut(text) == ("Sure, it ships today.", True)
    pieces = ["Sure, it", " ships today.\nUs", "er: and more"]
    assert "".join(StopCutter(["\nUser:"]).stream(pieces)) == "Sure, it ships today."


def test_heuristic_ranking_prefers_supported_short_non_repetitive_answers() -> None:
    context = PromptContext("How fast is express?", (EXPRESS,), "en")
    good = Candidate("Express shipping takes 1-2 business days.", (), "m")
    off_topic = Candidate("We love our customers and our beautiful products.", (), "m")
    looping = Candidate("Express express express express express express shipping.", (), "m")
    scores = HeuristicReranker().score(context, [good, off_topic, looping])
    assert scores[0] > scores[1] and scores[0] > scores[2]
    assert repetition("a b c a b c a b c") > 0.5 and repetition("快递一到两天送达") == 0.0


pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # an un-awaited coroutine would be a bug
