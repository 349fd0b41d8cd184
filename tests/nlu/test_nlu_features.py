from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jieba
import numpy as np
import pytest

from bot.nlu.features import (
    HAN,
    FeaturizerConfig,
    HashingFeaturizer,
    bag,
    detect_language,
    hash_keys,
    owned_bags,
    words,
)
from bot.nlu.tokens import token_bags, token_keys, tokenize

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("我的订单到哪了", "zh"),
        ("where is my order?", "en"),
        ("我的X1 Pro坏了", "zh"),  # a Latin product name inside a Chinese sentence
        ("订单SO12345678退款", "zh"),
        ("my X1 Pro arrived broken, order number SO12345678, 谢谢", "en"),  # a polite Chinese word in English
        ("", "en"),
        ("12345 !!!", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_words_split_chinese_with_jieba_and_lowercase_latin() -> None:
    assert words("我想查物流") == jieba.lcut("我想查物流")
    assert "物流" in words("我想查物流")
    assert words("Where IS my order?") == ["where", "is", "my", "order"]
    assert words("我的X1 Pro坏了") == ["我", "的", "x1", "pro", "坏", "了"]


def test_keys_cover_han_ngrams_latin_char_wb_and_word_bigrams() -> None:
    keys = set(HashingFeaturizer().keys("查物流 track it"))
    assert {"c:查", "c:物流", "c:查物流"} <= keys  # Han 1-3 grams
    assert {"c: t", "c:tr", "c:ack ", "c: it "} <= keys  # Latin char_wb 2-4 grams, padded per word
    assert {"w:物流", "w:track", "b:track it"} <= keys
    assert "c:流 t" not in keys  # n-grams never cross from a Han run into a Latin word


def test_digits_are_normalised_to_shapes() -> None:
    featurizer = HashingFeaturizer()
    first, _ = featurizer.featurize("订单SO12345678")
    second, _ = featurizer.featurize("订单SO87654321")
    assert np.array_equal(first, second)


def test_featurize_is_sorted_l2_normalised_and_in_range() -> None:
    featurizer = HashingFeaturizer(FeaturizerConfig(dim=2**10))
    indices, values = featurizer.featurize("hello hello, 你好你好")
    assert indices.dtype == np.int64
    assert values.dtype == np.float32
    assert np.all(np.diff(indices) > 0)
    assert indices.min() >= 0
    assert indices.max() < 2**10
    assert float(np.linalg.norm(values)) == pytest.approx(1.0)


def test_featureless_text_gives_empty_vectors() -> None:
    indices, values = HashingFeaturizer().featurize("  !!! ")
    assert indices.size == 0
    assert values.size == 0


def test_hashing_is_stable_across_processes() -> None:
    """A model trained in one process must be served by another: no salted hash() anywhere."""
    text = "我的X1 Pro坏了 where is it"
    code = (
        "from bot.nlu.features import HashingFeaturizer; import sys; "
        "print(HashingFeaturizer().featurize(sys.argv[1])[0].tolist())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code, text],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {f"{HashingFeaturizer().featurize(text)[0].tolist()}\n"}


def test_config_roundtrips_through_json() -> None:
    config = FeaturizerConfig(dim=2**12, han_ngrams=(1, 2), word_bigrams=False)
    assert FeaturizerConfig.from_json(config.to_json()) == config


# Texts where a shortcut could part from the plain definition: whitespace of every kind (jieba is cut
# chunk by chunk), accents and underscores (outside jieba's Latin class), repeated n-grams, digits.
AWKWARD = [
    "我想查物流 track it",
    "我的X1 Pro坏了 where is it where is it",
    "café naïve résumé, e-mail a_b c__d 12:30 banana",
    "订单SO12345678退款\r\n谢谢\u3000你好\u00a0ok\tyes\x1cno",
    "ＹＯＵ Idiot 😀😀 ok",
    "我想查物流 track it 100元 明天 next Friday",
    "",
    "  !!! ",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_words_equal_jieba_on_the_whole_text(text: str) -> None:
    whole = [
        word
        for token in jieba.lcut(text)
        for word in ([token] if re.search(f"[{HAN}]", token) else re.findall(f"[^\\W{HAN}]+", token.lower()))
    ]
    assert words(text) == whole


@pytest.mark.parametrize(
    "config", [FeaturizerConfig(), FeaturizerConfig(dim=2**10, han_ngrams=(1, 2), latin_ngrams=(3, 5))]
)
def test_featurize_equals_hashing_the_keys(config: FeaturizerConfig) -> None:
    featurizer = HashingFeaturizer(config)
    for text in AWKWARD * 2:  # the second round comes from the caches
        indices, values = featurizer.featurize(text)
        want_indices, want_values = hash_keys(featurizer.keys(text), config.dim)
        assert np.array_equal(indices, want_indices)
        assert np.array_equal(values, want_values)
        assert values.dtype == np.float32


def test_token_bags_equal_hashing_each_tokens_keys() -> None:
    for text in AWKWARD * 2:  # the second round comes from the caches
        tokens = tokenize(text)
        owners, indices, values = token_bags(text, tokens, 2**20)
        for i, keys in enumerate(token_keys(text, tokens)):
            want_indices, want_values = hash_keys(keys, 2**20)
            assert np.array_equal(indices[owners == i], want_indices)
            assert np.array_equal(values[owners == i], want_values)
        assert np.all(np.diff(owners) >= 0)
        assert set(owners.tolist()) == set(range(len(tokens)))


def test_owned_bags_equal_one_bag_per_owner() -> None:
    owners = [0, 0, 0, 2, 2, 3, 3, 3, 3]
    buckets = [5, 1, 5, 7, 7, 9, 0, 9, 9]
    got_owners, indices, values = owned_bags(owners, buckets, 10)
    assert got_owners.tolist() == [0, 0, 2, 3, 3]
    for owner in (0, 2, 3):
        want_indices, want_values = bag([b for o, b in zip(owners, buckets, strict=True) if o == owner])
        assert np.array_equal(indices[got_owners == owner], want_indices)
        assert np.array_equal(values[got_owners == owner], want_values)
    assert [len(a) for a in owned_bags([], [], 10)] == [0, 0, 0]
