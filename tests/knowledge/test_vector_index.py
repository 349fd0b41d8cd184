"""VectorIndex: cosine search over string ids (exact, HNSW, IVF), removal, filters, and a pickle-free save/load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from bot.errors import ProjectError
from knowledge.vector_index import FLAT_MAX, HNSW_MAX, IDS_FILE, INDEX_FILE, VectorIndex, choose_kind

ALL_KINDS = ["flat", "hnsw", "ivf"]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Single queries gain nothing from OpenMP threads, and on a busy machine each one waits for them."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


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


def clustered(n: int, dim: int = 32, *, seed: int, centres: int = 40) -> np.ndarray:
    """Seeded unit vectors around `centres` shared centres, so that nearest neighbours mean something."""
    world = np.random.default_rng(99)
    middles = world.normal(size=(centres, dim))
    rng = np.random.default_rng(seed)
    points = middles[rng.integers(centres, size=n)] + 1.0 * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], np.ndarray, np.ndarray]:
    vectors = clustered(3000, seed=1)
    return [f"v{i}" for i in range(len(vectors))], vectors, clustered(100, seed=2)


def recall_at_10(index: VectorIndex, exact: VectorIndex, queries: np.ndarray) -> float:
    found = 0
    for query in queries:
        truth = {item for item, _ in exact.search(query, 10)}
        found += len(truth & {item for item, _ in index.search(query, 10)})
    return found / (10 * len(queries))


def small(kind: str, n: int = 400) -> tuple[VectorIndex, np.ndarray]:
    vectors = clustered(n, seed=3)
    return VectorIndex.build(32, [f"d{i % (n // 2)}" for i in range(n)], vectors, kind=kind), vectors


def test_auto_kind_follows_the_collection_size() -> None:
    assert [choose_kind(n) for n in (0, FLAT_MAX - 1, FLAT_MAX, HNSW_MAX, HNSW_MAX + 1)] == [
        "flat",
        "flat",
        "hnsw",
        "hnsw",
        "ivf",
    ]
    assert VectorIndex.build(4, ["a"], np.ones((1, 4))).kind == "flat"
    with pytest.raises(ValueError, match="kind must be one of"):
        VectorIndex(4, kind="lsh")


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_reach_the_recall_of_exact_search(
    kind: str, corpus: tuple[list[str], np.ndarray, np.ndarray]
) -> None:
    ids, vectors, queries = corpus
    exact = VectorIndex.build(32, ids, vectors, kind="flat")
    index = VectorIndex.build(32, ids, vectors, kind=kind)
    assert index.kind == kind
    assert recall_at_10(index, exact, queries) >= 0.95
    index.ef_search, index.nprobe = 16, 8  # of 76 IVF lists: a search that really skips most vectors
    assert recall_at_10(index, exact, queries) >= 0.95
    top = index.search(queries[0], 3)
    assert top == sorted(top, key=lambda hit: -hit[1])


def test_search_settings_trade_recall_for_speed(corpus: tuple[list[str], np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = corpus
    exact = VectorIndex.build(32, ids, vectors, kind="flat")
    index = VectorIndex.build(32, ids, vectors, kind="ivf")
    index.nprobe = 1
    assert recall_at_10(index, exact, queries) < 0.9  # the setting reaches FAISS
    with pytest.raises(ValueError, match="positive"):
        index.ef_search = 0


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_load_roundtrip_for_every_kind(kind: str, tmp_path: Path) -> None:
    index, vectors = small(kind)
    index.ef_search, index.nprobe = 40, 3
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert (loaded.kind, loaded.dim, loaded.ids, loaded.ef_search, loaded.nprobe) == (kind, 32, index.ids, 40, 3)
    for row in (0, 150, 399):
        assert loaded.search(vectors[row], 5) == index.search(vectors[row], 5)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_removed_ids_are_never_returned(kind: str, tmp_path: Path) -> None:
    index, vectors = small(kind)
    gone = {f"d{i}" for i in range(0, 200, 7)}
    assert index.remove(gone) == 2 * len(gone)  # each id has two vectors
    assert len(index) == 400 - 2 * len(gone)
    assert not gone & set(index.ids)
    for row in range(0, 400, 9):
        hits = index.search(vectors[row], 10)
        assert len(hits) == 10
        assert not gone & {item for item, _ in hits}
    assert index.remove(gone) == 0
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert not gone & {item for row in range(0, 400, 9) for item, _ in loaded.search(vectors[row], 10)}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_add_after_load(kind: str, tmp_path: Path) -> None:
    index, _ = small(kind)
    index.remove({"d1"})
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    extra = clustered(5, seed=8)
    loaded.add([f"new{i}" for i in range(5)], extra)
    assert len(loaded) == 400 - 2 + 5
    assert loaded.search(extra[2], 1)[0][0] == "new2"
    assert loaded.ids[-5:] == tuple(f"new{i}" for i in range(5))


def test_hnsw_keeps_tombstones_then_compacts() -> None:
    index, vectors = small("hnsw")
    index.remove({"d0", "d1"})
    assert index.tombstones == 4
    assert index.compact() == 4
    assert index.tombstones == 0
    assert len(index) == 396
    index.remove({f"d{i}" for i in range(2, 50)})  # past COMPACT_SHARE: rebuilt at once
    assert index.tombstones == 0
    assert len(index) == 300
    assert index.search(vectors[399], 1)[0][0] == "d199"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_allowed_filter_fetches_until_k_are_found(kind: str) -> None:
    index, vectors = small(kind)
    wanted = {"d5", "d77", "d123", "d190"}  # far apart: most are not near the query
    hits = index.search(vectors[0], 3, allowed=wanted.__contains__)
    assert len(hits) == 3
    assert {item for item, _ in hits} <= wanted
    assert index.search(vectors[0], 20, allowed=wanted.__contains__)  # fewer than k exist: all that do
    assert index.search(vectors[0], 5, allowed=lambda _: False) == []


def test_ivf_made_empty_trains_on_its_first_vectors() -> None:
    index = VectorIndex(32, kind="ivf")
    assert index.search(np.ones(32), 3) == []
    vectors = clustered(500, seed=4)
    index.add([f"x{i}" for i in range(500)], vectors)
    assert index.search(vectors[42], 1)[0][0] == "x42"


def test_remove_wants_a_collection() -> None:
    index, _ = small("flat")
    with pytest.raises(TypeError, match="not one string"):
        index.remove("d1")


def test_load_rejects_a_sidecar_of_another_kind(tmp_path: Path) -> None:
    index, _ = small("hnsw")
    index.save(tmp_path)
    payload = json.loads((tmp_path / IDS_FILE).read_text(encoding="utf-8"))
    (tmp_path / IDS_FILE).write_text(json.dumps({**payload, "kind": "flat"}), encoding="utf-8")
    with pytest.raises(ProjectError, match="disagree"):
        VectorIndex.load(tmp_path)
    (tmp_path / IDS_FILE).write_text(json.dumps({**payload, "ids": payload["ids"][:-1]}), encoding="utf-8")
    with pytest.raises(ProjectError, match="disagree"):
        VectorIndex.load(tmp_path)


def test_load_reads_the_earlier_flat_format(tmp_path: Path) -> None:
    raw = faiss.IndexFlatIP(2)
    raw.add(np.eye(2, dtype=np.float32))
    faiss.write_index(raw, str(tmp_path / INDEX_FILE))
    (tmp_path / IDS_FILE).write_text(json.dumps({"format": 1, "dim": 2, "ids": ["a", "b"]}), encoding="utf-8")
    loaded = VectorIndex.load(tmp_path)
    assert (loaded.kind, loaded.ids) == ("flat", ("a", "b"))
    assert loaded.search(np.array([0.1, 1.0]), 1)[0][0] == "b"
