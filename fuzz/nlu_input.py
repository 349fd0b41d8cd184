"""Fuzzes the NLU input path without a trained model: each input, as text (bytes that are not UTF-8 become lone
surrogates, as a JSON "\\ud800" would), goes through the button-payload parser, `clean_text`, the rule
extractors (numbers, money, dates and times, phones, order ids, e-mail), the regex / lookup / gazetteer
extractor, language detection, the sentence and token features and e5's sentencepiece tokenizer, as
`TrainedNlu.parse_text` runs them. Nothing here may refuse: every exception is a crash, and so is an entity
outside the text or overlapping another from the same extractor.

    .venv/bin/python -m fuzz.nlu_input -runs=5000 fuzz/corpus/nlu_input
    mkdir -p /tmp/corpus && .venv/bin/python -m fuzz.nlu_input -max_total_time=600 -artifact_prefix=/tmp/ \\
        /tmp/corpus fuzz/corpus/nlu_input
"""

from __future__ import annotations

import itertools
import math
import sys
from datetime import datetime

import atheris
import numpy as np

with atheris.instrument_imports(include=["bot"]):
    from bot.events import Session
    from bot.nlu.entities import EntityExtractor
    from bot.nlu.extractors import RuleExtractor
    from bot.nlu.features import HashingFeaturizer, detect_language, hash_keys, init_jieba
    from bot.nlu.payload import parse_payload
    from bot.nlu.sentencepiece import QUERY_PREFIX, load_vocabulary
    from bot.nlu.text import clean_text
    from bot.nlu.tokens import token_bags, token_keys, tokenize
    from bot.types import Entity

MAX_CHARS = 1000  # kefu.yml's nlu.max_chars default
NOW = datetime(2024, 2, 29, 15, 30)  # relative dates ("明天", "next Friday") count from a leap day
INTENTS = ("greet", "check_order", "ask_product")
RULES = RuleExtractor()
EXTRACTOR = EntityExtractor(
    regexes=[("order_id", r"SO\d{8}")],
    lookups={"product": ["X1 Pro", "Nebula Buds", "星耀X1"]},
    gazetteer={"星耀手机": ("product", "X1 Pro")},
    synonyms={"x1pro": "X1 Pro", "星耀手机": "X1 Pro"},
)
FEATURIZER = HashingFeaturizer()
VOCABULARY = load_vocabulary()
TOKEN_DIM = 2**20  # bot.nlu.model.TOKEN_DIM (that module imports torch)


def _check(entities: tuple[Entity, ...], text: str) -> None:
    """Entities of one extractor: inside `text`, in reading order, not overlapping."""
    for entity in entities:
        assert entity.name, entity
        assert 0 <= entity.start < entity.end <= len(text), (entity, len(text))
    for one, other in itertools.pairwise(entities):
        assert one.end <= other.start, (one, other)


def test_one_input(data: bytes) -> None:
    raw = data.decode("utf-8", errors="surrogateescape")
    payload = parse_payload(raw, INTENTS, Session("fz"))
    assert payload is None or payload.intent in INTENTS
    text, warnings = clean_text(raw, MAX_CHARS)
    assert len(text) <= MAX_CHARS, len(text)
    assert not warnings or len(text) == MAX_CHARS, warnings
    text.encode()  # no lone surrogate is left for the tokenizers and the embedder
    _check(RULES.extract(text, now=NOW), text)
    _check(EXTRACTOR.extract(text), text)
    assert detect_language(text) in ("zh", "en")
    indices, values = FEATURIZER.featurize(text)
    assert len(indices) == len(values), (indices, values)
    assert all(0 <= i < FEATURIZER.dim for i in indices), indices
    assert all(math.isfinite(v) for v in values)
    _same(indices, values, hash_keys(FEATURIZER.keys(text), FEATURIZER.dim))  # the caches change nothing
    tokens = tokenize(text)
    keys = token_keys(text, tokens)
    assert len(keys) == len(tokens), (keys, tokens)
    assert all(text[t.start : t.end] == t.text for t in tokens), tokens
    owners, indices, values = token_bags(text, tokens, TOKEN_DIM)
    for i, bag in enumerate(keys):
        _same(indices[owners == i], values[owners == i], hash_keys(bag, TOKEN_DIM))
    pieces = VOCABULARY.tokenize(QUERY_PREFIX + text)  # word by word, remembered
    assert pieces == VOCABULARY._viterbi(VOCABULARY.normalize(QUERY_PREFIX + text)), text


def _same(indices: np.ndarray, values: np.ndarray, want: tuple[np.ndarray, np.ndarray]) -> None:
    assert np.array_equal(indices, want[0]), (indices, want)
    assert np.array_equal(values, want[1]), (values, want)


def main() -> None:
    init_jieba()  # once, before the clock of the first input starts
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
