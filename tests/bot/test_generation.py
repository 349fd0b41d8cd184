"""The generator: the packaged SmolLM2 loaded with transformers, answering from facts."""

from __future__ import annotations

import pytest

from bot.actions.answer import AnswerAction, AnswerOptions
from bot.actions.responses import ResponseRenderer
from bot.errors import GenerationError
from bot.events import Session, UserUttered
from bot.generation.chat import ChatGenerator
from bot.generation.prompts import PromptBuilder
from bot.generation.transformers_lm import TransformersChat
from bot.protocols import DecodingParams, PromptContext
from bot.trace import TraceRecorder
from bot.types import Candidate, Domain, Fact, NluResult
from safety.grounding import GroundingCheck

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FACT = Fact("faq_ship_express", "Express shipping takes 1-2 business days and costs ¥15.", "faq", 0.88, "faq:x", "en")


@pytest.fixture(scope="module")
def generator() -> ChatGenerator:
    model = ChatGenerator(TransformersChat(), PromptBuilder(brand="KeFu Shop"))
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


def test_smollm2_answers_from_the_fact(generator: ChatGenerator) -> None:
    context = PromptContext("How long does express shipping take?", (FACT,), "en")
    [candidate] = generator.generate(context, params=DecodingParams(max_new_tokens=40))
    assert "1-2" in candidate.text or "1 to 2" in candidate.text
    assert candidate.fact_ids == ("faq_ship_express",) and candidate.generator == "transformers:smollm2"


def test_streaming_yields_the_same_text_in_pieces(generator: ChatGenerator) -> None:
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
    return AnswerAction(OneFact(), generator, renderer, AnswerOptions(min_score=0.8), checks=[GroundingCheck()])


async def test_answer_action_generates_when_no_fact_answers_exactly(generator: ChatGenerator) -> None:
    trace = TraceRecorder("g")
    [said] = await answer_action(generator).run(ask("How long does express shipping take?"), Domain(()), trace)
    frozen = trace.freeze()
    assert said.template == "generated" and said.fact_ids == ("faq_ship_express",) and "1-2" in said.text
    assert frozen.candidates and frozen.candidates[0].text == said.text
    assert [s.name for s in frozen.stages] == ["retrieval", "generation", "rerank"]
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
    model = TransformersChat()
    threads = [threading.Thread(target=model.warm_up) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [1]


def test_decoding_settings_reach_the_model(generator: ChatGenerator) -> None:
    context = PromptContext("How long does express shipping take?", (FACT,), "en")
    [short] = generator.generate(context, params=DecodingParams(max_new_tokens=3))
    assert short.finish_reason == "length" and generator.model.count_tokens(short.text) <= 3
    [stopped] = generator.generate(context, params=DecodingParams(max_new_tokens=40, stop=("1-2", "days")))
    assert stopped.finish_reason == "stop" and "1-2" not in stopped.text and "days" not in stopped.text
    sampled = DecodingParams(max_new_tokens=8, temperature=1.0, top_p=0.95, seed=7)
    first = generator.generate(context, n=2, params=sampled)
    again = generator.generate(context, n=2, params=sampled)
    assert len(first) == 2 and [c.text for c in first] == [c.text for c in again]  # the seed makes it repeatable
    assert len({c.text for c in first}) > 1


def test_openai_penalties_lower_the_logits_of_generated_tokens_only() -> None:
    import torch

    from bot.generation.penalties import OpenAIPenalties

    ids = torch.tensor([[5, 6, 7, 7, 7, 8]])  # prompt 5 6; generated 7 7 7 8
    scores = torch.zeros(1, 10)
    out = OpenAIPenalties(2, frequency=0.5, presence=1.0)(ids, scores)
    assert out[0, 7].item() == -(3 * 0.5 + 1.0) and out[0, 8].item() == -1.5
    assert out[0, 5].item() == 0 and out[0, 6].item() == 0 and out[0, 9].item() == 0


def test_a_frequency_penalty_changes_what_greedy_decoding_repeats(generator: ChatGenerator) -> None:
    messages = [{"role": "user", "content": "Write the word yes fifty times, separated by spaces."}]
    plain = generator.model.complete(messages, params=DecodingParams(max_new_tokens=24))[0].text
    penalised = generator.model.complete(messages, params=DecodingParams(max_new_tokens=24, frequency_penalty=1.5))
    assert plain.lower().count("yes") >= 3 and penalised[0].text != plain


def test_int8_quantisation_loads_and_answers() -> None:
    import torch

    model = TransformersChat(quantization="int8")
    messages = [{"role": "user", "content": "Say hello to a customer."}]
    [completion] = model.complete(messages, params=DecodingParams(max_new_tokens=12))
    assert model.name == "transformers:smollm2:int8" and completion.text.strip()
    layers = [m for m in model._model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(layers) >= 30  # every projection of every block runs in int8
