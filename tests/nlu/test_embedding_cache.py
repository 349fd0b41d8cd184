"""The on-disk cache of query embeddings: computed once per text and embedder, read back later, never fatal."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.nlu.embedding_cache import cache_folder, cached_embeddings


class HashEmbedder:
    """A deterministic 8-dimensional embedder that records what it was asked to embed."""

    name = "hash/8"
    dim = 8

    def __init__(self) -> None:
        self.asked: list[str] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.asked += texts
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:32], dtype=np.float32) for t in texts]
        return np.array([np.nan_to_num(r) for r in rows], dtype=np.float32).reshape(len(texts), 8)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_queries(texts)


def test_texts_are_embedded_once_and_read_back(tmp_path: Path) -> None:
    embedder = HashEmbedder()
    first = cached_embeddings(embedder, ["退货", "refund", "退货"], embedder.embed_queries, tmp_path)
    assert embedder.asked == ["退货", "refund"] and first.shape == (3, 8)
    assert np.array_equal(first[0], first[2])
    again = HashEmbedder()
    second = cached_embeddings(again, ["refund", "新的", "退货"], again.embed_queries, tmp_path)
    assert again.asked == ["新的"]
    assert np.array_equal(second[0], first[1]) and np.array_equal(second[2], first[0])
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings-hash_8.npz"]


def test_a_broken_or_unwritable_cache_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "embeddings-hash_8.npz").write_bytes(b"not a zip")
    embedder = HashEmbedder()
    vectors = cached_embeddings(embedder, ["a", "b"], embedder.embed_queries, tmp_path)
    assert vectors.shape == (2, 8) and "ignoring the unreadable embedding cache" in caplog.text
    assert cached_embeddings(HashEmbedder(), ["a"], HashEmbedder().embed_queries, tmp_path).shape == (1, 8)
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    assert cached_embeddings(embedder, ["c"], embedder.embed_queries, blocked / "sub").shape == (1, 8)
    assert "could not write the embedding cache" in caplog.text


def test_the_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEFU_CACHE_DIR", str(tmp_path / "k"))
    assert cache_folder() == tmp_path / "k"
    monkeypatch.delenv("KEFU_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_folder() == tmp_path / "x" / "kefu"
