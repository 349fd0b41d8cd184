"""A FAISS wrapper: string ids, cosine scores, exact or approximate search, and a pickle-free file format."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from bot.errors import ProjectError

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
KINDS = ("flat", "hnsw", "ivf")
# Measured in bench/knowledge_benchmark.py (384 dims, one thread). Exact search scans every vector: p99 2.5 ms
# at 10k but 29 ms at 100k, so it stops well before the 10 ms retrieval budget is spent.
FLAT_MAX = 20_000
HNSW_MAX = 5_000_000  # above this, the HNSW graph's memory (about 1.8 KB a vector) and build time grow costly
HNSW_M = 32
EF_CONSTRUCTION = 80
EF_SEARCH = 192  # at 1M: recall@10 0.97, p99 2.4 ms (128: 0.949; 256: 0.98, p99 2.7 ms)
NPROBE = 64  # at 1M, 4000 lists: recall@10 1.0, p99 6.8 ms; looser clusters (100k) need more for 0.95
COMPACT_SHARE = 0.2  # HNSW cannot delete: rebuild once this share of its vectors are tombstones
_BATCH = 50_000
_TRAIN_PER_LIST = 39  # faiss's k-means wants at least this many training points per list
_SEED = 1234
_FORMAT = 2
_FORMAT_FLAT_ONLY = 1  # earlier files: a bare IndexFlatIP, one id per row


def choose_kind(count: int) -> str:
    """The index kind `build` picks for `count` vectors: exact while cheap, then HNSW, then IVF."""
    if count < FLAT_MAX:
        return "flat"
    return "hnsw" if count <= HNSW_MAX else "ivf"


class VectorIndex:
    """Vectors with string ids, searched by cosine similarity (inner product of L2-normalised vectors).

    Ids need not be unique: several vectors (a question and its paraphrases) may share one id.
    `kind` is "flat" (exact), "hnsw" (a graph, fast and memory-hungry) or "ivf" (inverted lists, trained
    on the first vectors added; later additions must come from a similar distribution). Each vector gets
    an int64 row number inside FAISS (`IndexIDMap2`), mapped to its string id here. Removal is immediate
    for flat and IVF; HNSW keeps tombstones, filters them out and rebuilds past `COMPACT_SHARE`.
    Searches may run concurrently; `add`, `remove` and `compact` need the caller to exclude searches.
    """

    def __init__(self, dim: int, *, kind: str = "flat") -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.dim = dim
        self._kind = kind
        self._index: Any = _new_index(kind, dim, nlist=1)
        self._labels: list[str | None] = []  # by row number; None once removed
        self._live = 0
        self._ef_search = EF_SEARCH
        self._nprobe = NPROBE

    @classmethod
    def build(
        cls, dim: int, ids: Sequence[str], vectors: np.ndarray, *, kind: str = "auto", progress: bool = False
    ) -> VectorIndex:
        """An index of `vectors`; "auto" picks the kind by their number (`choose_kind`).

        IVF trains its lists on a seeded sample. Vectors are added in batches, under a tqdm bar if `progress`.
        """
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        index = cls(dim, kind=choose_kind(len(ids)) if kind == "auto" else kind)
        if index.kind == "ivf" and len(ids):
            index._index = index._trained_ivf(vectors)
        with tqdm(total=len(ids), desc=f"Indexing ({index.kind})", unit="vec", disable=not progress) as bar:
            for start in range(0, len(ids), _BATCH):
                stop = min(start + _BATCH, len(ids))
                index.add(ids[start:stop], vectors[start:stop])
                bar.update(stop - start)
        return index

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def ef_search(self) -> int:
        """HNSW: candidates kept while searching the graph; higher is slower and finds more true neighbours."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = _positive("ef_search", value)

    @property
    def nprobe(self) -> int:
        """IVF: how many inverted lists a query scans; higher is slower and finds more true neighbours."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = _positive("nprobe", value)

    def __len__(self) -> int:
        return self._live

    @property
    def ids(self) -> tuple[str, ...]:
        """The id of each vector still in the index, in insertion order."""
        return tuple(label for label in self._labels if label is not None)

    @property
    def tombstones(self) -> int:
        """Removed vectors still in the HNSW graph (always 0 for flat and IVF)."""
        return int(self._index.ntotal) - self._live

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add one vector per id; vectors are normalised here, so any scale is fine."""
        if isinstance(ids, str):
            raise TypeError("add takes a sequence of ids, not one string")
        matrix = self._as_matrix(vectors)
        if len(ids) != matrix.shape[0]:
            raise ValueError(f"{len(ids)} ids for {matrix.shape[0]} vectors")
        if not len(ids):
            return
        if not self._index.is_trained:  # an IVF index made empty: its first vectors train it
            self._index = self._trained_ivf(matrix)
        faiss.normalize_L2(matrix)
        rows = np.arange(len(self._labels), len(self._labels) + len(ids), dtype=np.int64)
        self._index.add_with_ids(matrix, rows)
        self._labels.extend(ids)
        self._live += len(ids)

    def remove(self, ids: Collection[str]) -> int:
        """Remove every vector of these ids; returns how many vectors went (unknown ids are ignored)."""
        if isinstance(ids, str):
            raise TypeError("remove takes a collection of ids, not one string")
        wanted = set(ids)
        rows = [row for row, label in enumerate(self._labels) if label is not None and label in wanted]
        if not rows:
            return 0
        for row in rows:
            self._labels[row] = None
        self._live -= len(rows)
        if self._kind != "hnsw":
            self._index.remove_ids(np.array(rows, dtype=np.int64))
        elif self.tombstones > COMPACT_SHARE * self._index.ntotal:
            self.compact()
        return len(rows)

    def compact(self) -> int:
        """Rebuild the HNSW graph without its tombstones; returns how many went (0 for other kinds)."""
        dropped = self.tombstones
        if not dropped:
            return 0
        rows = faiss.vector_to_array(self._index.id_map)
        keep = np.fromiter((self._labels[row] is not None for row in rows), dtype=bool, count=len(rows))
        vectors = faiss.downcast_index(self._index.index).reconstruct_n(0, len(rows))[keep]
        fresh = _new_index(self._kind, self.dim, nlist=1)
        kept_rows = rows[keep]
        for start in range(0, len(kept_rows), _BATCH):
            fresh.add_with_ids(vectors[start : start + _BATCH], kept_rows[start : start + _BATCH])
        self._index = fresh
        return dropped

    def search(
        self, query_vec: np.ndarray, k: int, *, allowed: Callable[[str], bool] | None = None
    ) -> list[tuple[str, float]]:
        """The `k` nearest vectors as (id, cosine), best first; fewer when the index holds fewer.

        With `allowed`, only vectors whose id it accepts count: the search fetches more (4x each round,
        with a proportionally wider HNSW/IVF search) until `k` are found or the whole index was asked for.
        """
        if k <= 0 or not self._live:
            return []
        query = self._as_matrix(query_vec)
        if query.shape[0] != 1:
            raise ValueError(f"search takes one query vector, got {query.shape[0]}")
        faiss.normalize_L2(query)
        total = int(self._index.ntotal)
        plain = allowed is None and not self.tombstones
        fetch, widen = min(total, k if plain else 4 * k + 16), 1
        while True:
            found = [hit for hit in self._hits(query, fetch, widen) if allowed is None or allowed(hit[0])]
            if len(found) >= k or fetch >= total:
                return found[:k]
            fetch, widen = min(total, fetch * 4), widen * 4

    def _hits(self, query: np.ndarray, fetch: int, widen: int) -> list[tuple[str, float]]:
        """The best `fetch` live vectors FAISS finds, scanning `widen` times the usual IVF lists."""
        scores, rows = self._index.search(query, fetch, params=self._params(fetch, widen))
        labels = self._labels
        return [
            (label, float(score))
            for row, score in zip(rows[0].tolist(), scores[0].tolist(), strict=True)
            if row >= 0 and (label := labels[row]) is not None
        ]

    def _params(self, fetch: int, widen: int) -> Any:
        """Per-call search parameters, so concurrent searches never share a mutated setting."""
        if self._kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing from faiss's stubs
            params.efSearch = max(self._ef_search, fetch)  # faiss would raise it to `fetch` anyway
            return params
        if self._kind == "ivf":
            ivf: Any = faiss.downcast_index(self._index.index)
            nlist = int(ivf.nlist)
            params = faiss.SearchParametersIVF()
            wide = fetch >= self._index.ntotal
            params.nprobe = nlist if wide else min(nlist, self._nprobe * widen)
            return params
        return None

    def save(self, directory: Path) -> None:
        """Write `index.faiss` (faiss.write_index) and `ids.json` into `directory`, each replaced atomically.

        The index goes first: a reader between the two replacements sees counts that disagree and rebuilds.
        """
        directory.mkdir(parents=True, exist_ok=True)
        index_tmp = directory / f".{INDEX_FILE}.{os.getpid()}.tmp"
        ids_tmp = directory / f".{IDS_FILE}.{os.getpid()}.tmp"
        faiss.write_index(self._index, str(index_tmp))
        payload = {
            "format": _FORMAT,
            "kind": self._kind,
            "dim": self.dim,
            "ef_search": self._ef_search,
            "nprobe": self._nprobe,
            "ids": self._labels,
        }
        ids_tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        os.replace(index_tmp, directory / INDEX_FILE)
        os.replace(ids_tmp, directory / IDS_FILE)

    @classmethod
    def load(cls, directory: Path) -> VectorIndex:
        """Read an index written by `save`; raises ProjectError when the files are missing or disagree."""
        try:
            payload = json.loads((directory / IDS_FILE).read_text(encoding="utf-8"))
            raw = faiss.read_index(str(directory / INDEX_FILE))
        except (OSError, ValueError, RuntimeError) as err:
            # faiss reports unreadable files as RuntimeError; a broken JSON file as ValueError.
            raise ProjectError(
                f"cannot read the vector index ({err}); delete the folder to rebuild it", path=str(directory)
            ) from err
        try:
            index = _restore(raw, payload) if isinstance(payload, dict) else None
        except (TypeError, ValueError):  # a setting of the wrong type
            index = None
        if index is None:
            raise ProjectError(
                "the vector index and its ids disagree; delete the folder to rebuild it", path=str(directory)
            )
        return index

    def _trained_ivf(self, vectors: np.ndarray) -> Any:
        """An empty IVF index whose lists are trained on a seeded sample of `vectors`."""
        nlist = max(1, min(int(4 * math.sqrt(len(vectors))), len(vectors) // _TRAIN_PER_LIST))
        count = min(len(vectors), 64 * nlist)
        rows = np.sort(np.random.default_rng(_SEED).choice(len(vectors), size=count, replace=False))
        sample = self._as_matrix(vectors[rows])
        faiss.normalize_L2(sample)
        index = _new_index("ivf", self.dim, nlist=nlist)
        index.train(sample)
        return index

    def _as_matrix(self, vectors: np.ndarray) -> np.ndarray:
        """A C-contiguous float32 copy shaped (n, dim), safe to normalise in place."""
        matrix = np.array(vectors, dtype=np.float32, order="C", ndmin=2, copy=True)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got shape {np.shape(vectors)}")
        return matrix


def _new_index(kind: str, dim: int, *, nlist: int) -> Any:
    """An empty FAISS index of `kind` for inner products, behind an id map (IVF: untrained)."""
    inner: Any
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = EF_CONSTRUCTION
    elif kind == "ivf":
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        inner = faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(inner)


_INNER = {"flat": "IndexFlatIP", "hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat"}


def _restore(raw: Any, payload: dict[str, Any]) -> VectorIndex | None:
    """The index described by a read FAISS index and its JSON sidecar; None when they disagree."""
    labels = payload.get("ids")
    if not isinstance(labels, list) or not all(label is None or isinstance(label, str) for label in labels):
        return None
    if payload.get("format") == _FORMAT_FLAT_ONLY:
        return _restore_flat_only(raw, labels)
    kind = payload.get("kind")
    if payload.get("format") != _FORMAT or kind not in KINDS or not isinstance(raw, faiss.IndexIDMap2):
        return None
    if type(faiss.downcast_index(raw.index)).__name__ != _INNER[kind]:
        return None
    rows = faiss.vector_to_array(raw.id_map)
    live = sum(label is not None for label in labels)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(labels)):
        return None
    stored_live = sum(labels[row] is not None for row in rows.tolist())
    if stored_live != live or (kind != "hnsw" and len(rows) != live):
        return None
    index = VectorIndex(int(raw.d), kind=kind)
    index._index, index._labels, index._live = raw, labels, live
    index.ef_search = int(payload.get("ef_search", EF_SEARCH))
    index.nprobe = int(payload.get("nprobe", NPROBE))
    return index


def _restore_flat_only(raw: Any, labels: list[str | None]) -> VectorIndex | None:
    """A version-1 file (a bare exact index): its vectors move into a current flat index."""
    if not isinstance(raw, faiss.IndexFlatIP) or raw.ntotal != len(labels) or None in labels:
        return None
    index = VectorIndex(int(raw.d))
    if len(labels):
        index.add([str(label) for label in labels], raw.reconstruct_n(0, raw.ntotal))
    return index


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value
