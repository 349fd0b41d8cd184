"""The generator: the packaged SmolLM2 loaded with transformers, answering from facts."""

from __future__ import annotations

import pytest

from bot.actions.answer import AnswerAction, AnswerOptions
from bot.actions.responses import ResponseRenderer
from bot.errors import GenerationError
from bot.events import Session, UserUttered
from bot.generation.prompts import PromptBuilder
from bot.generation.transformers_lm import TransformersGenerator
from bot.protocols import DecodingParams, PromptContext
from bot.trace import TraceRecorder
from bot.types import Candidate, Domain, Fact, NluResult
from safety.grounding import GroundingCheck

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FACT = Fact("faq_ship_express", "Express shipping takes 1-2 business days and costs ¥15.", "faq", 0.88, "faq:x", "en")


@pytest.fixture(scope="module")
def generator() -> TransformersGenerator:
    model = TransformersGenerator(prompts=PromptBuilder(brand="KeFu Shop"))
    model.warm_up()
    return model


def test_prompt_carries_the_facts_with_their_ids_and_the_instruction() -> None:
    messages = PromptBuilder(brand="KeFu Shop").messages(PromptContext("How fast is express?", (FACT,), "en"))
    assert messages[0]["role"] == "system" and "[faq_ship_express] Express shipping" in messages[0]["content"]
    assert "ONLY the facts" in messages[0]["content"] and messages[-1] == {
        "role": "user",
        "content": "How fast is express?",
    }
    zh = PromptBuilder(brand="客服商城").messages(PromptContext("快递多久到", (FACT,), "zh"))
    assert "只能根据下面的资料" in zh[0]["content"]


def test_smollm2_answers_from_the_fact(generator: TransformersGenerator) -> None:
    context = PromptContext("How long does express shipping take?", (FACT,), "en")
    [candidate] = generator.generate(context, params=DecodingParams(max_new_tokens=40))
    assert "1-2" in candidate.text or "1 to 2" in candidate.text
    assert candidate.fact_ids == ("faq_ship_express",) and candidate.generator == "transformers:smollm2"


def test_streaming_yields_the_same_text_in_pieces(generator: TransformersGenerator) -> None:
    context = PromptContext("How long does express shipping take?", (FACT,), "en")
    params = DecodingParams(max_new_tokens=24)
    pieces = list(generator.stream(context, params=params))
    [whole] = generator.generate(context, params=params)
    assert len(pieces) > 3 and "".join(pieces).strip() == whole.text


class OneFact:
    def retrieve(self, query, *, entities=(), top_k=5, filters=None, language=None):
        return [FACT]


def ask(question: str) -> Session:
    nlu = NluResult(question, "ask_shipping", 0.9, language="en")
    return Session("g").with_events([UserUttered(text=question, nlu=nlu)])


def answer_action(generator) -> AnswerAction:
    renderer = ResponseRenderer(Domain(intents=()))
    return AnswerAction(OneFact(), generator, renderer, AnswerOptions(min_score=0.8), grounding=GroundingCheck())


async def test_answer_action_generates_when_no_fact_answers_exactly(generator: TransformersGenerator) -> None:
    trace = TraceRecorder("g")
    [said] = await answer_action(generator).run(ask("How long does express shipping take?"), Domain(()), trace)
    frozen = trace.freeze()
    assert said.template == "generated" and said.fact_ids == ("faq_ship_express",) and "1-2" in said.text
    assert frozen.candidates and frozen.candidates[0].text == said.text
    assert [s.name for s in frozen.stages] == ["retrieval", "generation"]
    assert [v.check for v in frozen.verdicts] == ["grounding"] and frozen.verdicts[0].allowed


class MadeUp:
    name = "made-up"

    def generate(self, context, *, n=1, params=None):
        return [Candidate("Express takes 30 minutes and is available 24/7.", ("faq_ship_express",), self.name)]


async def test_an_ungrounded_candidate_is_rejected_and_the_fact_is_quoted() -> None:
    trace = TraceRecorder("g")
    [said] = await answer_action(MadeUp()).run(ask("how quick is express?"), Domain(()), trace)
    assert said.text == FACT.text and said.template == "knowledge:faq"
    [verdict] = trace.freeze().verdicts
    assert not verdict.allowed and verdict.category == "ungrounded" and "24" in verdict.reason


def test_grounding_accepts_numbers_from_facts_or_slots_only() -> None:
    check = GroundingCheck()
    assert check.check("It costs ¥15 and takes 1-2 days.", stage="output", facts=[FACT]).allowed
    assert not check.check("It is 15% cheaper.", stage="output", facts=[FACT]).allowed
    assert not check.check("It costs ¥20.", stage="output", facts=[FACT]).allowed
    session = Session("s").with_events([])
    assert check.check("No numbers here.", stage="output", session=session).allowed


class Failing:
    name = "failing"

    def generate(self, context, *, n=1, params=None):
        raise GenerationError("the model server went away")


async def test_a_failing_generator_falls_back_to_quoting_the_fact() -> None:
    [said] = await answer_action(Failing()).run(ask("how quick is express?"), Domain(()), TraceRecorder("g"))
    assert said.text == FACT.text and said.fact_ids == ("faq_ship_express",)


def test_concurrent_warm_ups_load_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import transformers

    loads = []
    original = transformers.AutoModelForCausalLM.from_pretrained

    def counting(*args, **kwargs):
        loads.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", counting)
    model = TransformersGenerator(prompts=PromptBuilder())
    threads = [threading.Thread(target=model.warm_up) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [1]
