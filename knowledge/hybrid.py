"""Hybrid search over one collection of texts: a dense (FAISS) and a BM25 ranking fused by reciprocal rank.

The indexes live on disk in versioned folders with a `CURRENT` pointer that is replaced atomically, so a
server reloading while `kefu index` writes never reads half of one version and half of another. `sync`
compares the texts with the manifest of the last version and embeds only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bot.errors import ProjectError
from knowledge.bm25 import Bm25Index
from knowledge.fusion import reciprocal_rank_fusion
from knowledge.vector_index import VectorIndex

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
_FORMAT = 1
_BATCH = 64
_FETCH = 4  # candidates per ranking, as a multiple of k: fusion needs more than the final k


@dataclass(frozen=True, slots=True)
class Unit:
    """One searchable text; several units (a question and its paraphrases) may share an `owner`."""

    key: str
    owner: str
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """An owner found by the search: `score` orders hits, `similarity` is its best cosine (0 if dense missed it)."""

    owner: str
    score: float
    similarity: float
    keyword: float


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: int
    removed: int
    kept: int


class HybridIndex:
    """Dense and BM25 indexes over `Unit`s, kept in step, searched together."""

    def __init__(self, embed: Embed, dim: int, embedder_name: str, directory: Path | None = None) -> None:
        self._embed = embed
        self.dim = dim
        self.embedder_name = embedder_name
        self.directory = directory
        self.vectors = VectorIndex(dim)
        self.keywords = Bm25Index()
        self._units: dict[str, tuple[str, str]] = {}  # key -> (owner, text hash)

    def __len__(self) -> int:
        return len(self._units)

    def owner_of(self, key: str) -> str:
        return self._units[key][0]

    def sync(self, units: Sequence[Unit], *, progress: bool = False) -> SyncReport:
        """Make the indexes hold exactly `units`: drop what went or changed, embed and add what is new.

        Loads the saved version first (when there is a directory) and saves the result.
        """
        if not self._units and self.directory is not None:
            self._load()
        wanted = {unit.key: unit for unit in units}
        if len(wanted) != len(units):
            raise ValueError("unit keys must be unique")
        stale = [key for key, (owner, digest) in self._units.items() if _state(wanted.get(key)) != (owner, digest)]
        fresh = [unit for key, unit in wanted.items() if key not in self._units or key in stale]
        if stale:
            self.vectors.remove(stale)
            self.keywords.remove(stale)
            for key in stale:
                del self._units[key]
        if fresh:
            self._add(fresh, progress)
        if (stale or fresh) and self.directory is not None:
            self._save()
        return SyncReport(added=len(fresh), removed=len(stale), kept=len(self._units) - len(fresh))

    def search(
        self,
        query: str,
        vector: np.ndarray,
        k: int,
        *,
        allowed: Callable[[str], bool] | None = None,
        tokens: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The `k` best owners by reciprocal rank fusion of the dense and the keyword ranking (`tokens`: the
        query's `search_tokens`, when the caller has them)."""
        if k <= 0 or not self._units:
            return []
        accept = None if allowed is None else (lambda key: allowed(self._units[key][0]))
        dense = _best_per_owner(self.vectors.search(vector, k * _FETCH, allowed=accept), self.owner_of)
        keywords = self.keywords.search(query, k * _FETCH, allowed=accept, tokens=tokens)
        sparse = _best_per_owner(keywords, self.owner_of)
        fused = reciprocal_rank_fusion([list(dense), list(sparse)])
        return [Hit(owner, score, dense.get(owner, 0.0), sparse.get(owner, 0.0)) for owner, score in fused[:k]]

    def _add(self, units: list[Unit], progress: bool) -> None:
        texts = [unit.text for unit in units]
        vectors = self._vectors(texts, progress)
        keys = [unit.key for unit in units]
        if not len(self.vectors):  # a first build picks exact, HNSW or IVF by size
            self.vectors = VectorIndex.build(self.dim, keys, vectors)
        else:
            self.vectors.add(keys, vectors)
        self.keywords.add(keys, texts)
        for unit in units:
            self._units[unit.key] = _state(unit)  # type: ignore[assignment]

    def _vectors(self, texts: list[str], progress: bool) -> np.ndarray:
        show = progress and sys.stderr.isatty()
        parts = []
        started = time.perf_counter()
        with tqdm(total=len(texts), desc="Embedding", unit="text", disable=not show) as bar:
            for start in range(0, len(texts), _BATCH):
                batch = np.asarray(self._embed(texts[start : start + _BATCH]), dtype=np.float32)
                if batch.shape != (min(_BATCH, len(texts) - start), self.dim):
                    raise ProjectError(f"the embedder returned vectors of shape {batch.shape}, expected dim {self.dim}")
                parts.append(batch)
                bar.update(len(batch))
        log.info("embedded %d texts in %.1f s", len(texts), time.perf_counter() - started)
        return np.vstack(parts)

    def _load(self) -> None:
        assert self.directory is not None
        version = _current(self.directory)
        if version is None:
            return
        try:
            manifest = json.loads((version / MANIFEST).read_text(encoding="utf-8"))
            if (manifest.get("format"), manifest.get("embedder"), manifest.get("dim")) != (
                _FORMAT,
                self.embedder_name,
                self.dim,
            ):
                log.info("rebuilding %s: it was made by another embedder or format", self.directory)
                return
            vectors = VectorIndex.load(version / "vectors")
            keywords = Bm25Index.load(version / "bm25")
            units = {key: (owner, digest) for key, (owner, digest) in manifest["units"].items()}
        except (OSError, ValueError, KeyError, TypeError, ProjectError) as err:
            log.warning("rebuilding the index in %s: %s", self.directory, err)
            return
        self.vectors, self.keywords, self._units = vectors, keywords, units

    def _save(self) -> None:
        """Write a new version folder, point CURRENT at it, then remove versions older than the previous one."""
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        previous = _current(self.directory)
        version = self.directory / f"v{time.time_ns()}-{os.getpid()}"
        self.vectors.save(version / "vectors")
        self.keywords.save(version / "bm25")
        manifest = {"format": _FORMAT, "embedder": self.embedder_name, "dim": self.dim, "units": self._units}
        (version / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        pointer = self.directory / f".{CURRENT}.{os.getpid()}.tmp"
        pointer.write_text(version.name, encoding="utf-8")
        os.replace(pointer, self.directory / CURRENT)
        keep = {version.name, previous.name if previous else ""}  # a reader may still be loading the previous one
        for old in self.directory.glob("v*"):
            if old.is_dir() and old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)


def _state(unit: Unit | None) -> tuple[str, str] | None:
    if unit is None:
        return None
    return unit.owner, hashlib.sha1(unit.text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _current(directory: Path) -> Path | None:
    try:
        name = (directory / CURRENT).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    version = directory / name
    return version if name and version.is_dir() else None


def _best_per_owner(hits: list[tuple[str, float]], owner_of: Callable[[str], str]) -> dict[str, float]:
    """Owner -> best score, in rank order (hits come best first)."""
    best: dict[str, float] = {}
    for key, score in hits:
        best.setdefault(owner_of(key), score)
    return best
