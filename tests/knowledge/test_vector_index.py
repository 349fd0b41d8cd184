"""VectorIndex: cosine search over string ids, and a pickle-free save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ProjectError
from knowledge.vector_index import IDS_FILE, INDEX_FILE, VectorIndex


def random_index(n: int = 50, dim: int = 16) -> tuple[VectorIndex, np.ndarray]:
    vectors = np.random.default_rng(7).normal(size=(n, dim)).astype(np.float32)
    index = VectorIndex(dim)
    index.add([f"doc{i}" for i in range(n)], vectors)
    return index, vectors


def test_search_returns_cosine_best_first() -> None:
    index = VectorIndex(3)
    index.add(["x", "xy", "y"], np.array([[2, 0, 0], [1, 1, 0], [0, 5, 0]], dtype=np.float32))
    hits = index.search(np.array([3, 0, 0], dtype=np.float32), 3)
    assert [item for item, _ in hits] == ["x", "xy", "y"]
    assert [score for _, score in hits] == pytest.approx([1.0, 2**-0.5, 0.0], abs=1e-6)


def test_search_caps_k_and_handles_an_empty_index() -> None:
    assert VectorIndex(4).search(np.ones(4, dtype=np.float32), 5) == []
    index = VectorIndex(2)
    index.add(["a", "a"], np.array([[1, 0], [0, 1]], dtype=np.float32))  # ids may repeat
    assert [item for item, _ in index.search(np.array([1.0, 0.2]), 10)] == ["a", "a"]
    assert index.search(np.array([1.0, 0.0]), 0) == []


def test_shape_errors() -> None:
    index = VectorIndex(3)
    with pytest.raises(ValueError, match="dimension 3"):
        index.add(["a"], np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        index.add(["a", "b"], np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="positive"):
        VectorIndex(0)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    index, vectors = random_index()
    index.save(tmp_path / "idx")
    assert sorted(path.name for path in (tmp_path / "idx").iterdir()) == sorted([INDEX_FILE, IDS_FILE])
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.dim == 16
    assert loaded.ids == index.ids
    for row in (0, 17, 49):
        assert loaded.search(vectors[row], 5) == index.search(vectors[row], 5)
        assert loaded.search(vectors[row], 1)[0][0] == f"doc{row}"


def test_ids_are_plain_json(tmp_path: Path) -> None:
    index = VectorIndex(2)
    index.add(["退货", "refund"], np.eye(2, dtype=np.float32))
    index.save(tmp_path)
    assert json.loads((tmp_path / IDS_FILE).read_text(encoding="utf-8"))["ids"] == ["退货", "refund"]


def test_load_rejects_missing_or_inconsistent_files(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="delete the folder"):
        VectorIndex.load(tmp_path / "nowhere")
    index, _ = random_index(n=3)
    index.save(tmp_path)
    (tmp_path / IDS_FILE).write_text(json.dumps({"format": 1, "dim": 16, "ids": ["only-one"]}), encoding="utf-8")
    with pytest.raises(ProjectError, match="disagree"):
        VectorIndex.load(tmp_path)
    (tmp_path / INDEX_FILE).write_bytes(b"not a faiss index")
    with pytest.raises(ProjectError, match="cannot read"):
        VectorIndex.load(tmp_path)
