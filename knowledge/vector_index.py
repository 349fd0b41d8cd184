"""A small FAISS wrapper: string ids, cosine scores, and a pickle-free file format."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from bot.errors import ProjectError

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
_FORMAT = 1


class VectorIndex:
    """Vectors with string ids, searched by cosine similarity (inner product of L2-normalised vectors).

    Ids need not be unique: several vectors (a question and its paraphrases) may share one id.
    The index is exact (`IndexFlatIP`), which answers a query over 100k vectors in a few milliseconds.
    """

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self._index: faiss.Index = faiss.IndexFlatIP(dim)
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        """The id of each vector, in insertion order."""
        return tuple(self._ids)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add one vector per id; vectors are normalised here, so any scale is fine."""
        matrix = self._as_matrix(vectors)
        if len(ids) != matrix.shape[0]:
            raise ValueError(f"{len(ids)} ids for {matrix.shape[0]} vectors")
        faiss.normalize_L2(matrix)
        self._index.add(matrix)
        self._ids.extend(ids)

    def search(self, query_vec: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The `k` nearest vectors as (id, cosine), best first; fewer when the index holds fewer."""
        if k <= 0 or not self._ids:
            return []
        query = self._as_matrix(query_vec)
        if query.shape[0] != 1:
            raise ValueError(f"search takes one query vector, got {query.shape[0]}")
        faiss.normalize_L2(query)
        scores, rows = self._index.search(query, min(k, len(self._ids)))
        return [(self._ids[row], float(score)) for row, score in zip(rows[0], scores[0], strict=True) if row >= 0]

    def save(self, directory: Path) -> None:
        """Write `index.faiss` (faiss.write_index) and `ids.json` into `directory`, each replaced atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        index_tmp = directory / f".{INDEX_FILE}.{os.getpid()}.tmp"
        faiss.write_index(self._index, str(index_tmp))
        os.replace(index_tmp, directory / INDEX_FILE)
        ids_tmp = directory / f".{IDS_FILE}.{os.getpid()}.tmp"
        payload = {"format": _FORMAT, "dim": self.dim, "ids": self._ids}
        ids_tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
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
        ids = payload.get("ids") if isinstance(payload, dict) else None
        if not isinstance(ids, list) or payload.get("format") != _FORMAT or raw.ntotal != len(ids):
            raise ProjectError(
                "the vector index and its ids disagree; delete the folder to rebuild it", path=str(directory)
            )
        index = cls(int(raw.d))
        index._index = raw
        index._ids = [str(item) for item in ids]
        return index

    def _as_matrix(self, vectors: np.ndarray) -> np.ndarray:
        """A C-contiguous float32 copy shaped (n, dim), safe to normalise in place."""
        matrix = np.array(vectors, dtype=np.float32, order="C", ndmin=2, copy=True)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got shape {np.shape(vectors)}")
        return matrix
