from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jieba
import numpy as np
import pytest

from bot.nlu.features import FeaturizerConfig, HashingFeaturizer, detect_language, words

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
